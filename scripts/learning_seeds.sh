#!/usr/bin/env bash
# The learning proof on three seeds: the quickstart recipe as shipped, once per seed, then one
# table of the bars (seg_r1.learning.LEARNING_BARS) per seed (docs/learning_demo.md):
#
#   bash scripts/learning_seeds.sh                  # seeds 0 1 2 -> runs/learning_seeds/
#   SEEDS="3 4" bash scripts/learning_seeds.sh      # other seeds
#   bash scripts/learning_seeds.sh --grpo-steps 300 # extra arguments go to seg_r1.quickstart
#   CONTROLS=1 bash scripts/learning_seeds.sh       # + seg_r1.learning_controls on each seed
#
# Each seed runs in OUT_DIR/seed<N> (a full quickstart, ~15-25 minutes on 2 cores); a seed whose
# summary.json is already there is not run again, so an interrupted sweep continues where it
# stopped. The table is written to OUT_DIR/seeds.md and printed. With CONTROLS=1 each seed also
# gets the two controls of seg_r1.learning_controls (more SFT at GRPO's learning rate; GRPO on
# masks shifted by one image; ~8 minutes a seed), tabled in OUT_DIR/controls.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || { echo "no $PY: run 'bash setup.sh' first" >&2; exit 1; }
OUT_DIR=${OUT_DIR:-runs/learning_seeds}
SEEDS=${SEEDS:-0 1 2}
summaries=()
for seed in $SEEDS; do
    run="$OUT_DIR/seed$seed"
    if [ -f "$run/summary.json" ]; then
        echo "seed $seed: $run/summary.json exists, kept"
    else
        "$PY" -m seg_r1.quickstart --out "$run" --seed "$seed" "$@"
    fi
    summaries+=("$run/summary.json")
done
"$PY" -m seg_r1.learning "${summaries[@]}" --out "$OUT_DIR/seeds.md"
if [ "${CONTROLS:-0}" = 1 ]; then
    runs=()
    for seed in $SEEDS; do runs+=("$OUT_DIR/seed$seed"); done
    "$PY" -m seg_r1.learning_controls "${runs[@]}" --out "$OUT_DIR/controls.md"
fi
