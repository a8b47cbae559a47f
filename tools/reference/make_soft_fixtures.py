"""Soft-mask fixtures: differential diffusion as the paper's own code runs it
(exx8/differential-diffusion `SD2/diff_pipe.py`, `StableDiffusionDiffImg2ImgPipeline`; fetched,
passed with --diff-pipe, never committed).

- 4-channel: the tiny 4-channel pipeline (fixtures/tiny_sd_inpaint4) in the reference's own loop.
- 9-channel: the tiny inpainting pipeline (fixtures/tiny_sd_inpaint9) in the same loop, its UNet
  fed the conditioning diffusers' StableDiffusionInpaintPipeline computes for the same mask
  (binarized at 0.5 by its mask processor; `prepare_mask_latents`), as clearpaint does.

The change map is `1 - mask / 255` (white = full strength). The same noise as
pipeline_io.safetensors; image latents are the posterior's mode (clearpaint's encode); DDIM,
Euler and PNDM; guidance 7.5 with a negative prompt; strength 1 and 0.7. Decoded by the folder's
VAE (the reference's decode) or, with the tiny asymmetric VAE as the pipeline's VAE, the final
latents decoded by its decoder conditioned on the image and the binarized mask.

Writes fixtures/soft_io.safetensors, checked by core/tests/soft_mask.rs.
Usage: .venv/bin/python make_soft_fixtures.py --diff-pipe /path/to/differential-diffusion/SD2/diff_pipe.py
"""

import argparse
import importlib.util
import os
import sys

import diffusers.utils
import numpy as np
import torch
import transformers  # noqa: F401 (the module the reference imports from)
from diffusers import (AsymmetricAutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, PNDMScheduler,
                       StableDiffusionInpaintPipeline)
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from PIL import Image
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures")
SCHEDULERS = {"ddim": DDIMScheduler, "euler": EulerDiscreteScheduler, "pndm": PNDMScheduler}
NOISE = {}


def fixed_noise(shape, generator=None, device=None, dtype=None, layout=None):
    return NOISE["latents"].clone()


def load_reference(path):
    """The 2023 reference under today's diffusers / transformers: only moved names are shimmed."""
    diffusers.utils.randn_tensor = fixed_noise
    # transformers' lazy module (the one in sys.modules) takes names only through its __dict__.
    tf = sys.modules["transformers"]
    if "CLIPFeatureExtractor" not in dir(tf):
        tf.__dict__["CLIPFeatureExtractor"] = tf.CLIPImageProcessor
    spec = importlib.util.spec_from_file_location("diff_pipe", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.randn_tensor = fixed_noise
    return mod.StableDiffusionDiffImg2ImgPipeline


def soft_mask(h, w):
    """A ramp left to right over the top half, a white block with a grey halo below, black
    elsewhere: strengths 0, partial below and above 0.5, and 1."""
    m = np.zeros((h, w), np.uint8)
    xs = np.arange(w)
    m[: h // 2] = np.round(xs * 255.0 / (w - 1)).astype(np.uint8)[None]
    m[h // 2 + 2: h - 4, 6: 22] = 96
    m[h // 2 + 4: h - 6, 8: 20] = 255
    return m


def conditioning(inpaint, image, mask, vae):
    """diffusers' inpainting conditioning for `mask`: [mask latent, masked-image latents]."""
    h, w = mask.shape
    init = inpaint.image_processor.preprocess(Image.fromarray(image), height=h, width=w)
    m = inpaint.mask_processor.preprocess(Image.fromarray(mask), height=h, width=w)
    masked = init * (m < 0.5)
    inpaint.vae = vae
    mask_lat, masked_lat = inpaint.prepare_mask_latents(m, masked, 1, h, w, torch.float32, "cpu", None, False)
    return torch.cat([mask_lat, masked_lat], 1), m


def with_extra_channels(unet, extra):
    """The UNet as the reference calls it (4 channels in), fed the inpainting channels."""
    forward = unet.forward

    def fwd(sample, t, *args, **kwargs):
        x = torch.cat([sample, extra.repeat(sample.shape[0], 1, 1, 1)], 1)
        return forward(x, t, *args, **kwargs)

    unet.forward = fwd


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--diff-pipe", required=True, help="differential-diffusion's SD2/diff_pipe.py")
    args = ap.parse_args()
    DiffPipe = load_reference(args.diff_pipe)
    DiagonalGaussianDistribution.sample = lambda self, generator=None: self.mode()

    pio = load_file(os.path.join(FIX, "pipeline_io.safetensors"))
    image = pio["image"].numpy()
    NOISE["latents"] = pio["latents"]
    h, w = image.shape[:2]
    mask = soft_mask(h, w)
    img_t = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    change_map = torch.from_numpy((255 - mask).astype(np.float32) / 255)[None]
    asym = AsymmetricAutoencoderKL.from_pretrained(os.path.join(FIX, "vae_asym_tiny")).eval()
    io = {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask), "latents": pio["latents"]}
    for channels in ("4", "9"):
        base = StableDiffusionInpaintPipeline.from_pretrained(os.path.join(FIX, f"tiny_sd_inpaint{channels}"),
                                                              safety_checker=None, requires_safety_checker=False)
        for dec in ("standard", "asymmetric"):
            vae = asym if dec == "asymmetric" else base.vae
            unet = base.unet
            bin_mask = (torch.from_numpy(mask)[None, None].float() / 255 >= 0.5).float()
            if channels == "9":
                unet = StableDiffusionInpaintPipeline.from_pretrained(
                    os.path.join(FIX, "tiny_sd_inpaint9"), safety_checker=None, requires_safety_checker=False).unet
                extra, bin_mask = conditioning(base, image, mask, vae)
                with_extra_channels(unet, extra)
            pipe = DiffPipe(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=unet,
                            scheduler=base.scheduler, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False)
            pipe.vae = vae
            for sname, cls in SCHEDULERS.items():
                for strength in (1.0, 0.7):
                    # Set after construction: the reference's constructor rewrites clip_sample,
                    # a deprecation fix-up, not part of the method; the folder's config is kept.
                    pipe.scheduler = cls.from_config(base.scheduler.config)
                    final = {}
                    res = pipe(prompt=["a red fox in the snow"], negative_prompt=["blurry"], image=img_t,
                               map=change_map, strength=strength, num_inference_steps=6, guidance_scale=7.5,
                               output_type="np", callback=lambda i, t, z: final.update(z=z)).images[0]
                    if dec == "asymmetric":
                        z = final["z"] / asym.config.scaling_factor
                        res = (asym.decode(z, image=img_t, mask=bin_mask).sample / 2 + 0.5).clamp(0, 1)
                        res = res[0].permute(1, 2, 0).numpy()
                    key = f"soft.{channels}.{sname}.{strength}.{dec}"
                    io[key] = torch.from_numpy((res * 255).round().astype(np.uint8))
                    print(key, "done")
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(FIX, "soft_io.safetensors"))
    print("wrote", len(io) - 3, "images")


if __name__ == "__main__":
    main()
