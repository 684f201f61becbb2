#!/usr/bin/env bash
""":"
# Build the training-stage manifests (pre-RL: DIS5K; RL: COD10K + CAMO train; SOD: DUTS-TR).
#
# Launch (from the repository root):
#     bash utils/prepare_datasets.sh [--root datasets] [--out datasets/manifests] [--strict]
# All options go to utils/prepare_datasets.py (see its --help); PYTHON picks the interpreter.
# The seed README's `python utils/prepare_datasets.sh` works too: this file is valid bash and
# valid Python (bash runs the lines below; Python reads them as a string and runs the end).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-$(command -v python || command -v python3)}"
exec "$py" "$here/prepare_datasets.py" "$@"
":"""

import runpy  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

script = Path(__file__).resolve().with_name("prepare_datasets.py")
sys.argv[0] = str(script)
runpy.run_path(str(script), run_name="__main__")
