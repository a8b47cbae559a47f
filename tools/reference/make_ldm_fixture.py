"""A single-file Stable Diffusion checkpoint in the original LDM key layout, as A1111 / ComfyUI
users keep them, written from a random-weight diffusers pipeline by diffusers' own conversion
script, with the outputs of the diffusers folder it came from.

The conversion script (`scripts/convert_diffusers_to_original_stable_diffusion.py`) lives in the
diffusers repository, not in the pip package; pass its path:

    .venv/bin/python make_ldm_fixture.py --convert-script /path/to/diffusers/scripts/convert_diffusers_to_original_stable_diffusion.py

The script hard-codes SD 1.x's structure (4 blocks, 2 layers per block, 3 per up block), so the
tiny pipeline keeps that structure and only narrows the widths (32 channels; SD 1.x's 32 norm
groups and 8 heads, a 64-wide text encoder with SD 1.x's 64-wide heads) -- every value a loader
must infer from tensor shapes is as in the real checkpoints.

Writes:
  fixtures/sd15_ldm_tiny.safetensors     the converted checkpoint (f16, `model.diffusion_model.*`,
                                         `first_stage_model.*`, `cond_stage_model.transformer.*`)
                                         plus the scheduler buffers real checkpoints carry
  fixtures/sd15_ldm_tiny_io.safetensors  inputs and the diffusers folder's outputs: text encoder
                                         (ids -> last hidden state), UNet (9-channel latents,
                                         timestep, text states -> noise prediction), VAE (image ->
                                         posterior mean; latents -> image)
"""

import argparse
import os
import subprocess
import sys
import tempfile

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel

from make_vae_fixtures import randomize

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")


def tiny_unet():
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=9,
        out_channels=4,
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        attention_head_dim=8,
        cross_attention_dim=64,
        norm_num_groups=32,
    )


def tiny_vae():
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
    )


def tiny_text_encoder():
    cfg = CLIPTextConfig(vocab_size=1000, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=1, max_position_embeddings=77, hidden_act="quick_gelu",
                         bos_token_id=998, eos_token_id=999, pad_token_id=999)
    return CLIPTextModel(cfg)


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--convert-script", required=True,
                    help="diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py")
    args = ap.parse_args()

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    unet, vae, te = tiny_unet().eval(), tiny_vae().eval(), tiny_text_encoder().eval()
    for m in (unet, vae, te):
        randomize(m, gen)
        # Stored as float16 (as most shared checkpoints are, and to keep the fixture small):
        # round the folder's weights the same way, so both give the same f32 outputs.
        for p in m.parameters():
            p.copy_(p.half().float())

    probe = torch.randint(0, 1000, (1, 77), generator=torch.Generator().manual_seed(1))
    before = te(probe).last_hidden_state
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "pipe")
        unet.save_pretrained(os.path.join(folder, "unet"), safe_serialization=True)
        vae.save_pretrained(os.path.join(folder, "vae"), safe_serialization=True)
        te.save_pretrained(os.path.join(folder, "text_encoder"), safe_serialization=True)
        # transformers 5 saves a random (not from_pretrained) CLIPTextModel without the
        # `text_model.` prefix; real SD 1.x checkpoints were converted from transformers 4 names,
        # so give the folder those names before converting.
        te_file = os.path.join(folder, "text_encoder", "model.safetensors")
        te_state = load_file(te_file)
        save_file({k if k.startswith("text_model.") else "text_model." + k: v
                   for k, v in te_state.items()}, te_file, metadata={"format": "pt"})
        ckpt = os.path.join(tmp, "model.safetensors")
        subprocess.run([sys.executable, args.convert_script, "--model_path", folder,
                        "--checkpoint_path", ckpt, "--use_safetensors", "--half"], check=True,
                       stdout=subprocess.DEVNULL)
        state = load_file(ckpt)
        # The models as diffusers loads them back from the folder are the reference.
        unet = UNet2DConditionModel.from_pretrained(os.path.join(folder, "unet")).eval()
        vae = AutoencoderKL.from_pretrained(os.path.join(folder, "vae")).eval()
        te = CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder")).eval()
        assert torch.equal(te(probe).last_hidden_state, before), "text encoder did not reload"

    # Real checkpoints also carry the DDPM schedule buffers and the EMA flag; a loader must
    # skip them.
    betas = (torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2).half()
    state["betas"] = betas
    state["alphas_cumprod"] = torch.cumprod(1 - betas, 0)
    state["model_ema.decay"] = torch.tensor(0.9999)
    state["model_ema.num_updates"] = torch.tensor(0, dtype=torch.int32)
    state["cond_stage_model.transformer.text_model.embeddings.position_ids"] = \
        torch.arange(77, dtype=torch.int64)[None]
    save_file({k: v.contiguous() for k, v in sorted(state.items())},
              os.path.join(OUT, "sd15_ldm_tiny.safetensors"),
              metadata={"format": "pt"})

    ids = torch.randint(0, 1000, (1, 77), generator=gen)
    hidden = te(ids).last_hidden_state
    sample = torch.randn(1, 9, 16, 16, generator=gen)
    t = torch.tensor([537])
    noise = unet(sample, t, encoder_hidden_states=hidden).sample
    image = torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1
    mean = vae.encode(image).latent_dist.mean
    latents = torch.randn(1, 4, 4, 4, generator=gen)
    decoded = vae.decode(latents).sample
    save_file({
        "ids": ids.to(torch.int64), "hidden": hidden.contiguous(),
        "sample": sample, "timestep": t.float(), "noise": noise.contiguous(),
        "image": image, "mean": mean.contiguous(),
        "latents": latents, "decoded": decoded.contiguous(),
    }, os.path.join(OUT, "sd15_ldm_tiny_io.safetensors"))
    n = sum(v.numel() for v in state.values())
    print(f"sd15_ldm_tiny: {len(state)} tensors, {n / 1e6:.2f}M values")


if __name__ == "__main__":
    main()
