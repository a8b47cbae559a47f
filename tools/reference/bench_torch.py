"""The model workloads of `clearpaint bench --workload ...` on PyTorch CPU, through diffusers /
transformers, with the same shapes, random weights and thread count. One workload per process
(so the peak resident memory is that workload's):

    .venv/bin/python bench_torch.py --workload unet-step --runs 3 --threads 2 --json out.json
    python3 bench_torch.py --workload unet-step --device cuda --dtype fp16   # a GPU (eager, SDPA)

--small runs the tiny fixture models (fixtures/tiny_sd_inpaint9, vae_kl_tiny, vae_asym_tiny)
at 8x8 latents, as `clearpaint bench --small` (to check a script end to end); --dtype fp16 loads the modules in torch.float16 (as
`torch_dtype=torch.float16`), inputs too.

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


class Call(torch.nn.Module):
    """A module and how a workload calls it, as one module taking tensors only (what
    `openvino.convert_model` traces, and what the PyTorch timing calls)."""

    def __init__(self, module, fn):
        super().__init__()
        self.module = module
        self.fn = fn

    def forward(self, *xs):
        return self.fn(self.module, *xs)


def small_model(name, on, t, g):
    """The tiny fixture models at 8x8 latents (as app/src/bench_small.rs): (Call, inputs)."""
    from diffusers import AsymmetricAutoencoderKL, AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel
    fx = os.path.join(HERE, "fixtures")
    pipe_dir = os.path.join(fx, "tiny_sd_inpaint9")
    if name == "unet-step":
        unet = on(UNet2DConditionModel.from_pretrained(os.path.join(pipe_dir, "unet")).eval())
        x, ctx = t(torch.randn(2, 9, 8, 8, generator=g)), t(torch.randn(2, 77, 16, generator=g))
        ts = t(torch.tensor([500, 500]))
        return Call(unet, lambda m, x, ts, c: m(x, ts, encoder_hidden_states=c).sample), (x, ts, ctx)
    if name == "text-encoder":
        te = on(CLIPTextModel.from_pretrained(os.path.join(pipe_dir, "text_encoder")).eval())
        ids = t(torch.tensor([[(i * 61) % 526 for i in range(77)]]))
        return Call(te, lambda m, ids: m(ids).last_hidden_state), (ids,)
    if name in ("vae-decode", "asym-decode"):
        cls, d = ((AutoencoderKL, "vae_kl_tiny") if name == "vae-decode"
                  else (AsymmetricAutoencoderKL, "vae_asym_tiny"))
        vae = on(cls.from_pretrained(os.path.join(fx, d)).eval())
        px = 8 * 2 ** (len(vae.config.block_out_channels if name == "vae-decode"
                           else vae.config.up_block_out_channels) - 1)
        z = t(torch.randn(1, 4, 8, 8, generator=g))
        if name == "vae-decode":
            return Call(vae, lambda m, z: m.decode(z).sample), (z,)
        image = t(torch.rand(1, 3, px, px, generator=g) * 2 - 1)
        mask = t((torch.rand(1, 1, px, px, generator=g) > 0.5).float())
        return asym_call(vae), (z, image, mask)
    return None


def small_pipeline(on):
    """The tiny 20-step inpaint (as app/src/bench_small.rs)."""
    from diffusers import AsymmetricAutoencoderKL, StableDiffusionInpaintPipeline
    from PIL import Image
    fx = os.path.join(HERE, "fixtures")
    vae = AsymmetricAutoencoderKL.from_pretrained(os.path.join(fx, "vae_asym_tiny"))
    pipe = StableDiffusionInpaintPipeline.from_pretrained(
        os.path.join(fx, "tiny_sd_inpaint9"), vae=vae, safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    pipe = on(pipe)
    pipe.set_progress_bar_config(disable=True)
    img = Image.new("RGB", (64, 64), (120, 90, 60))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    return lambda: pipe("a red barn", image=img, mask_image=mask, num_inference_steps=20,
                        height=64, width=64, output_type="np")


def asym_call(vae):
    return Call(vae, lambda m, z, image, mask: m.decode(z, image=image, mask=mask).sample)


def converters(device, dtype):
    def on(m):
        return m.to(device=device, dtype=dtype)

    def t(x):
        return x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)

    return on, t


def model(name, device="cpu", dtype=torch.float32, lat=64):
    """(Call, inputs) of a one-model workload, or None for inpaint-20."""
    g = torch.Generator().manual_seed(0)
    px = 8 * lat
    on, t = converters(device, dtype)
    if lat == 8:
        small = small_model(name, on, t, g)
        if small is not None or name == "inpaint-20":
            return small
    if name == "conv3x3":
        conv = on(torch.nn.Conv2d(320, 320, 3, padding=1))
        return Call(conv, lambda m, x: m(x)), (t(torch.randn(2, 320, lat, lat, generator=g)),)
    if name == "unet-step":
        from diffusers import UNet2DConditionModel
        unet = on(UNet2DConditionModel(**unet_config()).eval())
        x = t(torch.randn(2, 9, lat, lat, generator=g))
        ctx = t(torch.randn(2, 77, 768, generator=g))
        ts = t(torch.tensor([500, 500]))
        return Call(unet, lambda m, x, ts, c: m(x, ts, encoder_hidden_states=c).sample), (x, ts, ctx)
    if name == "text-encoder":
        ids = t(torch.tensor([[(i * 613) % 49408 for i in range(77)]]))
        return Call(on(text_encoder()), lambda m, ids: m(ids).last_hidden_state), (ids,)
    if name == "vae-encode":
        x = t(torch.rand(1, 3, px, px, generator=g) * 2 - 1)
        return Call(on(sd_vae()), lambda m, x: m.encode(x).latent_dist.mean), (x,)
    if name == "vae-decode":
        z = t(torch.randn(1, 4, lat, lat, generator=g))
        return Call(on(sd_vae()), lambda m, z: m.decode(z).sample), (z,)
    if name == "asym-decode":
        z = t(torch.randn(1, 4, lat, lat, generator=g))
        image = t(torch.rand(1, 3, px, px, generator=g) * 2 - 1)
        mask = t((torch.rand(1, 1, px, px, generator=g) > 0.5).float())
        return asym_call(on(asym_vae())), (z, image, mask)
    if name == "inpaint-20":
        return None
    raise SystemExit(f"{name}: no PyTorch reference (AU-GAN's is TensorFlow)")


def workload(name, device="cpu", dtype=torch.float32, lat=64):
    """Returns a zero-argument function that runs the workload once."""
    built = model(name, device, dtype, lat)
    if built is not None:
        call, inputs = built
        return lambda: call(*inputs)
    on, _ = converters(device, dtype)
    if lat == 8:
        return small_pipeline(on)
    px = 8 * lat
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
    pipe = on(pipe)
    pipe.set_progress_bar_config(disable=True)
    img = Image.new("RGB", (px, px), (120, 90, 60))
    mask = Image.new("L", (px, px), 0)
    mask.paste(255, (px // 4, px // 4, 3 * px // 4, 3 * px // 4))
    return lambda: pipe("a red barn", image=img, mask_image=mask, num_inference_steps=20,
                        guidance_scale=7.5, height=px, width=px, output_type="np")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16"])
    ap.add_argument("--small", action="store_true", help="8x8 latents (script checks only)")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    cuda = args.device.startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    with torch.inference_mode():
        f = workload(args.workload, args.device, dtype, 8 if args.small else 64)
        if args.runs > 0:
            f()  # warm-up
            sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(max(args.runs, 1)):
            t = time.perf_counter()
            f()
            sync()
            times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    device_name = torch.cuda.get_device_name() if cuda else "cpu"
    result = {
        "workload": args.workload, "impl": "pytorch", "device": device_name,
        "precision": args.dtype, "small": args.small,
        "threads": args.threads, "runs_s": times, "median_s": statistics.median(times),
        "min_s": min(times), "max_s": max(times), "peak_rss_mib": peak,
        "device_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "torch": torch.__version__,
    }
    print(f"{args.workload:14} {result['median_s']:8.3f}s  peak {peak:.0f} MiB  "
          f"({args.runs} runs, {args.threads} threads, {device_name} {args.dtype}, "
          f"torch {torch.__version__})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([result], f, indent=2)


if __name__ == "__main__":
    main()
