"""Building segmenters by name, once per process.

Backends are imported when first built: ``sam2`` (Meta's package, torch and hydra) is an
optional dependency of CPU-only users of the classical backend, so :mod:`.sam2` is imported
lazily here and nowhere else; so is :mod:`.hf` (``"sam2_hf"`` and ``"sam3"``, transformers'
SAM classes).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any

from seg_r1.segmenters.base import Segmenter
from seg_r1.segmenters.classical import ClassicalSegmenter
from seg_r1.segmenters.config import HF_SEGMENTER_NAMES, SEGMENTER_NAMES

logger = logging.getLogger(__name__)


_CACHE: dict[tuple, Segmenter] = {}


def build_segmenter(name: str, cache: bool = True, **kwargs: Any) -> Segmenter:
    """Build the segmenter ``name`` (:data:`SEGMENTER_NAMES`) with backend ``kwargs``.

    Segmenters are built once per process: with ``cache=True`` (default) the same ``name``
    and ``kwargs`` return the same instance (SAM2 loads once, never per reward call).

    ``"sam2"`` kwargs: see :class:`seg_r1.segmenters.sam2.SAM2Segmenter` (``config``,
    ``checkpoint``, ``device``, ``dtype``, ``bgr_compat``). ``"sam2_hf"`` / ``"sam3"`` kwargs:
    see :class:`seg_r1.segmenters.hf.HFSegmenter` (``path``, ``device``, ``dtype``,
    ``bgr_compat``). ``"classical"`` kwargs: see :class:`ClassicalSegmenter`.

    Raises:
        ValueError: unknown ``name``.
    """
    if name not in SEGMENTER_NAMES:
        raise ValueError(f"unknown segmenter {name!r}; expected one of {SEGMENTER_NAMES}")
    key = (name, tuple(sorted((k, _hashable(v)) for k, v in kwargs.items())))
    if cache and key in _CACHE:
        return _CACHE[key]
    if name == "sam2":
        from seg_r1.segmenters.sam2 import SAM2Segmenter

        segmenter: Segmenter = SAM2Segmenter(**kwargs)
    elif name in HF_SEGMENTER_NAMES:
        from seg_r1.segmenters.hf import HF_SEGMENTERS

        segmenter = HF_SEGMENTERS[name](**kwargs)
    else:
        segmenter = ClassicalSegmenter(**kwargs)
    logger.info("built %s segmenter %s", name, dict(kwargs))
    if cache:
        _CACHE[key] = segmenter
    return segmenter


def clear_segmenter_cache() -> None:
    """Forget the segmenters built by :func:`build_segmenter` (tests, reconfiguration)."""
    _CACHE.clear()


def _hashable(value: Any) -> Hashable:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return str(value) if not isinstance(value, (int, float, bool, str, type(None))) else value
