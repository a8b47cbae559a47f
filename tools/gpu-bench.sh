#!/usr/bin/env bash
# The GPU benchmark, ready before any GPU is (issue 19): clearpaint on wgpu at f16 and f32 and
# PyTorch (CUDA when there is one, else its CPU at fp32) on the same workloads, one process
# per workload and precision (so each peak is its own), JSON per run and a markdown table.
#
#   tools/gpu-bench.sh OUTDIR [--small]
#
# --small: the tiny fixture models (tools/reference/fixtures) at 8x8 latents and one run each,
# to check the script end to end on a slow device (lavapipe); numbers from it mean nothing. Without it: the real 512x512 shapes,
# 3 runs after a warm-up (about 8 minutes on a data-centre GPU).
# Environment: CLEARPAINT_PROFILE (cargo profile, default release), PYTHON (default python3),
# PER_RUN_TIMEOUT (seconds per workload process, default 300), CLEARPAINT_FEATURES (cargo
# features of the build: default `spirv`, burn's SPIR-V compiler with cooperative matrices on
# Vulkan; none with --small, since lavapipe crashes on some of that SPIR-V).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: tools/gpu-bench.sh OUTDIR [--small]}
small=${2:-}
mkdir -p "$out"
profile=${CLEARPAINT_PROFILE:-release}
python=${PYTHON:-python3}
limit=${PER_RUN_TIMEOUT:-300}
runs=3
[ "$small" = "--small" ] && runs=1
workloads="unet-step text-encoder vae-decode asym-decode inpaint-20"

features=${CLEARPAINT_FEATURES-spirv}
[ "$small" = "--small" ] && features=${CLEARPAINT_FEATURES-}
cargo build --locked --profile "$profile" -p clearpaint --features "$features" || exit 1
dir=$profile; [ "$profile" = "dev" ] && dir=debug
bin=target/$dir/clearpaint
"$bin" --device gpu devices > "$out/devices.txt" 2>&1 || true

for p in f16 f32; do
  for w in $workloads; do
    echo "clearpaint $w $p"
    timeout "$limit" "$bin" --device gpu --precision "$p" bench --workload "$w" --runs "$runs" \
      $small --json "$out/clearpaint_${w}_${p}.json" > "$out/clearpaint_${w}_${p}.log" 2>&1 \
      || echo "failed (exit $?): $(grep -v XDG_RUNTIME "$out/clearpaint_${w}_${p}.log" | grep -m1 -E 'error|panicked|exceeds' | cut -c1-200)" \
        > "$out/clearpaint_${w}_${p}.failed"
  done
done

if "$python" -c "import torch, diffusers, transformers" 2>/dev/null; then
  if "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    tdev=cuda; dtypes="fp16 fp32"
  else
    tdev=cpu; dtypes="fp32"  # PyTorch's CPU fp16 kernels are not a baseline anyone runs
  fi
  for d in $dtypes; do
    for w in $workloads; do
      echo "pytorch $w $d ($tdev)"
      timeout "$limit" "$python" tools/reference/bench_torch.py --workload "$w" --device "$tdev" \
        --dtype "$d" --runs "$runs" $small --json "$out/pytorch_${w}_${d}.json" \
        > "$out/pytorch_${w}_${d}.log" 2>&1 \
        || echo "failed (exit $?)" > "$out/pytorch_${w}_${d}.failed"
    done
  done
else
  echo "no torch/diffusers/transformers for $python: PyTorch columns left out" | tee "$out/pytorch.missing"
fi

"$python" tools/gpu_bench_table.py "$out" $small | tee "$out/table.md"
