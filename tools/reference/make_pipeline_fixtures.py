"""End-to-end inpainting fixtures from diffusers' StableDiffusionInpaintPipeline.

Tiny random-weight pipelines saved with save_pretrained (committed):
  fixtures/tiny_sd_inpaint9/   model_index.json, unet/ (9 input channels), vae/, text_encoder/,
                               tokenizer/ (a small byte-level BPE vocabulary), scheduler/
  fixtures/tiny_sd_inpaint4/   the same with a 4-channel UNet (latent blending)
  The asymmetric VAE is fixtures/vae_asym_tiny/ (make_vae_fixtures.py).

fixtures/pipeline_io.safetensors:
  image [32, 40, 3] u8, mask [32, 40] u8 (255 = repaint), latents [1, 4, 4, 5],
  out.{unet}.{scheduler}.{guidance}.{decoder} [32, 40, 3] u8 for unet in (9, 4), scheduler in
  (ddim, pndm, euler, dpmpp-2m, dpmpp-2m-karras), guidance in (1, 7.5), decoder in
  (asymmetric, standard); prompt "a red fox in the snow", negative prompt "blurry", 4 steps,
  strength 1, the given latents.

Determinism: diffusers samples the VAE posterior when it encodes the (masked) image; clearpaint
uses the posterior mean. The reference is patched to use the mean too (`retrieve_latents` ->
sample_mode="argmax"), so both start from the same latents and no random draw remains.
"""

import json
import os

import numpy as np
import torch
from diffusers import (AsymmetricAutoencoderKL, AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler,
                       EulerDiscreteScheduler, PNDMScheduler, StableDiffusionInpaintPipeline,
                       UNet2DConditionModel)
from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_inpaint as inpaint_module
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from make_vae_fixtures import randomize
from make_tokenizer_fixture import bytes_to_unicode

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")

_orig = inpaint_module.retrieve_latents
inpaint_module.retrieve_latents = lambda enc, generator=None, sample_mode="sample": _orig(enc, generator, "argmax")

PROMPT, NEGATIVE = "a red fox in the snow", "blurry"
SCHEDULERS = {
    "ddim": (DDIMScheduler, {}),
    "pndm": (PNDMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "dpmpp-2m": (DPMSolverMultistepScheduler, {}),
    "dpmpp-2m-karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
}


def tiny_tokenizer(d):
    """Byte-level BPE vocabulary: the 512 byte tokens, a few merges, BOS/EOS."""
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars]
    merges = ["r e", "e d</w>", "f o", "fo x</w>", "i n</w>", "t h", "th e</w>", "s n", "sn o", "sno w</w>", "b l", "bl u"]
    vocab += ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.json"), "w") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = CLIPTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"), pad_token="<|endoftext|>",
                        model_max_length=77)
    return tok, len(vocab)


@torch.no_grad()
def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    tok_dir = os.path.join(OUT, "_tok_tmp")
    tokenizer, n_vocab = tiny_tokenizer(tok_dir)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=n_vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=n_vocab - 2, eos_token_id=n_vocab - 1,
        pad_token_id=n_vocab - 1)).eval()
    randomize(text_encoder, gen)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[8, 8, 16, 16], layers_per_block=1,
        norm_num_groups=4, sample_size=32).eval()
    randomize(vae, gen)
    sched = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                          set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)
    pipes = {}
    for ch in (9, 4):
        unet = UNet2DConditionModel(
            sample_size=4, in_channels=ch, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4).eval()
        randomize(unet, gen)
        pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                              scheduler=sched, safety_checker=None, feature_extractor=None,
                                              requires_safety_checker=False)
        pipe.save_pretrained(os.path.join(OUT, f"tiny_sd_inpaint{ch}"), safe_serialization=True)
        # Reload, as a user would: the scheduler config then carries what the file says.
        pipes[ch] = StableDiffusionInpaintPipeline.from_pretrained(os.path.join(OUT, f"tiny_sd_inpaint{ch}"),
                                                                   safety_checker=None, requires_safety_checker=False)
    for f in os.listdir(tok_dir):
        os.remove(os.path.join(tok_dir, f))
    os.rmdir(tok_dir)
    asym = AsymmetricAutoencoderKL.from_pretrained(os.path.join(OUT, "vae_asym_tiny")).eval()

    h, w = 32, 40
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([(xx * 6) % 256, (yy * 8) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[8:24, 10:30] = 255
    mask[2:6, 33:38] = 255
    latents = torch.randn(1, 4, h // 8, w // 8, generator=gen)
    io = {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask), "latents": latents}
    for ch, pipe in pipes.items():
        base_vae = pipe.vae
        sched = pipe.scheduler
        for sname, (cls, extra) in SCHEDULERS.items():
            pipe.scheduler = cls.from_config({**pipe.scheduler.config, **extra})
            for g in (1.0, 7.5):
                for dec in ("asymmetric", "standard"):
                    pipe.vae = asym if dec == "asymmetric" else base_vae
                    res = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, image=Image.fromarray(image),
                               mask_image=Image.fromarray(mask), height=h, width=w, num_inference_steps=4,
                               guidance_scale=g, strength=1.0, latents=latents.clone(), output_type="np").images[0]
                    u8 = (res * 255).round().astype(np.uint8)
                    io[f"out.{ch}.{sname}.{g}.{dec}"] = torch.from_numpy(u8)
            pipe.scheduler = sched
        pipe.vae = base_vae
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(OUT, "pipeline_io.safetensors"))
    print("wrote", len(io), "tensors")


if __name__ == "__main__":
    main()
