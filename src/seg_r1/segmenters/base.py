"""The segmenter protocol: prompt sets, the encode-once / decode-many interface, its counters.

A *segmenter* turns prompts (an XYXY box and/or points with labels) on one image into a
binary mask. Conventions:

* Images are ``np.ndarray`` ``uint8`` ``(H, W, 3)`` **RGB**. Masks are ``bool`` ``(H, W)`` in
  the pixel grid of the image given to :meth:`Segmenter.set_image`.
* Prompts are in that image's pixels: boxes XYXY ``(4,)``, points ``(K, 2)`` as ``(x, y)``,
  labels ``(K,)`` with 1 = foreground, 0 = background. Pixel ``(i, j)`` covers
  ``[j, j+1) x [i, i+1)`` (see :mod:`seg_r1.frame`).

Cost model: :meth:`Segmenter.set_image` is the expensive encoder pass (SAM2's image encoder);
:meth:`Segmenter.predict` / :meth:`Segmenter.predict_batch` decode against the cached
encoding. ``segmenter.stats`` counts both so tests and benchmarks can prove that
:func:`seg_r1.segmenters.segment_batch` encodes each distinct image once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass
class SegmenterStats:
    """Work counters of a segmenter (reset with :meth:`reset`).

    Attributes:
        encoder_calls: images encoded (:meth:`Segmenter.set_image` calls).
        decoder_calls: decoder invocations (one may decode a batch of prompt sets).
        prompt_sets: prompt sets decoded (one mask each).
    """

    encoder_calls: int = 0
    decoder_calls: int = 0
    prompt_sets: int = 0

    def reset(self) -> None:
        self.encoder_calls = self.decoder_calls = self.prompt_sets = 0


@dataclass(frozen=True, eq=False)
class PromptSet:
    """One segmenter call's prompts, in pixels of the image that is set.

    Attributes:
        box: ``float64 (4,)`` XYXY, or ``None`` (points-only prompt).
        points: ``float64 (K, 2)`` ``(x, y)``; ``K`` may be 0.
        labels: ``int64 (K,)``, 1 = foreground, 0 = background.
    """

    box: np.ndarray | None
    points: np.ndarray
    labels: np.ndarray

    @classmethod
    def make(
        cls,
        box: Sequence[float] | np.ndarray | None = None,
        points: Sequence[Sequence[float]] | np.ndarray | None = None,
        labels: Sequence[int] | np.ndarray | None = None,
    ) -> PromptSet:
        """Validate and convert; raises ``ValueError`` on wrong shapes or labels."""
        box_arr = None if box is None else np.asarray(box, dtype=np.float64).reshape(4)
        pts = np.zeros((0, 2)) if points is None else np.asarray(points, dtype=np.float64)
        labs = np.zeros((0,)) if labels is None else np.asarray(labels)
        pts = pts.reshape(-1, 2) if pts.size == 0 else pts
        if pts.ndim != 2 or pts.shape[1] != 2 or labs.shape != (pts.shape[0],):
            raise ValueError(f"need points (K, 2) and labels (K,), got {pts.shape}, {labs.shape}")
        if not np.isin(labs, (0, 1)).all():
            raise ValueError(f"labels must be 0 or 1, got {labs.tolist()}")
        if box_arr is None and pts.shape[0] == 0:
            raise ValueError("a prompt set needs a box or at least one point")
        return cls(box_arr, pts, labs.astype(np.int64))


@runtime_checkable
class Segmenter(Protocol):
    """A promptable segmenter with an encode-once, decode-many interface."""

    stats: SegmenterStats

    @property
    def image_hw(self) -> tuple[int, int] | None:
        """``(height, width)`` of the image that is set, ``None`` before :meth:`set_image`."""
        ...

    def set_image(self, image: np.ndarray) -> None:
        """Encode ``image`` (``uint8 (H, W, 3)`` RGB) and cache the result for predictions."""
        ...

    def predict(
        self,
        box: np.ndarray | None,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> np.ndarray:
        """Mask ``bool (H, W)`` for ONE prompt set (box XYXY and/or points + labels)."""
        ...

    def predict_batch(self, prompts: Sequence[PromptSet]) -> list[np.ndarray]:
        """Masks for several prompt sets on the current image (batched where possible)."""
        ...


class BaseSegmenter:
    """Shared plumbing: image checks, ``stats``, ``image_hw``, a looping ``predict_batch``."""

    name = "base"

    def __init__(self) -> None:
        self.stats = SegmenterStats()
        self._image_hw: tuple[int, int] | None = None

    @property
    def image_hw(self) -> tuple[int, int] | None:
        return self._image_hw

    def set_image(self, image: np.ndarray) -> None:
        image = check_image(image)
        self._encode(image)
        self._image_hw = (int(image.shape[0]), int(image.shape[1]))
        self.stats.encoder_calls += 1

    def predict(
        self,
        box: np.ndarray | None,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> np.ndarray:
        return self.predict_batch([PromptSet.make(box, points, labels)])[0]

    def predict_batch(self, prompts: Sequence[PromptSet]) -> list[np.ndarray]:
        if self._image_hw is None:
            raise RuntimeError("call set_image(image) before predicting masks")
        masks = self._decode(list(prompts))
        self.stats.prompt_sets += len(prompts)
        return masks

    def predict_many(
        self, jobs: Sequence[tuple[np.ndarray, Sequence[PromptSet]]]
    ) -> list[list[np.ndarray]]:
        """Masks for several images at once: ``jobs`` = ``(image, prompt sets)`` pairs, each
        image set (encoded) once; returns one list of masks per job, in order.

        This default runs :meth:`set_image` + :meth:`predict_batch` per job. Backends whose
        masks can be computed independently override it to run the jobs in parallel
        (:class:`~seg_r1.segmenters.classical.ClassicalSegmenter`)."""
        out = []
        for image, prompts in jobs:
            self.set_image(image)
            out.append(self.predict_batch(prompts))
        return out

    # Backends implement these two.
    def _encode(self, image: np.ndarray) -> None:
        raise NotImplementedError

    def _decode(self, prompts: list[PromptSet]) -> list[np.ndarray]:
        """Masks for ``prompts``; adds to ``self.stats.decoder_calls`` itself."""
        raise NotImplementedError


#: Most prompt sets decoded in one decoder call (bounds the B x H x W mask tensor).
MAX_DECODE_BATCH = 64


def structure_chunks(
    prompts: Sequence[PromptSet], max_batch: int = MAX_DECODE_BATCH
) -> Iterator[tuple[bool, int, list[int]]]:
    """Group prompt sets of identical structure for batched decoding: yields ``(has_box,
    num_points, indices)`` with at most ``max_batch`` indices into ``prompts`` per chunk, groups
    in order of first appearance (a decoder batch needs one box-or-not and one point count)."""
    groups: dict[tuple[bool, int], list[int]] = {}
    for index, prompt in enumerate(prompts):
        key = (prompt.box is not None, int(prompt.points.shape[0]))
        groups.setdefault(key, []).append(index)
    for (has_box, num_points), members in groups.items():
        for start in range(0, len(members), max_batch):
            yield has_box, num_points, members[start : start + max_batch]


def check_image(image: Any) -> np.ndarray:
    """Return ``image`` if it is ``uint8 (H, W, 3)``; raise ``ValueError`` otherwise."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"images must be uint8 numpy arrays (H, W, 3) RGB, got {kind}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"images must have shape (H, W, 3), got {image.shape}")
    return image


def image_key(image: np.ndarray) -> str:
    """A content key for an image: equal pixels (and shape/dtype) give equal keys."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16)
    digest.update(f"{image.shape}{image.dtype}".encode())
    return digest.hexdigest()
