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
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(FIX, "generate_io.safetensors"))
    print("wrote", len(io) - 1, "images")


if __name__ == "__main__":
    main()
