#!/usr/bin/env bash
# SOD fine-tune of Seg-R1 (optional, SPEC §5): GRPO from the RL checkpoint on DUTS-TR. Same
# environment variables as scripts/run_grpo.sh, with another default recipe:
#
#   bash scripts/run_grpo_sod.sh                                     # configs/grpo_sod.yaml on every GPU
#   RECIPE=configs/tiny/grpo_sod.yaml bash scripts/run_grpo_sod.sh   # CPU, tiny models, synthetic data
#   RESUME=1 bash scripts/run_grpo_sod.sh                            # continue from the last checkpoint
#
# runs: RECIPE=configs/grpo_sod.yaml bash scripts/run_grpo.sh "$@"
#   (MODEL_PATH default: runs/grpo_cod, the RL output; OUTPUT_DIR default: runs/grpo_sod)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RECIPE=${RECIPE:-configs/grpo_sod.yaml} exec bash scripts/run_grpo.sh "$@"
