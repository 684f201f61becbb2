#!/usr/bin/env bash
# Set up Seg-R1 in a virtual environment at the repository root.
#
#   bash setup.sh                         # CPU laptop or CUDA node: .venv with train+dev+demo extras
#   VENV=/path/to/env bash setup.sh       # somewhere else
#   TORCH_SPEC="torch==2.6.0 torchvision==0.21.0" TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 bash setup.sh
#                                         # another torch build (e.g. a cluster on CUDA 12 drivers)
#   WITH_VLLM=1 WITH_FLASH_ATTN=1 bash setup.sh   # GPU extras (only on CUDA machines)
#   WITH_BROWSER=1 bash setup.sh          # Debian chromium + playwright for the demo's browser test
#
# Idempotent: a second run with the same inputs checks the environment and returns in seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
# torch 2.14.1 + torchvision 0.29.1: CUDA 13 builds that also run on CPU-only machines. The
# CPU-only torch wheel is NOT used: PyPI's torchvision needs the CUDA libraries torch ships.
# CUDA 13 needs NVIDIA driver >= 580; set TORCH_SPEC/TORCH_INDEX_URL for older drivers.
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}
EXTRAS=${EXTRAS:-train,dev,demo}
# sam2 1.1.0 on PyPI is Meta's SAM2 at commit 2b90b9f republished by a third party; pin the
# exact sdist we reviewed by hash.
SAM2_SPEC="sam2==1.1.0 --hash=sha256:7e0ea252d43c10d853e3acfce0b5770ac683c30481bd6de311300e9d44f45b74"

log() { printf '[setup] %s\n' "$*"; }

# ---------------------------------------------------------------- fast path (idempotence)
stamp_inputs() {
  cat pyproject.toml setup.sh
  echo "$TORCH_SPEC|$TORCH_INDEX_URL|$EXTRAS|${WITH_VLLM:-}|${WITH_FLASH_ATTN:-}|${WITH_BROWSER:-}"
}
STAMP="$VENV/.seg_r1_setup_stamp"
want=$(stamp_inputs | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
   && "$VENV/bin/python" -c "import seg_r1, torch, torchvision, transformers, trl, sam2" 2>/dev/null; then
  log "environment at $VENV is up to date (nothing to do)"
  log "python: $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])'), torch: $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
  exit 0
fi

# ---------------------------------------------------------------- venv + installer
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment at $VENV"
  "$PYTHON" -m venv "$VENV"
else
  log "reusing virtual environment at $VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip --version >/dev/null
if ! "$PY" -m uv --version >/dev/null 2>&1; then
  log "installing uv (fast resolver/installer) into the venv"
  "$PY" -m pip install -q --disable-pip-version-check "uv>=0.5"
fi
UV=("$PY" -m uv pip)
export VIRTUAL_ENV="$VENV"

# ---------------------------------------------------------------- torch first
idx=()
[ -n "$TORCH_INDEX_URL" ] && idx=(--index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple)
log "installing $TORCH_SPEC"
# shellcheck disable=SC2086
"${UV[@]}" install -q --python "$PY" "${idx[@]}" $TORCH_SPEC
"${UV[@]}" install -q --python "$PY" "setuptools>=68" wheel ninja packaging psutil

# ---------------------------------------------------------------- source builds needing torch
# Both build against the torch just installed; build isolation would download a second torch.
if ! "$PY" -c "import sam2" 2>/dev/null; then
  log "installing sam2 1.1.0 (hash-pinned, pure Python: SAM2_BUILD_CUDA=0)"
  tmpreq=$(mktemp); echo "$SAM2_SPEC" > "$tmpreq"
  SAM2_BUILD_CUDA=0 SAM2_BUILD_ALLOW_ERRORS=1 "${UV[@]}" install -q --python "$PY" \
    --no-build-isolation --no-deps --require-hashes -r "$tmpreq"
  rm -f "$tmpreq"
fi
if [[ ",$EXTRAS," == *",train,"* ]] && ! "$PY" -c "import deepspeed" 2>/dev/null; then
  log "installing deepspeed (ops built lazily at first use: DS_BUILD_OPS=0)"
  DS_BUILD_OPS=0 "${UV[@]}" install -q --python "$PY" --no-build-isolation "deepspeed>=0.16"
fi

# ---------------------------------------------------------------- the project
log "installing seg-r1 (editable) with extras [$EXTRAS]"
"${UV[@]}" install -q --python "$PY" -e ".[$EXTRAS]"

if [ -n "${WITH_VLLM:-}" ]; then
  log "installing vLLM (GPU machines only)"
  "${UV[@]}" install -q --python "$PY" -e ".[vllm]"
fi
if [ -n "${WITH_FLASH_ATTN:-}" ]; then
  log "installing flash-attn (GPU machines only; compiles if no wheel matches)"
  "${UV[@]}" install -q --python "$PY" --no-build-isolation flash-attn
fi
if [ -n "${WITH_BROWSER:-}" ]; then
  # The demo's browser test (tests/test_demo_browser.py) drives Debian's Chromium through the
  # playwright Python package (executable_path=...): Playwright's own browser download is never
  # used (it is not reachable from closed networks). chromium-driver serves selenium users.
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  chromium_bin=${SEG_R1_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
  if [ -z "$chromium_bin" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
      log "WITH_BROWSER=1 needs apt-get (Debian/Ubuntu) to install chromium + chromium-driver;"
      log "elsewhere install Chromium yourself and set SEG_R1_CHROMIUM=/path/to/chromium"
      exit 1
    fi
    log "installing Debian chromium + chromium-driver (apt-get)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    chromium_bin=${SEG_R1_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
    if [ -z "$chromium_bin" ]; then
      log "apt-get installed no chromium binary (Ubuntu ships it as a snap only); install"
      log "Chromium another way and set SEG_R1_CHROMIUM=/path/to/chromium"
      exit 1
    fi
  fi
  log "installing playwright (the Python package and its driver; no browser download)"
  "${UV[@]}" install -q --python "$PY" -e ".[browser]"
  # Smoke test: Playwright starts this Chromium headless and renders a page.
  SEG_R1_CHROMIUM="$chromium_bin" "$PY" - <<'PY'
import os
from playwright.sync_api import sync_playwright
exe = os.environ["SEG_R1_CHROMIUM"]
args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
with sync_playwright() as pw:  # launch() uses a fresh temporary profile
    browser = pw.chromium.launch(executable_path=exe, headless=True, args=args)
    page = browser.new_page()
    page.set_content("<p id=ok>ok</p>")
    assert page.inner_text("#ok") == "ok"
    version = browser.version
    browser.close()
print(f"[setup] browser ok: {exe} (Chromium {version}) driven by playwright")
PY
fi

"$PY" - <<'PY'
import torch, torchvision, transformers, trl, sam2  # noqa: F401
import seg_r1
print(f"[setup] ok: torch {torch.__version__} (cuda available: {torch.cuda.is_available()}), "
      f"torchvision {torchvision.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")
PY
echo "$want" > "$STAMP"
log "done: activate with 'source $VENV/bin/activate' or call $VENV/bin/python"
