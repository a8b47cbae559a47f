"""clearpaint vs PyTorch vs OpenVINO, the same model workloads in the same session, one process
per workload and implementation (so each peak memory is that workload's), printed as a table of
times, ratios (ours / theirs; below 1 is faster) and peak resident memory.

OpenVINO (bench_openvino.py; `pip install openvino==2026.4.1`) runs at its default precision
(bf16 on CPUs with AVX512_BF16 / AMX, f32 elsewhere) and, with --openvino-f32, at f32 as well;
its inpaint-20 is the sum of its parts (marked "est."). Without openvino installed, or with
--no-openvino, those columns are left out.

    cd tools/reference && .venv/bin/python bench_compare.py                # CPU, all but inpaint-20
    .venv/bin/python bench_compare.py --workload unet-step --workload asym-decode --runs 3
    .venv/bin/python bench_compare.py --device gpu ...                      # ours on wgpu

It builds clearpaint (`cargo build -p clearpaint`, the dev profile: dependencies optimized)
unless --bin is given. Both sides use the same number of threads (default: all cores).
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT = ["unet-step", "text-encoder", "vae-encode", "vae-decode", "asym-decode", "augan"]


def run_json(cmd, env=None):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    try:
        proc = subprocess.run(cmd + ["--json", path], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            return None, (proc.stderr.strip().splitlines() or ["failed"])[-1]
        with open(path) as f:
            return json.load(f)[0], None
    finally:
        os.unlink(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", action="append", help="repeatable; default: " + ", ".join(DEFAULT))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu", help="where clearpaint runs: cpu or gpu")
    ap.add_argument("--bin", help="a built clearpaint binary (default: build one)")
    ap.add_argument("--precision", default="auto", help="clearpaint's --precision")
    ap.add_argument("--no-openvino", action="store_true")
    ap.add_argument("--openvino-f32", action="store_true", help="also OpenVINO at f32")
    args = ap.parse_args()
    workloads = args.workload or DEFAULT
    binary = args.bin
    if binary is None:
        subprocess.run(["cargo", "build", "-p", "clearpaint"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target", "debug", "clearpaint")
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))

    others = [("PyTorch", [sys.executable, os.path.join(HERE, "bench_torch.py")])]
    if not args.no_openvino and importlib.util.find_spec("openvino") is not None:
        ov = [sys.executable, os.path.join(HERE, "bench_openvino.py")]
        others.append(("OpenVINO", ov + ["--precision", "default"]))
        if args.openvino_f32:
            others.append(("OpenVINO f32", ov + ["--precision", "f32"]))
    rows = []
    for w in workloads:
        print(f"running {w} ...", file=sys.stderr, flush=True)
        ours = run_json([binary, "--precision", args.precision, "bench", "--device",
                         args.device, "--runs", str(args.runs), "--workload", w], env)
        theirs = [run_json(cmd + ["--workload", w, "--runs", str(args.runs),
                                  "--threads", str(args.threads)]) for _, cmd in others]
        rows.append((w, ours, theirs))
    print_table(args, [name for name, _ in others], rows)


def cell(result, key="median_s"):
    if not result:
        return "failed"
    est = " est." if result.get("estimate") else ""
    prec = result.get("precision")
    return f"{result[key]:.3f} s{est}" + (f" ({prec})" if prec else "")


def print_table(args, names, rows):
    runs = f"{args.runs} runs after a warm-up" if args.runs > 0 else "1 cold run"
    print(f"\n{args.threads} threads, {runs}, clearpaint on {args.device}; ratio = clearpaint / "
          "theirs, peak RSS in MiB\n")
    head = ["workload", "clearpaint"] + names + [f"ratio vs {n}" for n in names]
    head += ["peak ours"] + [f"peak {n}" for n in names]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for w, (ours, err_ours), theirs in rows:
        cols = [w, cell(ours)] + [cell(t) for t, _ in theirs]
        for t, _ in theirs:
            ok = ours and t
            cols.append(f"{ours['median_s'] / t['median_s']:.2f}x" if ok else "-")
        for r in [ours] + [t for t, _ in theirs]:
            cols.append(f"{r['peak_rss_mib']:.0f}" if r and r.get("peak_rss_mib") else "-")
        print("| " + " | ".join(cols) + " |")
        for name, err in [("clearpaint", err_ours)] + list(zip(names, [e for _, e in theirs])):
            if err:
                print(f"    {name}: {err}")


if __name__ == "__main__":
    main()
