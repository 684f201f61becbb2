#!/usr/bin/env bash
# Reinforcement learning alone does the localising (the learning proof's stretch run,
# docs/learning_demo.md): SFT on answers written from the mask of ANOTHER training image
# (`--trace_from next`: the grammar and the marginal box distribution, but not where), then a
# long GRPO stage; summary.json reports the same bars as the quickstart, with the held-out curve.
#
#   bash scripts/learning_rl_only.sh                       # -> runs/learning_rl_only/
#   OUT_DIR=runs/rl2 bash scripts/learning_rl_only.sh --seed 1
#
# Defaults (overridable: later arguments win): the quickstart's scenes and recipe, with the SFT
# answers of the documented run (a 56 grid, full boxes: not the quickstart's 28-grid core boxes),
# SFT_STEPS (500) steps of grammar-only SFT and GRPO_STEPS (1100) GRPO steps (~55 min on 2
# cores), checkpoints every 100 steps so that RESUME=1 continues an interrupted run. Extra
# arguments go to seg_r1.quickstart (e.g. --grpo-args "...": it replaces the default GRPO_ARGS).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || { echo "no $PY: run 'bash setup.sh' first" >&2; exit 1; }
OUT_DIR=${OUT_DIR:-runs/learning_rl_only}
GRPO_ARGS=${GRPO_ARGS:-}
resume=()
[ "${RESUME:-0}" = 1 ] && resume=(--resume)
exec "$PY" -m seg_r1.quickstart --out "$OUT_DIR" \
    --sft-args "--trace_from next --trace_grid 56 --trace_box_margin 0" \
    --sft-steps "${SFT_STEPS:-500}" --grpo-steps "${GRPO_STEPS:-1100}" --save-steps 100 \
    ${GRPO_ARGS:+--grpo-args "$GRPO_ARGS"} "${resume[@]}" "$@"
