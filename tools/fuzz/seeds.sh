#!/usr/bin/env bash
# Writes the seed corpora of the fuzz targets into core/tests/fuzz/<target>/ (committed, small;
# replayed by core/tests/fuzz_regressions.rs). Needs python3 and ImageMagick (/usr/bin/convert).
set -euo pipefail
cd "$(dirname "$0")/../.."
F=tools/reference/fixtures
S=core/tests/fuzz
rm -rf "$S"/*/seed-*
mkdir -p "$S"/{safetensors,ldm_keys,configs,image_load,png_text,tokenizer,prompt,lora}

for f in loader_block_fp16/diffusion_pytorch_model.fp16.safetensors loader_block_bf16.safetensors \
  loader_block_io.safetensors loader_block/diffusion_pytorch_model.safetensors; do
  cp "$F/$f" "$S/safetensors/seed-$(echo "$f" | tr / _)"
done
head -c 3000 "$F/loader_block_io.safetensors" > "$S/safetensors/seed-truncated.safetensors"

# The tiny single-file checkpoint's keys and shapes, one `key d0,d1,...` per line.
python3 - "$F/sd15_ldm_tiny.safetensors" "$S/ldm_keys/seed-sd15_ldm_tiny.txt" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
lines = [f"{k} {','.join(map(str, v['shape']))}" for k, v in h.items() if k != "__metadata__"]
open(sys.argv[2], "w").write("\n".join(sorted(lines)) + "\n")
PY

# configs: the first byte picks the reader (see fuzz/src/harness.rs `configs`).
seed() { { printf "\\x$(printf %02x "$1")"; cat "$2"; } > "$S/configs/seed-$3"; }
seed 0 "$F/unet_tiny_inpaint/config.json" unet
seed 1 "$F/vae_kl_tiny/config.json" vae
seed 2 "$F/clip_tiny/config.json" clip
seed 3 "$F/tiny_sd_inpaint9/scheduler/scheduler_config.json" scheduler
seed 4 "$F/tiny_sd_inpaint9/model_index.json" model_index
seed 20 "$F/tiny_sd_inpaint9/scheduler/scheduler_config.json" pipeline_scheduler
seed 5 "$F/tiny_sd_inpaint9/tokenizer/tokenizer.json" tokenizer_json
seed 21 "$F/tiny_sd_inpaint9/tokenizer/tokenizer_config.json" tokenizer_config
seed 6 "$F/unet_tiny_inpaint/config.json" unet_folder
seed 7 "$F/vae_kl_tiny/config.json" vae_folder
seed 8 "$F/clip_tiny/config.json" clip_folder
seed 9 "$F/vae_asym_tiny/config.json" asym_folder

# image_load: the first byte picks the extension (png jpg webp bmp tiff jpeg).
i=0
for ext in png jpg webp bmp tiff; do
  tmp=$(mktemp --suffix=".$ext")
  # (no dates or times: the seeds are the same bytes on every run)
  /usr/bin/convert -size 6x4 gradient:white-black -strip -define png:exclude-chunk=date,time "$tmp"
  { printf "\\x$(printf %02x $i)"; cat "$tmp"; } > "$S/image_load/seed-gradient-$ext"
  rm -f "$tmp"; i=$((i + 1))
done
{ printf '\x00'; cat assets/sample_mask.png; } > "$S/image_load/seed-sample_mask-png"

# png_text: the first byte is where the keyword ends (0: the `parameters` keyword).
printf '\x00a photo of a cat\nSteps: 20, Sampler: DDIM' > "$S/png_text/seed-latin1"
printf '\x00猫の写真 — “curly” 🐈' > "$S/png_text/seed-utf8"
printf '\x04Titlea\x00b' > "$S/png_text/seed-keyword-nul"

printf 'a photo of a cat, with a hat' > "$S/tokenizer/seed-plain"
printf '(masterpiece:1.2), [blurry], 猫 🐈 <lora:x:0.5> BREAK don'"'"'t' > "$S/tokenizer/seed-mixed"
python3 -c "print(' '.join(['word'] * 120), end='')" > "$S/tokenizer/seed-long"
python3 - "$S/prompt" <<'PY'
import json, sys
prompts = [p["prompt"] for p in json.load(open("tools/reference/fixtures/prompt_a1111.json"))["prompts"]]
for i, p in enumerate(prompts[:24]):
    open(f"{sys.argv[1]}/seed-{i:02}", "w").write(p)
PY
printf '(a:1%0400d)' 0 > "$S/prompt/seed-infinite-weight"
# lora: the fixtures' small LoRA files (the large ones are too slow to mutate).
for f in kohya_attn old_diffusers peft; do cp "$F/lora/$f.safetensors" "$S/lora/seed-$f.safetensors"; done
du -sh "$S"
