"""Promptable segmenters: the protocol, the mask rule of SPEC §3, batching, backends, factory.

A *segmenter* turns prompts (an XYXY box and/or points with labels) on one image into a
binary mask. Two backends implement :class:`Segmenter`:

* ``"sam2"`` -- :class:`seg_r1.sam2_backend.SAM2Segmenter`, the real one (frozen SAM2);
* ``"classical"`` -- :class:`ClassicalSegmenter`, OpenCV GrabCut seeded by the prompts: a
  deterministic CPU stand-in for tests and CPU runs whose masks depend on the prompts (a
  random-weight SAM2's do not). It is NOT SAM2 and its numbers are not the paper's.

Conventions
-----------
* Images are ``np.ndarray`` ``uint8`` ``(H, W, 3)`` **RGB**. Masks are ``bool`` ``(H, W)`` in
  the pixel grid of the image given to :meth:`Segmenter.set_image`.
* Prompts are in that image's pixels: boxes XYXY ``(4,)``, points ``(K, 2)`` as ``(x, y)``,
  labels ``(K,)`` with 1 = foreground, 0 = background. Pixel ``(i, j)`` covers
  ``[j, j+1) x [i, i+1)`` (see :mod:`seg_r1.answer`).
* :func:`masks_from_answer` / :func:`segment_batch` take parsed answers whose coordinates are
  in the answer's *frame*; they rescale them to the image that is set (identity when the
  image is the frame image, as in training, where rewards segment the frame-resized image).

Cost model: :meth:`Segmenter.set_image` is the expensive encoder pass (SAM2's image encoder);
:meth:`Segmenter.predict` / :meth:`Segmenter.predict_batch` decode against the cached
encoding. ``segmenter.stats`` counts both so tests and benchmarks can prove that
:func:`segment_batch` encodes each distinct image once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from seg_r1.answer import ParsedAnswer, frame_hw, frame_to_image

logger = logging.getLogger(__name__)

SEGMENTER_NAMES: tuple[str, ...] = ("sam2", "classical")


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

    # Backends implement these two.
    def _encode(self, image: np.ndarray) -> None:
        raise NotImplementedError

    def _decode(self, prompts: list[PromptSet]) -> list[np.ndarray]:
        """Masks for ``prompts``; adds to ``self.stats.decoder_calls`` itself."""
        raise NotImplementedError


def check_image(image: Any) -> np.ndarray:
    """Return ``image`` if it is ``uint8 (H, W, 3)``; raise ``ValueError`` otherwise."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"images must be uint8 numpy arrays (H, W, 3) RGB, got {kind}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"images must have shape (H, W, 3), got {image.shape}")
    return image


# --------------------------------------------------------------------------- the mask rule


#: How an answer becomes prompts: which imperfect answers still give a mask.
#:
#: ``"complete"`` -- a mask only from a complete answer: at least one valid box AND points
#: and labels that parse with matching counts (at least one point). The official GRPO reward's
#: rule, and the training default (:data:`DEFAULT_TRAIN_ANSWER_RULE`): an answer without
#: points scores 0, so a policy cannot learn to drop them.
#: ``"well_formed"`` -- also a box-only answer with no points/labels at all; an internally
#: inconsistent answer (count mismatch, malformed points) gives no mask
#: (:attr:`~seg_r1.answer.ParsedAnswer.ok`). The lenient training rule, and the strict
#: evaluation switch.
#: ``"fallback"`` -- the official evaluation scripts' salvage (the evaluation default,
#: :data:`DEFAULT_EVAL_ANSWER_RULE`, so numbers compare with the paper's): boxes with
#: unusable points/labels give a box-only mask; points and labels without a valid box give
#: a points-only mask; nothing usable gives an empty mask.
#:
#: Pre-RL (``"points"`` mode) answers need points and matching labels under every rule.
ANSWER_RULES: tuple[str, ...] = ("complete", "well_formed", "fallback")
DEFAULT_TRAIN_ANSWER_RULE = "complete"
DEFAULT_EVAL_ANSWER_RULE = "fallback"


def check_answer_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`ANSWER_RULES`, else ``ValueError`` naming them."""
    if rule not in ANSWER_RULES:
        raise ValueError(f"answer rule must be one of {ANSWER_RULES}, got {rule!r}")
    return rule


def answer_usable(answer: ParsedAnswer, rule: str = "well_formed") -> bool:
    """Whether ``answer`` gives a (possibly empty-looking) mask under ``rule``
    (:data:`ANSWER_RULES`). Unusable answers get an all-``False`` mask and reward 0."""
    check_answer_rule(rule)
    if answer.mode == "points":
        return answer.ok
    if rule == "complete":
        return answer.has_box and answer.labels_match and answer.num_points > 0
    if rule == "well_formed":
        return answer.ok
    return answer.has_box or (answer.labels_match and answer.num_points > 0)


def unusable_reason(answer: ParsedAnswer, rule: str = "well_formed") -> str | None:
    """Why ``rule`` gives ``answer`` no mask (``None`` when it is usable), for logs."""
    if answer_usable(answer, rule):
        return None
    if answer.mode == "points" or rule == "fallback":
        return answer.error or "no usable prompt"
    if not answer.has_box:
        return "no valid box"
    if not answer.has_points and not answer.has_labels:
        return "no points and labels (the 'complete' rule needs them)"
    return "points and labels do not parse with matching counts"


def prompts_from_answer(
    answer: ParsedAnswer, image_hw: tuple[int, int] | None = None, rule: str = "well_formed"
) -> list[PromptSet]:
    """SPEC §3: the prompt sets an answer turns into (empty when ``rule`` rejects it).

    ``"full"`` mode: one prompt set per box, holding the box and only the points inside it
    (``x1 <= x <= x2`` and ``y1 <= y <= y2``, in the frame) with their labels; points outside
    every box are dropped. Under the ``"fallback"`` rule an answer without a valid box but
    with points and labels becomes one points-only set (the official evaluation's), and one
    whose points/labels are unusable keeps its boxes alone. ``"points"`` mode (pre-RL): one
    prompt set with all points and labels and no box. Coordinates are rescaled from the
    answer's frame to ``image_hw`` (``(height, width)``, default: the frame itself).
    """
    if not answer_usable(answer, rule):
        return []
    hw = answer.frame_size if image_hw is None else image_hw

    def to_image(coords: np.ndarray) -> np.ndarray:
        return frame_to_image(coords, answer.frame_size, hw)

    if answer.mode == "points" or not answer.has_box:
        return [PromptSet(None, to_image(answer.points), answer.labels.copy())]
    sets = []
    # Points are kept only when they parse with matching labels (ParsedAnswer), so a box of
    # an answer with unusable points is decoded box-only.
    x, y = answer.points[:, 0], answer.points[:, 1]
    for box in answer.boxes:
        inside = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
        sets.append(
            PromptSet(to_image(box), to_image(answer.points[inside]), answer.labels[inside])
        )
    return sets


def masks_from_answer(
    segmenter: Segmenter, answer: ParsedAnswer, rule: str = "well_formed"
) -> np.ndarray:
    """The answer's mask on the segmenter's current image: the union of its prompt sets'
    masks (SPEC §3), ``bool (H, W)``; all ``False`` for an answer ``rule`` rejects."""
    hw = segmenter.image_hw
    if hw is None:
        raise RuntimeError("call segmenter.set_image(image) before masks_from_answer")
    prompts = prompts_from_answer(answer, hw, rule)
    return _union(segmenter.predict_batch(prompts) if prompts else [], hw)


def _union(masks: Sequence[np.ndarray], hw: tuple[int, int]) -> np.ndarray:
    out = np.zeros(hw, dtype=bool)
    for mask in masks:
        out |= mask
    return out


def image_key(image: np.ndarray) -> str:
    """A content key for an image: equal pixels (and shape/dtype) give equal keys."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16)
    digest.update(f"{image.shape}{image.dtype}".encode())
    return digest.hexdigest()


def segment_batch(
    segmenter: Segmenter,
    images: Sequence[np.ndarray],
    answers: Sequence[ParsedAnswer],
    image_keys: Sequence[Hashable] | None = None,
    rule: str = "well_formed",
) -> list[np.ndarray]:
    """Masks for ``answers[i]`` on ``images[i]``, encoding each distinct image ONCE.

    ``rule`` (:data:`ANSWER_RULES`) decides which imperfect answers still give a mask.

    Samples are grouped by ``image_keys`` (default: :func:`image_key`, a content hash, so a
    GRPO group's G copies of one image share one encoder pass even when they are distinct
    array objects). Each group's image is encoded once and all its prompt sets are decoded in
    one :meth:`Segmenter.predict_batch` call. Images whose answers are all unusable are not
    encoded at all. Returns ``bool (H_i, W_i)`` masks in input order.
    """
    check_answer_rule(rule)
    if len(images) != len(answers):
        raise ValueError(f"{len(images)} images for {len(answers)} answers")
    if image_keys is not None and len(image_keys) != len(images):
        raise ValueError(f"{len(image_keys)} image keys for {len(images)} images")
    if image_keys is None:
        by_id: dict[int, str] = {}
        image_keys = [by_id.setdefault(id(im), image_key(im)) for im in images]
    groups: dict[Hashable, list[int]] = {}
    for index, key in enumerate(image_keys):
        groups.setdefault(key, []).append(index)

    masks: list[np.ndarray | None] = [None] * len(images)
    for indices in groups.values():
        image = check_image(images[indices[0]])
        hw = (int(image.shape[0]), int(image.shape[1]))
        owners: list[int] = []
        prompts: list[PromptSet] = []
        for index in indices:
            sets = prompts_from_answer(answers[index], hw, rule)
            owners += [index] * len(sets)
            prompts += sets
        predicted = []
        if prompts:
            segmenter.set_image(image)
            predicted = segmenter.predict_batch(prompts)
        for index in indices:
            masks[index] = _union([m for o, m in zip(owners, predicted) if o == index], hw)
    return masks  # type: ignore[return-value]


# --------------------------------------------------------------------------- frame resizing


def resize_to_frame(image: np.ndarray, frame_size: int | Sequence[int]) -> np.ndarray:
    """Resize an ``(H, W, 3)`` image to the frame, ignoring aspect ratio (SPEC §2).

    Area interpolation when shrinking (no aliasing), bilinear otherwise. Returns ``image``
    itself when it already has the frame size.
    """
    h, w = frame_hw(frame_size)
    if image.shape[:2] == (h, w):
        return image
    shrink = h <= image.shape[0] and w <= image.shape[1]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interpolation)


def nearest_indices(size_in: int, size_out: int) -> np.ndarray:
    """Source index of each destination pixel of a centre-aligned nearest-neighbour resize.

    Destination pixel ``d`` (centre ``d + 0.5``) takes source pixel
    ``floor((d + 0.5) * size_in / size_out)`` -- the source pixel its centre falls in, the
    same pixel-centre convention as the image resize (OpenCV's ``INTER_NEAREST_EXACT``, PIL's
    and MATLAB's nearest; NOT ``cv2.INTER_NEAREST``, which samples ``floor(d * s)`` and shifts
    masks up to one pixel toward the top-left). Exact integer arithmetic: ``int64 (size_out,)``.
    """
    if size_in <= 0 or size_out <= 0:
        raise ValueError(f"sizes must be positive, got {size_in} -> {size_out}")
    dst = np.arange(size_out, dtype=np.int64)
    return ((2 * dst + 1) * size_in) // (2 * size_out)


def resize_mask(mask: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Centre-aligned nearest-neighbour resize of a ``bool (H, W)`` mask to ``size``
    (``int`` or ``(height, width)``): ground truth into the frame, predicted masks from the
    frame back to the image, masks onto display images. Each output pixel takes the input
    pixel its centre falls in (:func:`nearest_indices`). This is the ONLY mask resize."""
    h, w = frame_hw(size)
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"masks must be 2-D (H, W), got shape {mask.shape}")
    if mask.shape == (h, w):
        return mask
    rows = nearest_indices(mask.shape[0], h)
    cols = nearest_indices(mask.shape[1], w)
    return np.ascontiguousarray(mask[rows[:, None], cols[None, :]])


# --------------------------------------------------------------------------- classical backend


class ClassicalSegmenter(BaseSegmenter):
    """GrabCut seeded by the prompts: a deterministic CPU stand-in for SAM2 (NOT SAM2).

    Seeding (``cv2.GC_*`` labels of the initial mask):

    * with a box: inside the box (pixels ``floor(x1)..ceil(x2)-1``) probable foreground,
      outside sure background -- GrabCut's rectangle initialisation, so the mask never leaves
      the box;
    * points-only (pre-RL): a probable-foreground rectangle around the foreground points,
      padded by ``points_margin`` x the image's short side, probable background elsewhere
      (the points do not bound the object, so nothing is *sure* background but the
      background points);
    * points: disks of radius ``point_radius`` (default 1 % of the short side, at least 2 px --
      a click, not a scribble), label 1 sure foreground, label 0 sure background; later points
      win where disks overlap.

    GrabCut fits 5-component colour GMMs to each class; with fewer than
    :attr:`MIN_SAMPLES` pixels in a class it cannot run. Then a missing background is taken
    from the 1-pixel image border (probable background), and if a class is still too small
    the seeded foreground is returned as is. Without any foreground seed the mask is empty.

    ``iterations=3`` follows SPEC §9 (IoU 1.00 on synthetic textured circles with the true
    box, ~32 ms per 256x256 mask). cv2's RNG is re-seeded with ``seed`` before every call, so
    the same image and prompts always give the same mask. "Encoding" only caches the image;
    it still counts as one encoder call.
    """

    name = "classical"
    #: GrabCut's GMMs have 5 components, initialised by k-means: 5 samples per class minimum.
    MIN_SAMPLES = 5

    def __init__(
        self,
        iterations: int = 3,
        point_radius: int | None = None,
        points_margin: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.iterations = iterations
        self.point_radius = point_radius
        self.points_margin = points_margin
        self.seed = seed
        self._image: np.ndarray | None = None

    def _encode(self, image: np.ndarray) -> None:
        self._image = np.ascontiguousarray(image)

    def _decode(self, prompts: list[PromptSet]) -> list[np.ndarray]:
        out = []
        for prompt in prompts:
            out.append(self._grabcut(prompt))
            self.stats.decoder_calls += 1
        return out

    def _radius(self, hw: tuple[int, int]) -> int:
        if self.point_radius is not None:
            return self.point_radius
        return max(2, round(0.01 * min(hw)))

    def seed_mask(self, prompt: PromptSet) -> np.ndarray:
        """The initial ``cv2.GC_*`` label image ``uint8 (H, W)`` for ``prompt`` (see class doc)."""
        if self._image_hw is None:
            raise RuntimeError("call set_image(image) before seeding masks")
        h, w = self._image_hw
        seeds = np.full((h, w), cv2.GC_BGD, dtype=np.uint8)
        if prompt.box is not None:
            x1, y1, x2, y2 = prompt.box
            c1, r1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
            c2, r2 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
            seeds[r1:r2, c1:c2] = cv2.GC_PR_FGD
        else:
            seeds[:] = cv2.GC_PR_BGD
            fg = prompt.points[prompt.labels == 1]
            if fg.shape[0]:
                pad = self.points_margin * min(h, w)
                c1, r1 = np.floor(fg.min(axis=0) - pad).astype(int)
                c2, r2 = np.ceil(fg.max(axis=0) + pad).astype(int)
                seeds[max(0, r1) : max(0, r2), max(0, c1) : max(0, c2)] = cv2.GC_PR_FGD
        radius = self._radius((h, w))
        for (x, y), label in zip(prompt.points, prompt.labels):
            value = cv2.GC_FGD if label == 1 else cv2.GC_BGD
            centre = (min(int(x), w - 1), min(int(y), h - 1))
            cv2.circle(seeds, centre, radius, int(value), thickness=-1)
        return seeds

    def _grabcut(self, prompt: PromptSet) -> np.ndarray:
        seeds = self.seed_mask(prompt)
        is_fg = (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)
        if not is_fg.any():
            return np.zeros(seeds.shape, dtype=bool)
        if np.count_nonzero(~is_fg) < self.MIN_SAMPLES:
            border = np.zeros(seeds.shape, dtype=bool)
            border[[0, -1], :] = border[:, [0, -1]] = True
            seeds[border & (seeds != cv2.GC_FGD)] = cv2.GC_PR_BGD
            is_fg = (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)
        if min(np.count_nonzero(is_fg), np.count_nonzero(~is_fg)) < self.MIN_SAMPLES:
            return is_fg
        cv2.setRNGSeed(self.seed)
        bgd_model = np.zeros((1, 65), np.float64)
        fgd_model = np.zeros((1, 65), np.float64)
        cv2.grabCut(
            self._image, seeds, None, bgd_model, fgd_model, self.iterations, cv2.GC_INIT_WITH_MASK
        )
        return (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)


# --------------------------------------------------------------------------- factory

_CACHE: dict[tuple, Segmenter] = {}


def build_segmenter(name: str, cache: bool = True, **kwargs: Any) -> Segmenter:
    """Build the segmenter ``name`` (``"sam2"`` or ``"classical"``) with backend ``kwargs``.

    Segmenters are built once per process: with ``cache=True`` (default) the same ``name``
    and ``kwargs`` return the same instance (SAM2 loads once, never per reward call).

    ``"sam2"`` kwargs: see :class:`seg_r1.sam2_backend.SAM2Segmenter` (``config``,
    ``checkpoint``, ``device``, ``dtype``, ``bgr_compat``). ``"classical"`` kwargs: see
    :class:`ClassicalSegmenter`.

    Raises:
        ValueError: unknown ``name``.
    """
    if name not in SEGMENTER_NAMES:
        raise ValueError(f"unknown segmenter {name!r}; expected one of {SEGMENTER_NAMES}")
    key = (name, tuple(sorted((k, _hashable(v)) for k, v in kwargs.items())))
    if cache and key in _CACHE:
        return _CACHE[key]
    if name == "sam2":
        from seg_r1.sam2_backend import SAM2Segmenter

        segmenter: Segmenter = SAM2Segmenter(**kwargs)
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
