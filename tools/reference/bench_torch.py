"""The model workloads of `clearpaint bench --workload ...` on PyTorch CPU, through diffusers /
transformers, with the same shapes, random weights and thread count. One workload per process
(so the peak resident memory is that workload's):

    .venv/bin/python bench_torch.py --workload unet-step --runs 3 --threads 2 --json out.json

Workloads (as in app/src/bench.rs):
  conv3x3       one 3x3 conv 320 -> 320 on 2x320x64x64 (15.1 GFLOP), the UNet's commonest layer
  unet-step     SD 1.5 inpainting UNet (9 channels), one step at 512x512 (64x64 latents), batch 2
  text-encoder  CLIP ViT-L/14 text encoder, 77 tokens
  vae-encode    SD VAE encoder at 512x512 (posterior mean)
  vae-decode    SD VAE decoder, 64x64 latents -> 512x512
  asym-decode   AsymmetricAutoencoderKL x-1-5 decoder with a masked image, 512x512
  augan         n/a: AU-GAN's reference is TensorFlow, not PyTorch
  inpaint-20    StableDiffusionInpaintPipeline, 20 steps at 512x512, asymmetric x-1-5 decoder
"""

import argparse
import json
import os
import resource
import statistics
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def unet_config():
    with open(os.path.join(HERE, "fixtures", "unet_sd15_inpaint_config.json")) as f:
        cfg = json.load(f)
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def asym_vae():
    from diffusers import AsymmetricAutoencoderKL
    return AsymmetricAutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        down_block_out_channels=[128, 256, 512, 512], layers_per_down_block=2,
        up_block_types=["UpDecoderBlock2D"] * 4,
        up_block_out_channels=[192, 384, 768, 768], layers_per_up_block=3,
        act_fn="silu", latent_channels=4, norm_num_groups=32, sample_size=256,
        scaling_factor=0.18215,
    ).eval()


def sd_vae():
    from diffusers import AutoencoderKL
    return AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=[128, 256, 512, 512], layers_per_block=2,
        latent_channels=4, norm_num_groups=32, sample_size=512, scaling_factor=0.18215,
    ).eval()


def text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel
    return CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
    )).eval()


def workload(name):
    """Returns a zero-argument function that runs the workload once."""
    g = torch.Generator().manual_seed(0)
    if name == "conv3x3":
        conv = torch.nn.Conv2d(320, 320, 3, padding=1)
        x = torch.randn(2, 320, 64, 64, generator=g)
        return lambda: conv(x)
    if name == "unet-step":
        from diffusers import UNet2DConditionModel
        unet = UNet2DConditionModel(**unet_config()).eval()
        x = torch.randn(2, 9, 64, 64, generator=g)
        ctx = torch.randn(2, 77, 768, generator=g)
        t = torch.tensor([500, 500])
        return lambda: unet(x, t, encoder_hidden_states=ctx).sample
    if name == "text-encoder":
        te = text_encoder()
        ids = torch.tensor([[(i * 613) % 49408 for i in range(77)]])
        return lambda: te(ids).last_hidden_state
    if name == "vae-encode":
        vae = sd_vae()
        x = torch.rand(1, 3, 512, 512, generator=g) * 2 - 1
        return lambda: vae.encode(x).latent_dist.mean
    if name == "vae-decode":
        vae = sd_vae()
        z = torch.randn(1, 4, 64, 64, generator=g)
        return lambda: vae.decode(z).sample
    if name == "asym-decode":
        vae = asym_vae()
        z = torch.randn(1, 4, 64, 64, generator=g)
        image = torch.rand(1, 3, 512, 512, generator=g) * 2 - 1
        mask = (torch.rand(1, 1, 512, 512, generator=g) > 0.5).float()
        return lambda: vae.decode(z, image=image, mask=mask).sample
    if name == "inpaint-20":
        from diffusers import (DPMSolverMultistepScheduler, StableDiffusionInpaintPipeline,
                               UNet2DConditionModel)
        from PIL import Image
        from transformers import CLIPTokenizer
        tok_dir = os.path.join(HERE, "fixtures", "tiny_sd_inpaint9", "tokenizer")
        pipe = StableDiffusionInpaintPipeline(
            vae=asym_vae(), text_encoder=text_encoder(),
            tokenizer=CLIPTokenizer.from_pretrained(tok_dir) if os.path.isdir(tok_dir) else None,
            unet=UNet2DConditionModel(**unet_config()).eval(),
            scheduler=DPMSolverMultistepScheduler(use_karras_sigmas=True),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        img = Image.new("RGB", (512, 512), (120, 90, 60))
        mask = Image.new("L", (512, 512), 0)
        mask.paste(255, (128, 128, 384, 384))
        return lambda: pipe("a red barn", image=img, mask_image=mask, num_inference_steps=20,
                            guidance_scale=7.5, output_type="np")
    raise SystemExit(f"{name}: no PyTorch reference (AU-GAN's is TensorFlow)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with torch.inference_mode():
        f = workload(args.workload)
        if args.runs > 0:
            f()  # warm-up
        times = []
        for _ in range(max(args.runs, 1)):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    result = {
        "workload": args.workload, "impl": "pytorch", "device": "cpu",
        "threads": args.threads, "runs_s": times, "median_s": statistics.median(times),
        "min_s": min(times), "max_s": max(times), "peak_rss_mib": peak,
        "torch": torch.__version__,
    }
    print(f"{args.workload:14} {result['median_s']:8.3f}s  peak {peak:.0f} MiB  "
          f"({args.runs} runs, {args.threads} threads, torch {torch.__version__})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([result], f, indent=2)


if __name__ == "__main__":
    main()
