"""clearpaint vs PyTorch, the same model workloads in the same session, one process per workload
and implementation (so each peak memory is that workload's), printed as a table of times,
ratios (ours / PyTorch; below 1 is faster) and peak resident memory.

    cd tools/reference && .venv/bin/python bench_compare.py                # CPU, all but inpaint-20
    .venv/bin/python bench_compare.py --workload unet-step --workload asym-decode --runs 3
    .venv/bin/python bench_compare.py --device gpu ...                      # ours on wgpu

It builds clearpaint (`cargo build -p clearpaint`, the dev profile: dependencies optimized)
unless --bin is given. Both sides use the same number of threads (default: all cores).
"""

import argparse
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
    args = ap.parse_args()
    workloads = args.workload or DEFAULT
    binary = args.bin
    if binary is None:
        subprocess.run(["cargo", "build", "-p", "clearpaint"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target", "debug", "clearpaint")
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))

    rows = []
    for w in workloads:
        print(f"running {w} ...", file=sys.stderr, flush=True)
        ours, err_ours = run_json([binary, "bench", "--device", args.device, "--runs",
                                   str(args.runs), "--workload", w], env)
        torch, err_torch = run_json([sys.executable, os.path.join(HERE, "bench_torch.py"),
                                     "--workload", w, "--runs", str(args.runs),
                                     "--threads", str(args.threads)])
        rows.append((w, ours, torch, err_ours, err_torch))

    runs = f"{args.runs} runs after a warm-up" if args.runs > 0 else "1 cold run"
    print(f"\n{args.threads} threads, {runs}, clearpaint on {args.device}")
    print(f"{'workload':14} {'clearpaint':>11} {'PyTorch':>10} {'ratio':>7} "
          f"{'peak MiB (ours)':>16} {'peak MiB (torch)':>17}")
    for w, ours, torch, err_ours, err_torch in rows:
        o = f"{ours['median_s']:10.3f}s" if ours else "     failed"
        t = f"{torch['median_s']:9.3f}s" if torch else "      n/a"
        r = f"{ours['median_s'] / torch['median_s']:6.2f}x" if ours and torch else "      -"
        mo = f"{ours['peak_rss_mib']:16.0f}" if ours and ours.get("peak_rss_mib") else f"{'-':>16}"
        mt = f"{torch['peak_rss_mib']:17.0f}" if torch else f"{'-':>17}"
        print(f"{w:14} {o} {t} {r} {mo} {mt}")
        for side, err in (("clearpaint", err_ours), ("PyTorch", err_torch)):
            if err:
                print(f"    {side}: {err}")


if __name__ == "__main__":
    main()
