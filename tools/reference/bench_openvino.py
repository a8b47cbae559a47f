"""The model workloads of `clearpaint bench --workload ...` on OpenVINO's CPU plugin: the same
diffusers / transformers modules as bench_torch.py (same shapes, random weights, thread count),
converted with `openvino.convert_model` and compiled for the CPU. One workload per process, so
the peak resident memory is that workload's:

    .venv/bin/pip install openvino==2026.4.1
    .venv/bin/python bench_openvino.py --workload unet-step --precision default --threads 2
    .venv/bin/python bench_openvino.py --workload asym-decode --precision f32 --json out.json

--precision: `default` leaves INFERENCE_PRECISION_HINT to OpenVINO (bf16 on CPUs with
AVX512_BF16 / AMX, f32 elsewhere: what FastSD CPU and optimum-intel users get), or `bf16` /
`f32` set it. The JSON records the precision the compiled model reports.

inpaint-20 is not a pipeline here: it is the sum of what one 20-step inpaint at 512x512 runs
(the text encoder for the prompt and the empty negative prompt, the VAE encoder on the masked
image, 20 UNet steps at batch 2, the asymmetric decode), each timed as its own workload; the
JSON marks it `"estimate": true`. --small runs the tiny fixture models at 8x8 latents.
"""

import argparse
import json
import os
import resource
import statistics
import time

import openvino as ov
import torch

import bench_torch

INPAINT_PARTS = [("text-encoder", 2), ("vae-encode", 1), ("unet-step", 20), ("asym-decode", 1)]


def compile_workload(core, name, lat, config):
    built = bench_torch.model(name, "cpu", torch.float32, lat)
    if built is None:
        raise SystemExit(f"{name}: not a one-model workload")
    call, inputs = built
    with torch.inference_mode():
        converted = ov.convert_model(call, example_input=inputs)
    compiled = core.compile_model(converted, "CPU", config)
    return compiled, [x.numpy() for x in inputs]


def time_one(compiled, inputs, runs):
    request = compiled.create_infer_request()
    if runs > 0:
        request.infer(inputs)  # warm-up
    times = []
    for _ in range(max(runs, 1)):
        t = time.perf_counter()
        request.infer(inputs)
        times.append(time.perf_counter() - t)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--precision", default="default", choices=["default", "bf16", "f32"])
    ap.add_argument("--small", action="store_true", help="8x8 latents (script checks only)")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lat = 8 if args.small else 64
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
    if args.precision != "default":
        config["INFERENCE_PRECISION_HINT"] = args.precision

    parts = INPAINT_PARTS if args.workload == "inpaint-20" else [(args.workload, 1)]
    times, used = None, None
    for name, count in parts:
        compiled, inputs = compile_workload(core, name, lat, config)
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        used = hint.to_string() if hasattr(hint, "to_string") else str(hint)
        part = [count * s for s in time_one(compiled, inputs, args.runs)]
        times = part if times is None else [a + b for a, b in zip(times, part)]
        del compiled
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    result = {
        "workload": args.workload, "impl": "openvino", "device": "cpu",
        "precision": used, "precision_asked": args.precision, "small": args.small,
        "estimate": args.workload == "inpaint-20",
        "threads": args.threads, "runs_s": times, "median_s": statistics.median(times),
        "min_s": min(times), "max_s": max(times), "peak_rss_mib": peak,
        "openvino": ov.__version__,
    }
    print(f"{args.workload:14} {result['median_s']:8.3f}s  peak {peak:.0f} MiB  "
          f"({args.runs} runs, {args.threads} threads, OpenVINO {ov.__version__} {used})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([result], f, indent=2)


if __name__ == "__main__":
    main()
