#!/usr/bin/env bash
# SFT stage of Seg-R1 (optional, SPEC §5): FCoT on the Instruct model, or traces synthesised from
# segmentation masks (configs/tiny/sft.yaml). Same environment variables as scripts/run_grpo.sh
# (no SAM2 ones), plus SFT_DATA:
#
#   bash scripts/sft.sh                                   # configs/sft.yaml (FCoT) on every GPU
#   RECIPE=configs/tiny/sft.yaml bash scripts/sft.sh      # CPU, tiny policy, synthetic traces
#   RESUME=1 bash scripts/sft.sh                          # continue from the last checkpoint
#
# runs: accelerate launch --config_file $ACCELERATE_CONFIG --num_processes $NUM_PROCESSES \
#         -m seg_r1.sft --config $RECIPE --model_name_or_path $MODEL_PATH ... "$@"
#
# Environment (an unset variable takes the recipe's value):
#   RECIPE             configs/sft.yaml
#   MODEL_PATH         recipe model_name_or_path (Qwen/Qwen2.5-VL-3B-Instruct)
#   SFT_DATA           recipe sft_data (datasets/FCoT; get it with
#                      huggingface-cli download geshang/FCoT --repo-type dataset --local-dir datasets/FCoT)
#   DATA_ROOT          recipe data_root (used when the recipe has no sft_data)
#   OUTPUT_DIR         recipe output_dir (runs/sft)
#   NUM_PROCESSES, ACCELERATE_CONFIG, RESUME, PY: as scripts/run_grpo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RECIPE=${RECIPE:-configs/sft.yaml} SEG_R1_MODULE=seg_r1.sft exec bash scripts/run_grpo.sh "$@"
