"""Text-to-image fixtures: diffusers' StableDiffusionPipeline on the tiny 4-channel pipeline
(fixtures/tiny_sd_inpaint4: its UNet, VAE, text encoder, tokenizer and scheduler), the same
initial latents as pipeline_io.safetensors, several schedulers, guidance on and off, decoded by
the folder's VAE or by the tiny asymmetric VAE without condition
(`AsymmetricAutoencoderKL.decode(z)`, as the paper's text-to-image use).

Writes fixtures/generate_io.safetensors, checked by core/tests/generate_pipeline.rs.
"""

import os

import numpy as np
import torch
from diffusers import (AsymmetricAutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler,
                       EulerDiscreteScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline,
                       StableDiffusionPipeline)
from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_img2img as img2img_module
from PIL import Image
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures")
SCHEDULERS = {
    "ddim": (DDIMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "dpmpp-2m-karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
}


@torch.no_grad()
def main():
    inpaint = StableDiffusionInpaintPipeline.from_pretrained(os.path.join(FIX, "tiny_sd_inpaint4"),
                                                             safety_checker=None, requires_safety_checker=False)
    pipe = StableDiffusionPipeline(vae=inpaint.vae, text_encoder=inpaint.text_encoder, tokenizer=inpaint.tokenizer,
                                   unet=inpaint.unet, scheduler=inpaint.scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    asym = AsymmetricAutoencoderKL.from_pretrained(os.path.join(FIX, "vae_asym_tiny")).eval()
    latents = load_file(os.path.join(FIX, "pipeline_io.safetensors"))["latents"]
    io = {"latents": latents}
    base_vae, base_sched = pipe.vae, pipe.scheduler
    for sname, (cls, extra) in SCHEDULERS.items():
        pipe.scheduler = cls.from_config({**base_sched.config, **extra})
        for g in (1.0, 7.5):
            for dec in ("asymmetric", "standard"):
                pipe.vae = asym if dec == "asymmetric" else base_vae
                res = pipe(prompt="a red fox in the snow", negative_prompt="blurry", height=32, width=40,
                           num_inference_steps=4, guidance_scale=g, latents=latents.clone(),
                           output_type="np").images[0]
                io[f"out.{sname}.{g}.{dec}"] = torch.from_numpy((res * 255).round().astype(np.uint8))
    # Image-to-image: the image's latents are the posterior's mode (clearpaint's encode) and the
    # noise added to them is the fixture's latents.
    orig = img2img_module.retrieve_latents
    img2img_module.retrieve_latents = lambda enc, generator=None, sample_mode="sample": orig(enc, generator, "argmax")
    img2img_module.randn_tensor = lambda shape, generator=None, device=None, dtype=None, layout=None: latents.clone()
    image = load_file(os.path.join(FIX, "pipeline_io.safetensors"))["image"].numpy()
    io["image"] = torch.from_numpy(image)
    i2i = StableDiffusionImg2ImgPipeline(vae=base_vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                         unet=pipe.unet, scheduler=base_sched, safety_checker=None,
                                         feature_extractor=None, requires_safety_checker=False)
    for sname in ("ddim", "dpmpp-2m-karras"):
        cls, extra = SCHEDULERS[sname]
        i2i.scheduler = cls.from_config({**base_sched.config, **extra})
        for dec in ("asymmetric", "standard"):
            i2i.vae = asym if dec == "asymmetric" else base_vae
            res = i2i(prompt="a red fox in the snow", negative_prompt="blurry", image=Image.fromarray(image),
                      strength=0.6, num_inference_steps=5, guidance_scale=7.5, output_type="np").images[0]
            io[f"img2img.{sname}.{dec}"] = torch.from_numpy((res * 255).round().astype(np.uint8))
    # Masked image-to-image: the inpaint pipeline with the 4-channel model at strength 0.6 (the
    # original blended back outside the mask after every step), the same noise; decoded by the
    # folder's VAE, or with the asymmetric VAE as the pipeline's VAE and its decoder conditioned
    # on the image and the repaint mask.
    from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_inpaint as inpaint_module
    orig_inpaint = inpaint_module.retrieve_latents
    inpaint_module.retrieve_latents = lambda enc, generator=None, sample_mode="sample": orig_inpaint(enc, generator, "argmax")
    inpaint_module.randn_tensor = lambda shape, generator=None, device=None, dtype=None, layout=None: latents.clone()
    mask = load_file(os.path.join(FIX, "pipeline_io.safetensors"))["mask"].numpy()
    img_t = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    mask_t = (torch.from_numpy(mask)[None, None].float() / 255 >= 0.5).float()
    for sname in ("ddim", "euler"):
        cls, extra = SCHEDULERS[sname]
        inpaint.scheduler = cls.from_config({**base_sched.config, **extra})
        for dec in ("asymmetric", "standard"):
            inpaint.vae = asym if dec == "asymmetric" else base_vae
            args = dict(prompt="a red fox in the snow", negative_prompt="blurry", image=Image.fromarray(image),
                        mask_image=Image.fromarray(mask), height=32, width=40, strength=0.6,
                        num_inference_steps=5, guidance_scale=7.5)
            if dec == "standard":
                res = inpaint(**args, output_type="np").images[0]
            else:
                z = inpaint(**args, output_type="latent").images
                res = (asym.decode(z / asym.config.scaling_factor, image=img_t, mask=mask_t).sample / 2 + 0.5)
                res = res.clamp(0, 1)[0].permute(1, 2, 0).numpy()
            io[f"img2img_masked.{sname}.{dec}"] = torch.from_numpy((res * 255).round().astype(np.uint8))
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(FIX, "generate_io.safetensors"))
    print("wrote", len(io) - 1, "images")


if __name__ == "__main__":
    main()
