"""VAE parity fixtures from diffusers: AutoencoderKL (SD 1.x) and AsymmetricAutoencoderKL.

Tiny configs (weights committed, random from torch):
  fixtures/vae_kl_tiny/                    diffusers folder (config.json + safetensors)
  fixtures/vae_kl_tiny_legacy.safetensors  the same weights with the old attention names
                                           (query/key/value/proj_attn, 1x1-conv shaped)
  fixtures/vae_kl_tiny_io.safetensors      x, mean, logvar, eps, sample (= mean + std*eps), z, dec
  fixtures/vae_asym_tiny/                  diffusers folder
  fixtures/vae_asym_tiny_original.safetensors  the same weights in the original Asymmetric_VQGAN
                                           key layout (LDM names, up.N reversed, decoder.encoder.*,
                                           1x1-conv attention, plus unused up_layers.* and loss.*)
  fixtures/vae_asym_tiny_io.safetensors    x, mask, z, mean, dec_masked, dec_plain

Real x-1-5 widths (SD encoder 128/256/512/512, decoder 192/384/768/768, 3 layers per up block)
at 16x16: the weights are too large to commit, so they come from a formula both sides compute
(`formula_weights`, mirrored in core/src/testing.rs), and only inputs/outputs are stored:
  fixtures/vae_asym_x15_io.safetensors     x, mask, z, mean, dec_masked, dec_plain
"""

import json
import os

import numpy as np
import torch
from diffusers import AsymmetricAutoencoderKL, AutoencoderKL
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")


def save_folder(model, name):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(d, "diffusion_pytorch_model.safetensors"))
    cfg = dict(model.config)
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items() if not k.startswith("_use")}
    cfg["_class_name"] = type(model).__name__
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, default=str)
    return sd


def randomize(model, gen):
    """Random weights with visible norms/biases (diffusers inits norms to 1/0)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("norm" in name):
                if name.endswith("weight"):
                    p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
                else:
                    p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(fan_in))


def legacy_attention_names(sd):
    out = {}
    for k, v in sd.items():
        k2 = (
            k.replace(".to_q.", ".query.")
            .replace(".to_k.", ".key.")
            .replace(".to_v.", ".value.")
            .replace(".to_out.0.", ".proj_attn.")
        )
        if k2 != k and k2.endswith("weight"):
            v = v[:, :, None, None].contiguous()
        out[k2] = v
    return out


def original_layout(sd, n_up):
    """diffusers AsymmetricAutoencoderKL keys -> the original repo's (inverse of diffusers'
    scripts/convert_asymmetric_vqgan_to_diffusers.py)."""
    out = {}
    for k, v in sd.items():
        o = k
        if o.startswith("encoder."):
            o = o.replace("encoder.down_blocks.", "encoder.down.").replace("encoder.mid_block.", "encoder.mid.")
            o = o.replace("encoder.conv_norm_out.", "encoder.norm_out.").replace(".downsamplers.0.", ".downsample.")
        elif o.startswith("decoder."):
            o = o.replace("decoder.condition_encoder.", "decoder.encoder.").replace(".conv_norm_out.", ".norm_out.")
            o = o.replace("mid_block", "mid")
            for i in range(n_up):
                o = o.replace(f".up_blocks.{i}.", f".up.{n_up - 1 - i}.")
            o = o.replace(".upsamplers.0.", ".upsample.")
        o = o.replace(".conv_shortcut.", ".nin_shortcut.")
        o = o.replace(".mid.resnets.0.", ".mid.block_1.").replace(".mid.resnets.1.", ".mid.block_2.")
        o = o.replace(".resnets.", ".block.")
        o = (
            o.replace(".attentions.0.to_k.", ".attn_1.k.")
            .replace(".attentions.0.to_q.", ".attn_1.q.")
            .replace(".attentions.0.to_v.", ".attn_1.v.")
            .replace(".attentions.0.to_out.0.", ".attn_1.proj_out.")
            .replace(".attentions.0.group_norm.", ".attn_1.norm.")
        )
        if ".attn_1." in o and o.endswith("weight") and ".norm." not in o:
            v = v[:, :, None, None].contiguous()
        out[o] = v
    # Training-only parts the original checkpoint also holds.
    out["decoder.up_layers.0.weight"] = torch.zeros(4, 4, 3, 3)
    out["loss.logvar"] = torch.zeros(())
    out["loss.discriminator.main.0.weight"] = torch.zeros(8, 3, 4, 4)
    return out


def make_mask(h, w, gen):
    """A rectangle plus a few random blobs: 1 = repaint."""
    m = torch.zeros(1, 1, h, w)
    m[..., h // 4 : h // 2 + 3, w // 5 : w // 2 + 5] = 1
    blobs = (torch.rand(1, 1, h // 4, w // 4, generator=gen) > 0.75).float()
    m = torch.maximum(m, torch.nn.functional.interpolate(blobs, size=(h, w), mode="nearest"))
    return m


# ---- deterministic formula weights (mirrored in Rust) -------------------------------------

def fnv1a(s):
    h = 0x811C9DC5
    for b in s.encode():
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def uniform(key, n):
    """n values in [-1, 1) from a 32-bit integer hash of (key, index): exact in numpy and Rust."""
    i = np.arange(n, dtype=np.uint64)
    x = (i * np.uint64(0x9E3779B1) + np.uint64(fnv1a(key))) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    return ((x >> np.uint64(8)).astype(np.float64) / float(1 << 24) * 2.0 - 1.0).astype(np.float32)


def formula_value(key, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    u = uniform(key, n).reshape(shape)
    is_norm = "norm" in key and len(shape) == 1
    if is_norm and key.endswith("weight"):
        return (1.0 + 0.2 * u).astype(np.float32)
    if is_norm or (len(shape) == 1):
        return (0.05 * u).astype(np.float32)
    fan_in = int(np.prod(shape[1:]))
    # uniform [-1,1) has std 1/sqrt(3): scale to std 1/sqrt(fan_in)
    return (u * np.float32(np.sqrt(3.0 / fan_in))).astype(np.float32)


def formula_weights(model):
    sd = model.state_dict()
    new = {k: torch.from_numpy(formula_value(k, tuple(v.shape))) for k, v in sd.items()}
    model.load_state_dict(new)


@torch.no_grad()
def x15_vae():
    """AsymmetricAutoencoderKL at the x-1-5 widths with the formula weights."""
    x15 = AsymmetricAutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 4, down_block_out_channels=[128, 256, 512, 512],
        layers_per_down_block=2,
        up_block_types=["UpDecoderBlock2D"] * 4, up_block_out_channels=[192, 384, 768, 768],
        layers_per_up_block=3, norm_num_groups=32, sample_size=256,
    ).eval()
    formula_weights(x15)
    return x15


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    # -- AutoencoderKL, tiny -------------------------------------------------------------
    kl = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
        block_out_channels=[16, 32], layers_per_block=1, norm_num_groups=8, sample_size=32,
    ).eval()
    randomize(kl, gen)
    sd = save_folder(kl, "vae_kl_tiny")
    save_file(legacy_attention_names(sd), os.path.join(OUT, "vae_kl_tiny_legacy.safetensors"))
    x = torch.rand(1, 3, 16, 24, generator=gen) * 2 - 1
    post = kl.encode(x).latent_dist
    eps = torch.randn(post.mean.shape, generator=gen)
    z = torch.randn(1, 4, 8, 12, generator=gen)
    io = {
        "x": x, "mean": post.mean, "logvar": post.logvar, "eps": eps,
        "sample": post.mean + post.std * eps, "z": z, "dec": kl.decode(z).sample,
    }
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(OUT, "vae_kl_tiny_io.safetensors"))

    # -- AsymmetricAutoencoderKL, tiny ---------------------------------------------------
    asym = AsymmetricAutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 4, down_block_out_channels=[8, 8, 16, 16],
        layers_per_down_block=1,
        up_block_types=["UpDecoderBlock2D"] * 4, up_block_out_channels=[8, 16, 32, 32],
        layers_per_up_block=1, norm_num_groups=4, sample_size=32,
    ).eval()
    randomize(asym, gen)
    sd = save_folder(asym, "vae_asym_tiny")
    save_file(original_layout(sd, 4), os.path.join(OUT, "vae_asym_tiny_original.safetensors"))
    x = torch.rand(1, 3, 32, 40, generator=gen) * 2 - 1
    mask = make_mask(32, 40, gen)
    z = torch.randn(1, 4, 4, 5, generator=gen)
    io = {
        "x": x, "mask": mask, "z": z, "mean": asym.encode(x).latent_dist.mean,
        "dec_masked": asym.decode(z, image=x, mask=mask).sample,
        "dec_plain": asym.decode(z).sample,
    }
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(OUT, "vae_asym_tiny_io.safetensors"))

    # -- x-1-5 widths, formula weights, 16x16 ---------------------------------------------
    x15 = x15_vae()
    x = torch.rand(1, 3, 16, 16, generator=gen) * 2 - 1
    mask = make_mask(16, 16, gen)
    z = torch.randn(1, 4, 2, 2, generator=gen)
    io = {
        "x": x, "mask": mask, "z": z, "mean": x15.encode(x).latent_dist.mean,
        "dec_masked": x15.decode(z, image=x, mask=mask).sample,
        "dec_plain": x15.decode(z).sample,
        # a few weights, so the Rust formula can be checked directly
        "check.decoder.up_blocks.1.resnets.2.conv1.weight": x15.state_dict()["decoder.up_blocks.1.resnets.2.conv1.weight"][:2].contiguous(),
        "check.encoder.mid_block.attentions.0.group_norm.weight": x15.state_dict()["encoder.mid_block.attentions.0.group_norm.weight"].contiguous(),
    }
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(OUT, "vae_asym_x15_io.safetensors"))
    print("wrote VAE fixtures to", OUT)


if __name__ == "__main__":
    main()
