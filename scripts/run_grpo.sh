#!/usr/bin/env bash
# GRPO training of Seg-R1: the RL stage on camouflaged objects (SPEC §5), and the launcher behind
# scripts/run_prerl.sh and scripts/run_grpo_sod.sh (they only change RECIPE).
#
#   bash scripts/run_grpo.sh                                  # configs/grpo_cod.yaml on every GPU
#   RECIPE=configs/tiny/grpo.yaml bash scripts/run_grpo.sh    # CPU, tiny models, synthetic data
#   RESUME=1 bash scripts/run_grpo.sh                         # continue from the last checkpoint
#   bash scripts/run_grpo.sh --learning_rate 2e-6             # extra arguments go to seg_r1.grpo
#
# runs: accelerate launch --config_file $ACCELERATE_CONFIG --num_processes $NUM_PROCESSES \
#         -m seg_r1.grpo --config $RECIPE --model_name_or_path $MODEL_PATH ... "$@"
#   (without GPU: python -m torch.distributed.run --standalone --nproc_per_node $NUM_PROCESSES ...)
#
# Environment (an unset variable takes the recipe's value):
#   RECIPE             configs/grpo_cod.yaml
#   MODEL_PATH         recipe model_name_or_path (grpo_cod: runs/prerl, the Pre-RL output)
#   SAM2_CONFIG        recipe sam2_config (sam2.1_hiera_l.yaml)
#   SAM2_CHECKPOINT    recipe sam2_checkpoint (third_party/sam2/checkpoints/sam2.1_hiera_large.pt)
#   DATA_ROOT          recipe data_root (datasets)
#   OUTPUT_DIR         recipe output_dir (runs/grpo_cod)
#   NUM_PROCESSES      number of GPUs (nvidia-smi), 1 without GPU
#   ACCELERATE_CONFIG  configs/accelerate/zero2.yaml with GPUs; without GPU torchrun (gloo) is used
#                      unless ACCELERATE_CONFIG is set (zero2/zero3 also run on CPU: DeepSpeed's
#                      CPU accelerator uses gloo; mixed precision is the recipe's bf16)
#   RESUME             0; 1 = resume from the latest checkpoint-* in OUTPUT_DIR (same run, same data order)
#   PY                 .venv/bin/python
# Recipes under configs/tiny/ build their tiny checkpoints (python -m seg_r1.tiny) and synthetic
# data (utils/make_synthetic_dataset.py) under runs/tiny/ when missing. See docs/training.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
MODULE=${SEG_R1_MODULE:-seg_r1.grpo}   # scripts/sft.sh reuses this launcher with seg_r1.sft
die() { echo "error: $*" >&2; exit 1; }
[ -x "$PY" ] || die "no $PY: run 'bash setup.sh' first (or set PY)"
RECIPE=${RECIPE:-configs/grpo_cod.yaml}
[ -f "$RECIPE" ] || die "recipe $RECIPE not found (recipes: configs/*.yaml, configs/tiny/*.yaml)"

recipe_value() {  # the recipe's value of key $1 ('' when absent or null)
  "$PY" -c 'import sys, yaml
v = (yaml.safe_load(open(sys.argv[1])) or {}).get(sys.argv[2])
print("" if v is None else (" ".join(map(str, v)) if isinstance(v, list) else v))' "$RECIPE" "$1"
}
MODEL_PATH=${MODEL_PATH:-$(recipe_value model_name_or_path)}
DATA_ROOT=${DATA_ROOT:-$(recipe_value data_root)}
OUTPUT_DIR=${OUTPUT_DIR:-$(recipe_value output_dir)}
SFT_DATA=${SFT_DATA:-$(recipe_value sft_data)}
if [ "$MODULE" = seg_r1.grpo ]; then
  SAM2_CONFIG=${SAM2_CONFIG:-$(recipe_value sam2_config)}
  SAM2_CHECKPOINT=${SAM2_CHECKPOINT:-$(recipe_value sam2_checkpoint)}
  SEGMENTER=$(recipe_value segmenter)
  SEGMENTER=${SEGMENTER:-sam2}
fi
DATA_ROOT=${DATA_ROOT:-datasets}
[ -n "$MODEL_PATH" ] || die "no model: set MODEL_PATH or model_name_or_path in $RECIPE"
[ -n "$OUTPUT_DIR" ] || die "no output folder: set OUTPUT_DIR or output_dir in $RECIPE"

# ---------------------------------------------------------------- tiny CPU assets (configs/tiny)
if [[ "$MODEL_PATH" == runs/tiny/* && ! -f "$MODEL_PATH/config.json" ]] \
   || [[ "${SAM2_CHECKPOINT:-}" == runs/tiny/* && ! -f "${SAM2_CHECKPOINT:-}" ]]; then
  echo "building tiny checkpoints in runs/tiny (python -m seg_r1.tiny)"
  "$PY" -m seg_r1.tiny --out runs/tiny
fi
if [[ "$DATA_ROOT" == runs/tiny/* && -z "$SFT_DATA" ]]; then
  # 64 foreground scenes and 32 referring scenes of 112x112 pixels (the tiny recipes' frame)
  [ -d "$DATA_ROOT/Train/Image" ] || "$PY" utils/make_synthetic_dataset.py --out "$DATA_ROOT" \
    --task foreground --n 64 --size 112 --split train --seed 0
  [ -d "$DATA_ROOT/Refer_Segm/refcoco" ] || "$PY" utils/make_synthetic_dataset.py --out "$DATA_ROOT" \
    --task referring --dataset refcoco --n 32 --size 112 --split train --seed 0
fi

# ---------------------------------------------------------------- inputs (fail before launching)
is_hub_id() {  # org/name that is not a local path
  [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$ ]] && [ ! -e "${1%%/*}" ] \
    && [[ "$1" != runs/* && "$1" != third_party/* && "$1" != outputs/* ]]
}
if [ -f "$MODEL_PATH/config.json" ]; then :
elif is_hub_id "$MODEL_PATH"; then
  echo "note: MODEL_PATH=$MODEL_PATH is not a local folder; transformers loads it from the Hugging Face hub"
else
  die "policy checkpoint '$MODEL_PATH' not found (no config.json). Set MODEL_PATH to the previous
  stage's output (scripts/run_prerl.sh writes runs/prerl), to a hub id such as
  Qwen/Qwen2.5-VL-3B-Instruct (or a local copy: huggingface-cli download Qwen/Qwen2.5-VL-3B-Instruct
  --local-dir third_party/Qwen2.5-VL-3B-Instruct), or to tiny CPU weights (python -m seg_r1.tiny
  --out runs/tiny -> runs/tiny/policy)."
fi
if [ "$MODULE" = seg_r1.grpo ] && [ "$SEGMENTER" = sam2 ] && [ ! -f "$SAM2_CHECKPOINT" ]; then
  die "SAM2 checkpoint '$SAM2_CHECKPOINT' not found. Get sam2.1_hiera_large.pt as described in
  third_party/README.md (expected at third_party/sam2/checkpoints/sam2.1_hiera_large.pt) or set
  SAM2_CHECKPOINT (and SAM2_CONFIG for another size)."
fi
if [ -n "$SFT_DATA" ]; then
  [ -e "$SFT_DATA" ] || die "SFT data '$SFT_DATA' not found. FCoT is the HF dataset geshang/FCoT:
  huggingface-cli download geshang/FCoT --repo-type dataset --local-dir $SFT_DATA (or set SFT_DATA)"
else
  [ -d "$DATA_ROOT" ] || die "data root '$DATA_ROOT' not found: lay the datasets out as in
  datasets/README.md (then bash utils/prepare_datasets.sh), or set DATA_ROOT"
fi

# ---------------------------------------------------------------- launch
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  NUM_GPUS=$(nvidia-smi -L | wc -l)
else
  NUM_GPUS=0
fi
NUM_PROCESSES=${NUM_PROCESSES:-$(( NUM_GPUS > 0 ? NUM_GPUS : 1 ))}
if [ "$NUM_GPUS" -gt 0 ] || [ -n "${ACCELERATE_CONFIG:-}" ]; then
  ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-configs/accelerate/zero2.yaml}
  [ -f "$ACCELERATE_CONFIG" ] || die "accelerate config $ACCELERATE_CONFIG not found (configs/accelerate/)"
  LAUNCH=("$PY" -m accelerate.commands.launch --config_file "$ACCELERATE_CONFIG"
          --num_processes "$NUM_PROCESSES")
  HOW="accelerate ($ACCELERATE_CONFIG)"
else
  # No GPU: accelerate starts several CPU processes only through MPI, torchrun starts them
  # itself (gloo backend); the Trainer reads the same environment either way.
  LAUNCH=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$NUM_PROCESSES")
  HOW="torchrun on CPU (gloo)"
fi

ARGS=(--config "$RECIPE" --model_name_or_path "$MODEL_PATH" --output_dir "$OUTPUT_DIR")
if [ -n "$SFT_DATA" ]; then
  ARGS+=(--sft_data "$SFT_DATA")
else
  ARGS+=(--data_root "$DATA_ROOT")
fi
if [ "$MODULE" = seg_r1.grpo ]; then
  ARGS+=(--sam2_config "$SAM2_CONFIG" --sam2_checkpoint "$SAM2_CHECKPOINT")
fi
if [ "${RESUME:-0}" = 1 ]; then
  ARGS+=(--resume_from_checkpoint latest)
fi

mkdir -p "$OUTPUT_DIR"
echo "launching $MODULE: $NUM_PROCESSES process(es), $HOW, recipe $RECIPE -> $OUTPUT_DIR"
"${LAUNCH[@]}" -m "$MODULE" "${ARGS[@]}" "$@" 2>&1 | tee -a "$OUTPUT_DIR/train.log"
