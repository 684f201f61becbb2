#!/usr/bin/env bash
# Pre-RL stage of Seg-R1 (SPEC §5): GRPO from the Instruct model on DIS5K train, points-only
# answers. Same environment variables as scripts/run_grpo.sh, with another default recipe:
#
#   bash scripts/run_prerl.sh                                   # configs/prerl.yaml on every GPU
#   RECIPE=configs/tiny/prerl.yaml bash scripts/run_prerl.sh    # CPU, tiny models, synthetic data
#   RESUME=1 bash scripts/run_prerl.sh                          # continue from the last checkpoint
#
# runs: RECIPE=configs/prerl.yaml bash scripts/run_grpo.sh "$@"
#   (MODEL_PATH default: Qwen/Qwen2.5-VL-3B-Instruct; OUTPUT_DIR default: runs/prerl)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RECIPE=${RECIPE:-configs/prerl.yaml} exec bash scripts/run_grpo.sh "$@"
