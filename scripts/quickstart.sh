#!/usr/bin/env bash
# The embedded default, on CPU with nothing downloaded (14-22 minutes on 2 cores, by machine):
#
#   bash setup.sh && bash scripts/quickstart.sh
#
# = python -m seg_r1.quickstart --out runs/quickstart: tiny checkpoints + synthetic scenes ->
# SFT warm-up on traces synthesised from the masks (configs/tiny/sft.yaml) -> GRPO with the
# classical segmenter (configs/tiny/grpo.yaml) -> held-out evaluation against the best constant
# answer, on shuffled images and against its own answers as constants; writes
# runs/quickstart/summary.json and curves.png (docs/training.md, "The quickstart";
# docs/learning_demo.md for the recipe's measurements).
#
# OUT_DIR (default runs/quickstart) and extra arguments (--sft-steps, --grpo-steps, --n-train,
# --seed, --save-steps N, --resume, ...) are passed to `python -m seg_r1.quickstart`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || { echo "no $PY: run 'bash setup.sh' first" >&2; exit 1; }
exec "$PY" -m seg_r1.quickstart --out "${OUT_DIR:-runs/quickstart}" "$@"
