"""Half-precision references for the f16 parity tests (core/tests/half_parity.rs).

For each model the f32 fixtures already hold (weights, inputs and the f32 outputs, from
make_vae_fixtures.py), the same diffusers module run in torch.float16 on the same inputs
(weights and inputs cast to fp16, as `torch_dtype=torch.float16` loads them). The Rust test
measures diffusers' own fp16 error against the f32 output and holds ours to at most twice it.

  fixtures/half_vae.safetensors   <model>.<output> in fp16 (stored as f32 values):
      kl_tiny.dec, asym_tiny.dec_masked, asym_tiny.dec_plain, x15.dec_masked, x15.dec_plain
  fixtures/half_unet.safetensors  the UNets of make_unet_clip_fixtures.py:
      inpaint_y_8, inpaint_y_odd, linear_y_8, linear_y_odd (tiny), sd15_y (real SD 1.5
      inpainting widths, formula weights)
  fixtures/half_clip.safetensors  last_hidden_state of the tiny CLIP text encoder
  fixtures/half_pipeline.safetensors  out.9.{scheduler}.7.5.asymmetric [32, 40, 3] u8: the
      whole StableDiffusionInpaintPipeline of make_pipeline_fixtures.py (9-channel UNet,
      guidance 7.5, asymmetric decoder, the same latents and prompts) with every model in fp16
      (`pipe.to(torch.float16)`), every scheduler

Run from any directory: python3 tools/reference/make_half_fixtures.py
"""

import contextlib
import os
import sys

import torch
from diffusers import AsymmetricAutoencoderKL, AutoencoderKL, UNet2DConditionModel
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
sys.path.insert(0, HERE)
from make_unet_clip_fixtures import sd15_inpaint_unet  # noqa: E402
from make_vae_fixtures import x15_vae  # noqa: E402


def rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def half_outputs(model, io, calls):
    """Runs `calls` (name -> fn(model, io16)) in fp16; returns name -> f32 tensor."""
    model = model.to(torch.float16).eval()
    io16 = {k: v.to(torch.float16) for k, v in io.items()}
    out = {}
    with torch.no_grad():
        for name, fn in calls.items():
            out[name] = fn(model, io16).float()
    return out


def decoder_outputs(run, label):
    """The VAE decoders of make_vae_fixtures.py (tiny KL, tiny asymmetric, asymmetric at the
    x-1-5 widths with formula weights) through `run(model, io, calls)` (a precision's
    runner); returns <model>.<output> -> f32 tensor, printing each error against f32."""
    res = {}
    asym_calls = {
        "dec_masked": lambda m, d: m.decode(d["z"], image=d["x"], mask=d["mask"]).sample,
        "dec_plain": lambda m, d: m.decode(d["z"]).sample,
    }
    models = [
        ("kl_tiny", "vae_kl_tiny_io", lambda: AutoencoderKL.from_pretrained(
            os.path.join(OUT, "vae_kl_tiny")), {"dec": lambda m, d: m.decode(d["z"]).sample}),
        ("asym_tiny", "vae_asym_tiny_io", lambda: AsymmetricAutoencoderKL.from_pretrained(
            os.path.join(OUT, "vae_asym_tiny")), asym_calls),
        ("x15", "vae_asym_x15_io", x15_vae, asym_calls),
    ]
    for tag, io_name, build, calls in models:
        io = load_file(os.path.join(OUT, f"{io_name}.safetensors"))
        for k, v in run(build(), io, calls).items():
            res[f"{tag}.{k}"] = v
            print(f"{tag}.{k}: {label} rel err {rel(v, io[k]):.3e}")
    return res


def main():
    torch.manual_seed(0)
    res = decoder_outputs(half_outputs, "diffusers fp16")
    save_file({k: v.contiguous() for k, v in res.items()}, os.path.join(OUT, "half_vae.safetensors"))
    unets()
    text_encoder()
    res = pipeline_outputs(fp16_pipeline, "diffusers fp16")
    save_file({k: v.contiguous() for k, v in res.items()},
              os.path.join(OUT, "half_pipeline.safetensors"))


def fp16_pipeline(pipe):
    """The pipeline as `torch_dtype=torch.float16` loads it: every model and the latents fp16."""
    return pipe.to(torch.float16), torch.float16, contextlib.nullcontext


def pipeline_outputs(prepare, label):
    """The whole StableDiffusionInpaintPipeline of make_pipeline_fixtures.py, every scheduler,
    set up by `prepare(pipe) -> (pipe, latents dtype, context factory)` (a precision's setup);
    returns out.9.{scheduler}.7.5.asymmetric -> u8 [32, 40, 3], printing each error against
    the f32 PNG in pipeline_io.safetensors."""
    import numpy as np
    from diffusers import StableDiffusionInpaintPipeline
    from PIL import Image
    from make_pipeline_fixtures import NEGATIVE, PROMPT, SCHEDULERS  # also patches the posterior

    io = load_file(os.path.join(OUT, "pipeline_io.safetensors"))
    pipe = StableDiffusionInpaintPipeline.from_pretrained(
        os.path.join(OUT, "tiny_sd_inpaint9"), safety_checker=None, requires_safety_checker=False)
    pipe.vae = AsymmetricAutoencoderKL.from_pretrained(os.path.join(OUT, "vae_asym_tiny")).eval()
    pipe.set_progress_bar_config(disable=True)
    pipe, dtype, context = prepare(pipe)
    image = Image.fromarray(io["image"].numpy())
    mask = Image.fromarray(io["mask"].numpy())
    config = pipe.scheduler.config
    res = {}
    for sname, (cls, extra) in SCHEDULERS.items():
        pipe.scheduler = cls.from_config({**config, **extra})
        with torch.no_grad(), context():
            out = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, image=image, mask_image=mask,
                       height=32, width=40, num_inference_steps=4, guidance_scale=7.5,
                       strength=1.0, latents=io["latents"].clone().to(dtype),
                       output_type="np").images[0]
        key = f"out.9.{sname}.7.5.asymmetric"
        u8 = torch.from_numpy((np.asarray(out, dtype=np.float32) * 255).round().astype(np.uint8))
        res[key] = u8
        print(f"pipeline {key}: {label} rel err {rel(u8.float(), io[key].float()):.3e}")
    return res


def text_encoder():
    from transformers import CLIPTextModel

    io = load_file(os.path.join(OUT, "clip_tiny_io.safetensors"))
    m = CLIPTextModel.from_pretrained(os.path.join(OUT, "clip_tiny")).to(torch.float16).eval()
    with torch.no_grad():
        out = m(input_ids=io["input_ids"].long()).last_hidden_state.float()
    print(f"clip last_hidden_state: transformers fp16 rel err {rel(out, io['last_hidden_state']):.3e}")
    save_file({"last_hidden_state": out.contiguous()}, os.path.join(OUT, "half_clip.safetensors"))


def unets():
    """The UNets in fp16; the timestep embedding in f32, as diffusers' fp16 UNet computes
    its sinusoidal features in f32 and casts them to the model's dtype."""
    res = unet_outputs(half_outputs, "diffusers fp16")
    save_file({k: v.contiguous() for k, v in res.items()}, os.path.join(OUT, "half_unet.safetensors"))


def unet_outputs(run, label):
    """The UNets of make_unet_clip_fixtures.py (tiny with both projections, the SD 1.5
    inpainting widths with formula weights) through `run(model, io, calls)`; the timesteps
    are passed as stored (f32), whatever the runner casts."""
    res = {}
    io = load_file(os.path.join(OUT, "unet_tiny_io.safetensors"))
    for name in ("inpaint", "linear"):
        m = UNet2DConditionModel.from_pretrained(os.path.join(OUT, f"unet_tiny_{name}"))
        calls = {
            f"{name}_y_{tag}": (lambda tag: lambda m, d: m(
                d[f"{name}_x_{tag}"], io["t"], encoder_hidden_states=d["context"]).sample)(tag)
            for tag in ("8", "odd")
        }
        for k, v in run(m, io, calls).items():
            res[k] = v
            print(f"unet {k}: {label} rel err {rel(v, io[k]):.3e}")
    io = load_file(os.path.join(OUT, "unet_sd15_inpaint_io.safetensors"))
    calls = {"sd15_y": lambda m, d: m(d["x"], io["t"], encoder_hidden_states=d["context"]).sample}
    inputs = {"x": io["x"], "context": io["context"]}
    for k, v in run(sd15_inpaint_unet(), inputs, calls).items():
        res[k] = v
        print(f"unet {k}: {label} rel err {rel(v, io['y']):.3e}")
    return res


if __name__ == "__main__":
    main()
