#!/usr/bin/env bash
# Wheels for benchmarks/gpu_check.sh: the packages the GPU machine lacks (it ships torch 2.11,
# transformers 5.17, accelerate, peft, but no trl, datasets, sam2, hydra-core, iopath,
# pycocotools), for its Python 3.12, into .whl/ (git-ignored through .git/info/exclude). Run here, where pip reaches PyPI:
#
#   bash benchmarks/gpu_wheels.sh            # -> .whl/*.whl (about 4 MiB in all)
#
# transformers stays the machine's 5.17 (TRL 1.16 needs >= 4.56.2; datasets 5.2 needs
# huggingface-hub >= 1.31, the machine has 1.33). The sdist-only packages (sam2, iopath,
# antlr4) are built into pure-Python wheels here; sam2 without its CUDA extension (as setup.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
DEST=${DEST:-.whl}
mkdir -p "$DEST"
grep -qxF "/$DEST/" .git/info/exclude 2>/dev/null || echo "/$DEST/" >> .git/info/exclude
rm -f "$DEST"/*.whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 any; do platforms+=(--platform "$p"); done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$DEST" \
  trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 hydra-core==1.3.2 omegaconf==2.3.0 \
  pycocotools==2.0.11
# sam2: the sdist setup.sh installs, pinned by the same hash
SAM2_HASH=$(grep -o 'sam2==1.1.0 --hash=sha256:[0-9a-f]*' setup.sh)
[ -n "$SAM2_HASH" ] || { echo "error: no sam2 hash pin in setup.sh" >&2; exit 1; }
req=$(mktemp); echo "$SAM2_HASH" > "$req"
SAM2_BUILD_CUDA=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" -r "$req"
rm -f "$req"
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" iopath==0.1.10 antlr4-python3-runtime==4.9.3
ls -la "$DEST"
du -sh "$DEST"
