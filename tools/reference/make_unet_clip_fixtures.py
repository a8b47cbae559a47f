"""Parity fixtures for the CLIP text encoder (transformers) and UNet2DConditionModel (diffusers).

Tiny configs, random weights, committed:
  fixtures/clip_tiny/                      transformers folder: config.json + model.safetensors
                                           (transformers 5 names, no `text_model.` prefix)
  fixtures/clip_tiny_v4.safetensors        the same weights with transformers 4's names
                                           (`text_model.` prefix, a `position_ids` buffer)
  fixtures/clip_tiny_io.safetensors        input_ids [2, 77] and last_hidden_state
  fixtures/unet_tiny_inpaint/              diffusers folder, 9 input channels, conv proj_in/out
  fixtures/unet_tiny_linear/               diffusers folder, 4 input channels, linear proj_in/out,
                                           per-block head counts
  fixtures/unet_tiny_io.safetensors        inputs and outputs of both (8x8 and 6x10 latents)

The real SD 1.5 inpainting UNet config (320/640/1280/1280, 8 heads, 768 cross-dim, 9 input
channels) at an 8x8 latent: 860M parameters are too many to commit, so the weights come from a
formula both sides compute (`formula_value`, shared with make_vae_fixtures.py and mirrored in
core/src/testing.rs), stored as float16 as the real `unet/diffusion_pytorch_model.fp16.safetensors`
is. Only the config and inputs/outputs are committed:
  fixtures/unet_sd15_inpaint_config.json
  fixtures/unet_sd15_inpaint_io.safetensors
"""

import json
import os

import numpy as np
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

from make_vae_fixtures import formula_value, randomize

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")


def save_diffusers(model, name):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(d, "diffusion_pytorch_model.safetensors"))
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(model.config).items()
           if not k.startswith("_use")}
    cfg["_class_name"] = type(model).__name__
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, default=str)


@torch.no_grad()
def sd15_inpaint_unet():
    """The SD 1.5 inpainting UNet config with the formula weights, rounded to f16."""
    real = UNet2DConditionModel(
        sample_size=64, in_channels=9, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2, cross_attention_dim=768, attention_head_dim=8,
    ).eval()
    sd = real.state_dict()
    real.load_state_dict({k: torch.from_numpy(formula_value(k, tuple(v.shape)).astype(np.float16).astype(np.float32))
                          for k, v in sd.items()})
    return real


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    # -- CLIP text encoder -----------------------------------------------------------------
    cfg = CLIPTextConfig(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                         bos_token_id=998, eos_token_id=999, pad_token_id=999)
    clip = CLIPTextModel(cfg).eval()
    randomize(clip, gen)
    d = os.path.join(OUT, "clip_tiny")
    clip.save_pretrained(d, safe_serialization=True)
    sd = {k: v.contiguous() for k, v in clip.state_dict().items()}
    v4 = {("text_model." + k if not k.startswith("text_model.") else k): v for k, v in sd.items()}
    v4["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    save_file(v4, os.path.join(OUT, "clip_tiny_v4.safetensors"))
    ids = torch.full((2, 77), 999, dtype=torch.long)
    ids[0, :6] = torch.tensor([998, 5, 17, 400, 23, 999])
    ids[1, :12] = torch.tensor([998, 1, 2, 3, 4, 900, 800, 700, 600, 500, 42, 999])
    out = clip(input_ids=ids).last_hidden_state
    save_file({"input_ids": ids.to(torch.int32).contiguous(), "last_hidden_state": out.contiguous()},
              os.path.join(OUT, "clip_tiny_io.safetensors"))

    # -- tiny UNets ------------------------------------------------------------------------
    io = {}
    inpaint = UNet2DConditionModel(
        sample_size=8, in_channels=9, out_channels=4, block_out_channels=(16, 32, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=8, attention_head_dim=8, norm_num_groups=4,
    ).eval()
    randomize(inpaint, gen)
    save_diffusers(inpaint, "unet_tiny_inpaint")
    linear = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32),
        layers_per_block=2, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=8,
        attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=4,
    ).eval()
    randomize(linear, gen)
    save_diffusers(linear, "unet_tiny_linear")
    ctx = torch.randn(2, 7, 8, generator=gen)
    t = torch.tensor([981.0, 1.0])
    for tag, (h, w) in (("8", (8, 8)), ("odd", (6, 10))):
        x9 = torch.randn(2, 9, h, w, generator=gen)
        x4 = torch.randn(2, 4, h, w, generator=gen)
        io[f"inpaint_x_{tag}"] = x9
        io[f"inpaint_y_{tag}"] = inpaint(x9, t, encoder_hidden_states=ctx).sample
        io[f"linear_x_{tag}"] = x4
        io[f"linear_y_{tag}"] = linear(x4, t, encoder_hidden_states=ctx).sample
    io["t"] = t
    io["context"] = ctx
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(OUT, "unet_tiny_io.safetensors"))

    # -- SD 1.5 inpainting UNet, real config, formula weights stored as f16 -----------------
    real = sd15_inpaint_unet()
    sd = real.state_dict()
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(real.config).items()
           if not k.startswith("_use")}
    cfg["_class_name"] = "UNet2DConditionModel"
    with open(os.path.join(OUT, "unet_sd15_inpaint_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, default=str)
    x = torch.randn(1, 9, 8, 8, generator=gen)
    ctx = torch.randn(1, 77, 768, generator=gen)
    t = torch.tensor([500.0])
    y = real(x, t, encoder_hidden_states=ctx).sample
    save_file({"x": x, "t": t, "context": ctx.contiguous(), "y": y.contiguous(),
               "n_tensors": torch.tensor([len(sd)]), "n_params": torch.tensor([sum(v.numel() for v in sd.values())])},
              os.path.join(OUT, "unet_sd15_inpaint_io.safetensors"))
    print("wrote UNet/CLIP fixtures to", OUT)


if __name__ == "__main__":
    main()
