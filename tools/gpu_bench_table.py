"""The markdown table of a tools/gpu-bench.sh run: per workload, clearpaint (wgpu) f16 and f32
and PyTorch fp16 and fp32 medians, device memory, and the ratios clearpaint / PyTorch at the
same precision. Standard library only.

    python3 tools/gpu_bench_table.py OUTDIR [--small]
"""

import json
import os
import sys

WORKLOADS = ["unet-step", "text-encoder", "vae-decode", "asym-decode", "inpaint-20"]


def load(out, impl, w, p):
    path = os.path.join(out, f"{impl}_{w}_{p}.json")
    if os.path.exists(path):
        with open(path) as f:
            rows = json.load(f)
        return rows[0] if rows else None
    failed = os.path.join(out, f"{impl}_{w}_{p}.failed")
    if os.path.exists(failed):
        with open(failed) as f:
            return {"failed": f.read().strip()}
    return None


def cell(r, mem_key):
    if r is None:
        return "n/a"
    if "failed" in r:
        return "failed"
    mem = r.get(mem_key)
    return f"{r['median_s']:.3f} s" + (f" ({mem:.0f} MiB)" if mem else "")


def ratio(a, b):
    if not a or not b or "failed" in a or "failed" in b:
        return "n/a"
    return f"{a['median_s'] / b['median_s']:.2f}x"


def main():
    out = sys.argv[1]
    small = "--small" in sys.argv
    dev = ""
    devices = os.path.join(out, "devices.txt")
    if os.path.exists(devices):
        with open(devices) as f:
            dev = next((l.split("->", 1)[1].replace("<- selected", "").strip() for l in f if l.strip().startswith("gpu ->")), "")
    torch_dev = ""
    print(f"GPU benchmark{' (--small: a script check, not timings)' if small else ''}: clearpaint on {dev or 'wgpu'}")
    print()
    print("| workload | clearpaint f16 | clearpaint f32 | PyTorch fp16 | PyTorch fp32 | f16 ratio | f32 ratio |")
    print("|---|---|---|---|---|---|---|")
    notes = []
    for w in WORKLOADS:
        c16, c32 = load(out, "clearpaint", w, "f16"), load(out, "clearpaint", w, "f32")
        t16, t32 = load(out, "pytorch", w, "fp16"), load(out, "pytorch", w, "fp32")
        for name, r in [("clearpaint f16", c16), ("clearpaint f32", c32), ("PyTorch fp16", t16), ("PyTorch fp32", t32)]:
            if r and "failed" in r:
                notes.append(f"- {w}, {name}: {r['failed']}")
            if r and r.get("impl") == "pytorch":
                torch_dev = r.get("device", torch_dev)
        print(f"| {w} | {cell(c16, 'device_reserved_mib')} | {cell(c32, 'device_reserved_mib')} | "
              f"{cell(t16, 'device_peak_mib')} | {cell(t32, 'device_peak_mib')} | {ratio(c16, t16)} | {ratio(c32, t32)} |")
    print()
    print(f"Medians; in brackets device memory (clearpaint: its pools' high-water mark; PyTorch: "
          f"max_memory_allocated). Ratio: clearpaint / PyTorch (below 1 = clearpaint faster). "
          f"PyTorch on {torch_dev or 'n/a'}.")
    if notes:
        print()
        print("\n".join(notes))


if __name__ == "__main__":
    main()
