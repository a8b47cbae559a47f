#!/bin/bash
# Night -> day over a dataset as a Slurm job array: `sbatch deploy/slurm-array.sh`.
# Each task reads its share from SLURM_ARRAY_TASK_ID / _COUNT / _MIN / _STEP (--shard env);
# the array must be contiguous (0-63, or 1-64, or 0-126:2), never a list with gaps.
# Re-submitting the same array resumes: outputs that exist are skipped.
#SBATCH --job-name=clearpaint-weather
#SBATCH --array=0-63%16
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=02:00:00
#SBATCH --output=logs/clearpaint-%A_%a.out
set -euo pipefail
mkdir -p /shared/bdd100k/day/_reports
clearpaint --device gpu batch weather \
  --model weights/augan.safetensors \
  --input /shared/bdd100k/night --out /shared/bdd100k/day --recursive --uncertainty \
  --shard env \
  --report "/shared/bdd100k/day/_reports/shard-${SLURM_ARRAY_TASK_ID}-of-${SLURM_ARRAY_TASK_COUNT}.json"
