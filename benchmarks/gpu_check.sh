#!/usr/bin/env bash
# The GPU check: the full-size figures of docs/training.md, in one run of at most ~9.5 minutes on
# one H200 (or any CUDA GPU with >= 80 GB), installing nothing from the network.
#
#   bash benchmarks/gpu_wheels.sh        # here, once: .whl/ with trl, datasets, sam2, hydra, ...
#   bash benchmarks/gpu_check.sh         # on the GPU machine (device tool: carry [".whl"])
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh   # every step, on CPU, tiny
#
# Steps, each writing its JSON as soon as it is measured into $OUT (when set, the device tool's
# folder) or runs/gpu_check/ -- 7 files: env.json, one JSON per step, steps.jsonl (exit code and
# seconds of each), gpu_check.log (everything printed) -- in order of value (a step that fails or times out is recorded and
# the next one runs):
#   1. 3B (qwen2.5-vl-3b preset, random weights) GRPO step of configs/grpo_cod.yaml as the recipe
#      says: full fine-tuning, bf16, gradient checkpointing, 1 prompt x 4 generations, 400-token
#      completions, SAM2.1-L; sdpa attention (no flash-attn there); + eval of 8 images.
#   2. reward path with SAM2.1-L on CUDA: encode-once vs the official per-completion path
#      (benchmarks/bench_reward.py, G = 4 and 8).
#   3. 7B (qwen2.5-vl-7b preset) GRPO step with LoRA (configs/grpo_cod_lora.yaml's adapter).
#   4. eval throughput of the 3B: 16 images, batched vs one at a time, 64-token answers.
# The machine's torch/transformers/accelerate/peft are used (transformers 5.17 there: TRL 1.16
# needs >= 4.56.2); the versions are recorded in env.json.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RESULTS=${OUT:-runs/gpu_check}
mkdir -p "$RESULTS"
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
START=$(date +%s)
log() { echo "[gpu_check +$(( $(date +%s) - START ))s] $*"; }

# ---------------------------------------------------------------- environment (no network)
if ! "$PY" -c "import trl, sam2, hydra, datasets" 2>/dev/null; then
  [ -d .whl ] || { echo "error: trl/sam2/... missing and no .whl/ (run benchmarks/gpu_wheels.sh here)" >&2; exit 1; }
  log "installing the carried wheels into /tmp/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" -c "import seg_r1" 2>/dev/null || export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
"$PY" - "$RESULTS/env.json" <<'EOF'
import json, sys, cv2, torch, transformers, trl, accelerate, peft
info = {"torch": torch.__version__, "opencv": cv2.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
        "accelerate": accelerate.__version__, "peft": peft.__version__,
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(info)
EOF

if [ "${GPU_CHECK_TINY:-0}" = 1 ]; then  # the CPU rehearsal: same steps, tiny models
  P3=tiny; P7=tiny; SAM=tiny; SAM_CONFIG=sam2.1_hiera_t.yaml; CKPT=${GPU_CHECK_CKPT:-runs/gpu_check_tiny}
  LEN=8; EVAL_N=2; EVAL_LEN=8; REWARD=(--groups 2 --repeats 1 --image-size 256 --frame 256)
  LIMIT=(600 300 600 300)  # the CPU rehearsal is slower; limits on the GPU below
else
  P3=qwen2.5-vl-3b; P7=qwen2.5-vl-7b; SAM=hiera_l; SAM_CONFIG=sam2.1_hiera_l.yaml; CKPT=${GPU_CHECK_CKPT:-runs/full}
  LEN=400; EVAL_N=16; EVAL_LEN=64; REWARD=(--groups 4 8 --repeats 2)
  LIMIT=(200 60 170 120)  # 550 s of steps + ~25 s set-up; the 2026-12-04 run's steps took 184/39/142 s,
                          # its eval step hit a 45 s limit (16 images x 2 passes + the load)
fi
BENCH=("$PY" benchmarks/bench_full_size.py --device "$DEVICE" --sam2-preset "$SAM"
       --scenes "$CKPT/scenes768")

step() {  # name, timeout seconds, command...  (the device tool returns at most 8 files)
  local name=$1 limit=$2; shift 2
  log "step $name (limit ${limit}s): $*" | tee -a "$RESULTS/gpu_check.log"
  local t0=$(date +%s)
  timeout "$limit" "$@" >> "$RESULTS/gpu_check.log" 2>&1
  local rc=$?
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 ))}" >> "$RESULTS/steps.jsonl"
  log "step $name: rc $rc after $(( $(date +%s) - t0 ))s" | tee -a "$RESULTS/gpu_check.log"
}

step 3b_full "${LIMIT[0]}" "${BENCH[@]}" --preset "$P3" --checkpoints "$CKPT/$P3" \
  --max-completion-length "$LEN" --eval-images 8 --eval-max-new-tokens "$EVAL_LEN" \
  --out "$RESULTS/3b_full.json"
step reward_path "${LIMIT[1]}" "$PY" benchmarks/bench_reward.py --config "$SAM_CONFIG" \
  --device "$DEVICE" "${REWARD[@]}" --out "$RESULTS/reward_path.json"
step 7b_lora "${LIMIT[2]}" "${BENCH[@]}" --preset "$P7" --checkpoints "$CKPT/$P7" --lora \
  --max-completion-length "$LEN" --parts train --out "$RESULTS/7b_lora.json"
step eval_3b "${LIMIT[3]}" "${BENCH[@]}" --preset "$P3" --checkpoints "$CKPT/$P3" --parts eval \
  --eval-images "$EVAL_N" --eval-max-new-tokens "$EVAL_LEN" --out "$RESULTS/eval_3b.json"
log "done: $(ls "$RESULTS" | tr '\n' ' ')"
