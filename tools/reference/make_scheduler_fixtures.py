"""Scheduler fixtures from diffusers with SD 1.5's scheduler config: timesteps, sigmas,
init_noise_sigma, and a run of step() on fixed model outputs (and fixed noise where a step is
stochastic), plus scale_model_input and add_noise.

Writes fixtures/schedulers.safetensors with, per case NAME:
  NAME.timesteps, NAME.sigmas (if any), NAME.init_noise_sigma, NAME.x0 (start sample),
  NAME.eps.K / NAME.noise.K (inputs of step K), NAME.scaled.K, NAME.out.K (step outputs),
  NAME.add_noise (x0 noised at step index 3 with eps.0)
"""

import os

import torch
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, PNDMScheduler)
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
SD15 = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
        "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "clip_sample": False,
        # What PNDMScheduler registers when loading SD 1.5's config; pipelines switching schedulers
        # with from_config(pipe.scheduler.config) carry it over.
        "timestep_spacing": "leading"}

CASES = [
    ("ddim", DDIMScheduler, {}, 10, {}),
    ("ddim_eta", DDIMScheduler, {}, 7, {"eta": 0.5}),
    ("ddim_trailing", DDIMScheduler, {"timestep_spacing": "trailing"}, 6, {}),
    ("pndm", PNDMScheduler, {}, 10, {}),
    ("pndm_7", PNDMScheduler, {}, 7, {}),
    ("euler", EulerDiscreteScheduler, {}, 10, {}),
    ("euler_a", EulerAncestralDiscreteScheduler, {}, 8, {}),
    ("dpmpp_2m", DPMSolverMultistepScheduler, {}, 10, {}),
    ("dpmpp_2m_karras", DPMSolverMultistepScheduler, {"use_karras_sigmas": True}, 12, {}),
    ("dpmpp_2m_linspace", DPMSolverMultistepScheduler, {"timestep_spacing": "linspace"}, 5, {}),
]


def main():
    out = {}
    g = torch.Generator().manual_seed(0)
    for name, cls, extra, n, kw in CASES:
        cfg = {**SD15, **extra}
        s = cls.from_config(cfg)
        s.set_timesteps(n)
        out[f"{name}.timesteps"] = s.timesteps.to(torch.float64)
        if hasattr(s, "sigmas") and s.sigmas is not None and len(s.sigmas):
            out[f"{name}.sigmas"] = torch.as_tensor(s.sigmas).to(torch.float64)
        out[f"{name}.init_noise_sigma"] = torch.tensor([float(s.init_noise_sigma)], dtype=torch.float64)
        x = torch.randn(1, 4, 3, 5, generator=g) * float(s.init_noise_sigma)
        out[f"{name}.x0"] = x.clone()
        for k, t in enumerate(s.timesteps):
            eps = torch.randn(1, 4, 3, 5, generator=g)
            out[f"{name}.eps.{k}"] = eps
            out[f"{name}.scaled.{k}"] = s.scale_model_input(x, t)
            step_kw = dict(kw)
            if name == "ddim_eta":
                noise = torch.randn(1, 4, 3, 5, generator=g)
                out[f"{name}.noise.{k}"] = noise
                step_kw["variance_noise"] = noise
            if name == "euler_a":
                noise = torch.randn(1, 4, 3, 5, generator=torch.Generator().manual_seed(100 + k))
                out[f"{name}.noise.{k}"] = noise
                step_kw["generator"] = torch.Generator().manual_seed(100 + k)
            x = s.step(eps, t, x, **step_kw).prev_sample
            out[f"{name}.out.{k}"] = x.clone()
        # add_noise at step index 3 (as an img2img start with begin index 3).
        s2 = cls.from_config(cfg)
        s2.set_timesteps(n)
        if hasattr(s2, "set_begin_index"):
            s2.set_begin_index(3)
        t3 = s2.timesteps[3:4]
        out[f"{name}.add_noise"] = s2.add_noise(out[f"{name}.x0"], out[f"{name}.eps.0"], t3)
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(HERE, "fixtures", "schedulers.safetensors"))
    print("wrote", len(out), "tensors")


if __name__ == "__main__":
    main()
