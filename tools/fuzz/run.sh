#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with sanitizer coverage (stable Rust: no cargo-fuzz or
# nightly needed) and runs each for SECONDS (default 1800), one after another, or JOBS at a time.
#   tools/fuzz/run.sh [SECONDS] [TARGET...]        JOBS=4 NICE=10 tools/fuzz/run.sh 1800
# Seeds come from core/tests/fuzz/<target>/; the grown corpus, crashers and logs stay under
# target/fuzz/. A crasher goes into core/tests/fuzz/<target>/ (named crash-*) once fixed, where
# `cargo test -p clearpaint-core --test fuzz_regressions` replays it.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-1800}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors ldm_keys configs image_load png_text tokenizer prompt lora)
triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=$PWD/target/fuzz
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
# (fuzz/Cargo.toml turns debug assertions and overflow checks on, for every crate.)
# --target keeps the coverage flags off build scripts (they would not link without libFuzzer).
(cd fuzz && cargo build --release --target "$triple" --bins)
bin=$CARGO_TARGET_DIR/$triple/release
run_one() {
  local t=$1 corpus=target/fuzz/corpus/$1 art=target/fuzz/artifacts/$1/
  mkdir -p "$corpus" "$art" target/fuzz/logs
  # A user's file can be a large model or photo, but the parsers' paths are all reachable
  # from small inputs; ldm_keys' seed (the tiny checkpoint's key list) is ~64 KB.
  local max_len=16384
  [ "$t" = ldm_keys ] && max_len=131072
  [ "$t" = lora ] && max_len=65536
  nice -n "${NICE:-0}" "$bin/$t" "$corpus" core/tests/fuzz/"$t" -artifact_prefix="$art" -max_total_time="$secs" \
    -max_len=$max_len -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
    > target/fuzz/logs/"$t".log 2>&1 || echo "$t: stopped with a finding, see target/fuzz/logs/$t.log"
  echo "$t: $(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' target/fuzz/logs/"$t".log | tail -1)"
  echo "$t: $(grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' target/fuzz/logs/"$t".log | tr '\n' ' ')"
  echo "$t: crashers: $(ls "$art" | wc -l)"
}
jobs=${JOBS:-1}
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  run_one "$t" &
done
wait
