"""Paint-by-Example fixtures: diffusers' PaintByExamplePipeline and PaintByExampleImageEncoder.

1. fixtures/tiny_pbe/: a Paint-by-Example pipeline folder in the real layout
   (image_encoder/, unet/, vae/, scheduler/, feature_extractor/) with a tiny CLIP vision tower
   (9 layers, so a 2-block mapper) and the 9-channel UNet and VAE of tiny_sd_inpaint9.
2. fixtures/example_io.safetensors:
   - the exemplar (a 45x37 image: resized and cropped by the processor), its pixel values,
     embedding and the unconditional vector;
   - pipeline results on pipeline_io's image, mask and latents, several schedulers, guidance on
     and off: decoded by the folder's VAE as diffusers does, and with the tiny asymmetric VAE as
     the pipeline's VAE (as the inpaint fixtures: it encodes the masked image), diffusers' final
     latents decoded conditioned on the image and the repaint mask
     (`AsymmetricAutoencoderKL.decode(z, image, mask)`, as clearpaint's inpaint pipeline does);
   - CLIP ViT-L/14 at its real widths (24 layers, 1024 wide, 16 heads, patch 14, 224 pixels)
     with formula weights rounded to float16 (the Rust test writes the same file): the
     preprocessed pixels' embedding for a 150x120 exemplar (upscaled, then cropped).

Checked by core/tests/example_pipeline.rs.
"""

import json
import os

import numpy as np
import torch
from diffusers import (AsymmetricAutoencoderKL, AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler,
                       PaintByExamplePipeline, PNDMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel)
from diffusers.pipelines.deprecated.paint_by_example import pipeline_paint_by_example as pbe_module
from diffusers.pipelines.deprecated.paint_by_example.image_encoder import PaintByExampleImageEncoder
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import CLIPImageProcessorPil, CLIPVisionConfig

from make_vae_fixtures import formula_value, randomize

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures")

_orig = pbe_module.retrieve_latents
pbe_module.retrieve_latents = lambda enc, generator=None, sample_mode="sample": _orig(enc, generator, "argmax")

SCHEDULERS = {"pndm": None, "ddim": (DDIMScheduler, {}), "euler": (EulerDiscreteScheduler, {})}


def exemplar(w, h):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(xx * 11 + yy * 3) % 256, (yy * 13) % 256, ((xx * yy) // 3) % 256], -1).astype(np.uint8)


def tiny_folder(gen):
    base = StableDiffusionInpaintPipeline.from_pretrained(os.path.join(FIX, "tiny_sd_inpaint9"), safety_checker=None,
                                                          requires_safety_checker=False)
    cfg = CLIPVisionConfig(hidden_size=16, intermediate_size=24, num_hidden_layers=9, num_attention_heads=2,
                           image_size=32, patch_size=8, projection_dim=16, hidden_act="quick_gelu")
    enc = PaintByExampleImageEncoder(cfg).eval()
    randomize(enc, gen)
    proc = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    pipe = PaintByExamplePipeline(vae=base.vae, image_encoder=enc, unet=base.unet, scheduler=base.scheduler,
                                  safety_checker=None, feature_extractor=proc, requires_safety_checker=False)
    out = os.path.join(FIX, "tiny_pbe")
    pipe.save_pretrained(out, safe_serialization=True)
    # model_index.json as Fantasy-Studio/Paint-by-Example writes it.
    index_path = os.path.join(out, "model_index.json")
    index = json.load(open(index_path))
    index["image_encoder"] = ["paint_by_example", "PaintByExampleImageEncoder"]
    index["feature_extractor"] = ["transformers", "CLIPImageProcessor"]
    json.dump(index, open(index_path, "w"), indent=2)
    # Reload, as a user would (the image encoder by hand: diffusers resolves it only from the hub).
    return PaintByExamplePipeline(
        vae=AutoencoderKL.from_pretrained(os.path.join(out, "vae")),
        image_encoder=PaintByExampleImageEncoder.from_pretrained(os.path.join(out, "image_encoder")).eval(),
        unet=UNet2DConditionModel.from_pretrained(os.path.join(out, "unet")),
        scheduler=PNDMScheduler.from_pretrained(os.path.join(out, "scheduler")),
        safety_checker=None, requires_safety_checker=False,
        feature_extractor=CLIPImageProcessorPil.from_pretrained(os.path.join(out, "feature_extractor")))


@torch.no_grad()
def vit_l14():
    cfg = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           image_size=224, patch_size=14, projection_dim=768, hidden_act="quick_gelu")
    enc = PaintByExampleImageEncoder(cfg).eval()
    sd = enc.state_dict()
    enc.load_state_dict({k: torch.from_numpy(formula_value(k, tuple(v.shape))).half().float() for k, v in sd.items()})
    ex = exemplar(150, 120)
    pixels = CLIPImageProcessorPil()(images=Image.fromarray(ex), return_tensors="pt").pixel_values
    return ex, pixels, enc(pixels)


@torch.no_grad()
def main():
    gen = torch.Generator().manual_seed(7)
    pipe = tiny_folder(gen)
    asym = AsymmetricAutoencoderKL.from_pretrained(os.path.join(FIX, "vae_asym_tiny")).eval()
    pio = load_file(os.path.join(FIX, "pipeline_io.safetensors"))
    image, mask, latents = pio["image"].numpy(), pio["mask"].numpy(), pio["latents"]
    ex = exemplar(45, 37)
    pixels = pipe.feature_extractor(images=Image.fromarray(ex), return_tensors="pt").pixel_values
    emb, uncond = pipe.image_encoder(pixels, return_uncond_vector=True)
    io = {"exemplar": torch.from_numpy(ex), "exemplar.pixels": pixels, "exemplar.embedding": emb,
          "exemplar.uncond": uncond}
    img_t = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    mask_t = (torch.from_numpy(mask)[None, None].float() / 255 >= 0.5).float()
    sf = pipe.vae.config.scaling_factor
    base_sched = pipe.scheduler
    for sname, spec in SCHEDULERS.items():
        pipe.scheduler = base_sched if spec is None else spec[0].from_config({**base_sched.config, **spec[1]})
        for g in (1.0, 5.0):
            args = dict(example_image=Image.fromarray(ex), image=Image.fromarray(image),
                        mask_image=Image.fromarray(mask), num_inference_steps=4, guidance_scale=g)
            std = pipe(**args, latents=latents.clone(), output_type="np").images[0]
            io[f"out.{sname}.{g}.standard"] = torch.from_numpy((std * 255).round().astype(np.uint8))
            # As the inpaint fixtures do: the asymmetric VAE is the pipeline's VAE (its encoder
            # makes the masked image's latents), and its decoder is conditioned.
            base_vae, pipe.vae = pipe.vae, asym
            z = pipe(**args, latents=latents.clone(), output_type="latent").images
            pipe.vae = base_vae
            dec = asym.decode(z / sf, image=img_t, mask=mask_t).sample
            u8 = ((dec / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            io[f"out.{sname}.{g}.asymmetric"] = torch.from_numpy(u8)
    big, big_pixels, big_emb = vit_l14()
    io.update({"vitl.exemplar": torch.from_numpy(big), "vitl.pixels.sum": big_pixels.sum((0, 2, 3)),
               "vitl.embedding": big_emb})
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(FIX, "example_io.safetensors"))
    print("wrote", len(io), "tensors")


if __name__ == "__main__":
    main()
