#!/bin/bash
# Night -> day over a dataset as a Slurm job array: `sbatch deploy/slurm-array.sh`.
# Each task reads its share from SLURM_ARRAY_TASK_ID / _COUNT / _MIN / _STEP (--shard env);
# the array must be contiguous (0-63, or 1-64, or 0-126:2), never a list with gaps.
# Re-submitting the same array resumes: outputs that exist are skipped. Each task writes
# /shared/bdd100k/day/_reports/shard-NNNN-of-0064.json; `clearpaint batch report
# /shared/bdd100k/day` merges them and names the shards still missing. --input and --out may
# be s3:// (or gs://, az://) URLs as well.
#SBATCH --job-name=clearpaint-weather
#SBATCH --array=0-63%16
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=02:00:00
#SBATCH --output=logs/clearpaint-%A_%a.out
set -euo pipefail
clearpaint --device gpu batch weather \
  --model weights/augan.safetensors \
  --input /shared/bdd100k/night --out /shared/bdd100k/day --recursive --uncertainty \
  --shard env
