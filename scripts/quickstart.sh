#!/usr/bin/env bash
# The embedded default, on CPU with nothing downloaded:
#
#   bash setup.sh && bash scripts/quickstart.sh
#
# OUT_DIR (default runs/quickstart) and extra arguments are passed to `python -m seg_r1.quickstart`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || { echo "no $PY: run 'bash setup.sh' first" >&2; exit 1; }
exec "$PY" -m seg_r1.quickstart --out "${OUT_DIR:-runs/quickstart}" "$@"
