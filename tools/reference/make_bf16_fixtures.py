"""bfloat16 references for the CPU's bf16 parity tests (core/tests/bf16_parity.rs).

For each model the f32 fixtures already hold (weights, inputs and the f32 outputs, from
make_vae_fixtures.py and make_unet_clip_fixtures.py), the same diffusers / transformers module
run under PyTorch's CPU bf16 autocast (`torch.autocast("cpu", dtype=torch.bfloat16)`: convs,
linears and matmuls on bf16-rounded inputs and weights with f32 accumulation, norms and softmax
in f32), on the same inputs. The Rust test measures PyTorch's own bf16 error against the f32
output and holds ours to at most twice it.

  fixtures/bf16_vae.safetensors   kl_tiny.dec, asym_tiny.dec_masked, asym_tiny.dec_plain,
                                  x15.dec_masked, x15.dec_plain
  fixtures/bf16_unet.safetensors  inpaint_y_8, inpaint_y_odd, linear_y_8, linear_y_odd,
                                  sd15_y (real SD 1.5 inpainting widths, formula weights)
  fixtures/bf16_clip.safetensors  last_hidden_state of the tiny CLIP text encoder
  fixtures/bf16_pipeline.safetensors  out.9.{scheduler}.7.5.asymmetric [32, 40, 3] u8: the
                                  whole StableDiffusionInpaintPipeline of make_pipeline_fixtures.py
                                  (9-channel UNet, guidance 7.5, asymmetric decoder, the same
                                  latents and prompts) under bf16 autocast, every scheduler

Run from any directory: python3 tools/reference/make_bf16_fixtures.py
"""

import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_half_fixtures import OUT, decoder_outputs, pipeline_outputs, rel, unet_outputs  # noqa: E402


def autocast_outputs(model, io, calls):
    """Runs `calls` (name -> fn(model, io)) under bf16 autocast; returns name -> f32 tensor."""
    model = model.float().eval()
    out = {}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for name, fn in calls.items():
            out[name] = fn(model, io).float()
    return out


def vaes():
    res = decoder_outputs(autocast_outputs, "PyTorch bf16 autocast")
    save_file({k: v.contiguous() for k, v in res.items()}, os.path.join(OUT, "bf16_vae.safetensors"))


def unets():
    res = unet_outputs(autocast_outputs, "PyTorch bf16 autocast")
    save_file({k: v.contiguous() for k, v in res.items()}, os.path.join(OUT, "bf16_unet.safetensors"))


def text_encoder():
    from transformers import CLIPTextModel

    io = load_file(os.path.join(OUT, "clip_tiny_io.safetensors"))
    m = CLIPTextModel.from_pretrained(os.path.join(OUT, "clip_tiny")).float().eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(input_ids=io["input_ids"].long()).last_hidden_state.float()
    print(f"clip last_hidden_state: PyTorch bf16 autocast rel err "
          f"{rel(out, io['last_hidden_state']):.3e}")
    save_file({"last_hidden_state": out.contiguous()}, os.path.join(OUT, "bf16_clip.safetensors"))


def autocast_pipeline(pipe):
    """The f32 pipeline under bf16 autocast."""
    return pipe, torch.float32, lambda: torch.autocast("cpu", dtype=torch.bfloat16)


def pipelines():
    res = pipeline_outputs(autocast_pipeline, "PyTorch bf16 autocast")
    save_file({k: v.contiguous() for k, v in res.items()}, os.path.join(OUT, "bf16_pipeline.safetensors"))


def main():
    torch.manual_seed(0)
    vaes()
    unets()
    text_encoder()
    pipelines()


if __name__ == "__main__":
    main()
