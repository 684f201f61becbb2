"""Shared fixtures: the tiny checkpoints are built once per test session into a temp dir.

Set ``SEG_R1_TINY_DIR`` to reuse a prebuilt set (e.g. ``python -m seg_r1.tiny --out runs/tiny``)
across test runs; by default a fresh one is built (~10 s).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seg_r1.tiny import TinyCheckpoints, build_tiny_checkpoints


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory: pytest.TempPathFactory) -> TinyCheckpoints:
    """Tiny policy + tiny SAM2 (``.policy``, ``.sam2_config``, ``.sam2_checkpoint``)."""
    prebuilt = os.environ.get("SEG_R1_TINY_DIR")
    root = Path(prebuilt) if prebuilt else tmp_path_factory.mktemp("tiny")
    return build_tiny_checkpoints(root, seed=0)
