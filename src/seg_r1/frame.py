"""Frame geometry: the square frame answers live in, frame <-> image coordinates, Qwen's
28-pixel grid, and the one image resize and the one mask resize.

Conventions
-----------
* **Frame.** Coordinates are absolute pixels of the square (or ``(height, width)``) *frame*
  the image was resized to, ignoring aspect ratio -- 768 for training and COD/SOD
  evaluation, 1024 for referring/reasoning evaluation. ``frame_size`` is an ``int`` (square)
  or a ``(height, width)`` tuple; every size in this module is ``(height, width)`` like a
  NumPy shape, while every coordinate is ``(x, y)``.
* **Continuous pixel coordinates.** Pixel ``(row i, column j)`` covers ``[j, j+1) x [i, i+1)``;
  a frame of width ``W`` spans ``x`` in ``[0, W]``. Boxes are XYXY, ``[0, 0, W, H]`` is the
  whole frame. Coordinates outside the frame are clipped to it.
* **Labels.** 1 = foreground (object) point, 0 = background point; one label per point.

Qwen's 28-pixel grid
--------------------
Qwen2.5-VL's processor resizes every image to multiples of 28 pixels within pixel bounds
(:func:`processor_resize`), so a 768x768 frame is *seen* as 756x756 and a 1024x1024 frame as
1036x1036 (with the released checkpoints' bounds). The official code ignores this and keeps
the prompt's coordinate frame; so do we -- coordinates are always read in the frame the prompt
promises, the processor's ``min_pixels``/``max_pixels`` are explicit config of the policy, and
:func:`processor_resize` lets a user see exactly what the model gets.

Coordinate conventions
----------------------
The numbers a policy WRITES are in one of :data:`COORDINATES` (a recipe field, ``coordinates:``;
the default is its policy family's, :mod:`seg_r1.families`):

* ``"frame"`` -- absolute pixels of the frame (Qwen2.5-VL's grounding, the paper's answers).
* ``"relative_1000"`` -- ``0..1000`` relative to the frame's width and height, whatever its size
  (Qwen3-VL / Qwen3.5 grounding): ``x_frame = x * W / 1000``, ``y_frame = y * H / 1000``.

Everything after the parser works in frame pixels: :func:`answer_to_frame` is the one mapping
(used by :func:`seg_r1.answer.parse_answer`), :func:`frame_to_answer` its inverse (used by
:func:`seg_r1.answer.format_answer` for SFT traces and constant answers).

Resizing
--------
* :func:`resize_to_frame` -- an image into the frame, ignoring its aspect ratio (area
  interpolation when shrinking, bilinear when enlarging: OpenCV's centre-aligned resamplers).
* :func:`resize_mask` -- THE mask resize (ground truth into the frame, masks back to the image,
  masks onto display images): centre-aligned nearest neighbour, output pixel ``d`` takes source
  pixel ``floor((d + 0.5) * in / out)`` (:func:`nearest_indices`), so masks are not shifted
  against the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

#: Pixel bounds of the released Qwen2.5-VL checkpoints' ``preprocessor_config.json``
#: (4 to 16384 visual tokens of 28x28 pixels). The ``Qwen2VLImageProcessor`` class default
#: ``max_pixels`` is smaller (28*28*1280): with it a 1024 frame would shrink to 980.
QWEN_MIN_PIXELS = 4 * 28 * 28
QWEN_MAX_PIXELS = 16384 * 28 * 28
#: Qwen2.5-VL's resize grid: 14-pixel patches merged 2x2.
QWEN_FACTOR = 28


#: The coordinate conventions of an answer (module doc); ``"frame"`` is the paper's.
COORDINATES: tuple[str, ...] = ("frame", "relative_1000")
#: The extent of the ``relative_1000`` convention.
RELATIVE_EXTENT = 1000


def check_coordinates(coordinates: str) -> str:
    """Return ``coordinates`` if it is one of :data:`COORDINATES`; ``ValueError`` otherwise."""
    if coordinates not in COORDINATES:
        raise ValueError(f"coordinates must be one of {COORDINATES}, got {coordinates!r}")
    return coordinates


def answer_extent(frame_size: int | Sequence[int], coordinates: str = "frame") -> tuple[int, int]:
    """``(height, width)`` of the space an answer's numbers live in: the frame itself for
    ``"frame"``, ``(1000, 1000)`` for ``"relative_1000"``."""
    hw = frame_hw(frame_size)
    if check_coordinates(coordinates) == "frame":
        return hw
    return (RELATIVE_EXTENT, RELATIVE_EXTENT)


def answer_to_frame(
    coords: np.ndarray, frame_size: int | Sequence[int], coordinates: str = "frame"
) -> np.ndarray:
    """Interleaved ``x, y`` numbers as WRITTEN in the ``coordinates`` convention -> frame pixels
    (``float64``; not clipped). ``"frame"`` returns them unchanged."""
    return _rescale(coords, answer_extent(frame_size, coordinates), frame_hw(frame_size))


def frame_to_answer(
    coords: np.ndarray, frame_size: int | Sequence[int], coordinates: str = "frame"
) -> np.ndarray:
    """Inverse of :func:`answer_to_frame`: frame pixels -> the numbers an answer writes
    (``float64``, not rounded)."""
    return _rescale(coords, frame_hw(frame_size), answer_extent(frame_size, coordinates))


def frame_hw(frame_size: int | Sequence[int]) -> tuple[int, int]:
    """``frame_size`` as ``(height, width)``; an ``int`` means a square frame.

    Raises:
        ValueError: not a positive int or a pair of positive ints.
    """
    if isinstance(frame_size, (int, np.integer)) and not isinstance(frame_size, bool):
        hw = (int(frame_size), int(frame_size))
    elif (
        isinstance(frame_size, Sequence)
        and len(frame_size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in frame_size)
    ):
        hw = (int(frame_size[0]), int(frame_size[1]))
    else:
        raise ValueError(f"frame_size must be an int or (height, width) ints, got {frame_size!r}")
    if min(hw) <= 0:
        raise ValueError(f"frame_size must be positive, got {frame_size!r}")
    return hw


# --------------------------------------------------------------------------- coordinates


def clip_to_frame(coords: np.ndarray, frame_size: int | Sequence[int]) -> np.ndarray:
    """Clip interleaved ``(..., 2k)`` coordinates ``x, y, x, y, ...`` to ``[0, W] x [0, H]``.

    Works for points ``(M, 2)`` and XYXY boxes ``(N, 4)``; returns a new ``float64`` array.
    """
    h, w = frame_hw(frame_size)
    out = np.array(coords, dtype=np.float64)
    _check_interleaved(out)
    out[..., 0::2] = np.clip(out[..., 0::2], 0.0, w)
    out[..., 1::2] = np.clip(out[..., 1::2], 0.0, h)
    return out


def frame_to_image(
    coords: np.ndarray, frame_size: int | Sequence[int], image_size: int | Sequence[int]
) -> np.ndarray:
    """Map interleaved ``x, y`` coordinates (points ``(M, 2)`` or XYXY ``(N, 4)``) from the
    frame to the original image: ``x * W_img / W_frame``, ``y * H_img / H_frame``.

    Sizes are ``int`` (square) or ``(height, width)``. Returns ``float64``.
    """
    return _rescale(coords, frame_hw(frame_size), frame_hw(image_size))


def image_to_frame(
    coords: np.ndarray, image_size: int | Sequence[int], frame_size: int | Sequence[int]
) -> np.ndarray:
    """Inverse of :func:`frame_to_image`: original-image pixels to frame pixels."""
    return _rescale(coords, frame_hw(image_size), frame_hw(frame_size))


def _rescale(coords: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    out = np.array(coords, dtype=np.float64)
    _check_interleaved(out)
    out[..., 0::2] *= dst[1] / src[1]
    out[..., 1::2] *= dst[0] / src[0]
    return out


def _check_interleaved(coords: np.ndarray) -> None:
    if coords.ndim == 0 or coords.shape[-1] % 2:
        raise ValueError(f"expected (..., 2k) interleaved x, y coordinates, got {coords.shape}")


def processor_resize(
    frame_size: int | Sequence[int],
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
    factor: int = QWEN_FACTOR,
) -> tuple[int, int]:
    """The ``(height, width)`` Qwen2.5-VL's processor resizes a frame to (its ``smart_resize``).

    Each side is rounded to the nearest multiple of ``factor`` (Python's round: halves go to
    even); if the area then exceeds ``max_pixels`` (falls below ``min_pixels``) both sides are
    scaled down (up) by the same factor and floored (ceiled) to multiples of ``factor``. With
    the released checkpoints' bounds: 768 -> 756, 1024 -> 1036. The model therefore sees a
    slightly different size than the frame its prompt talks about; we keep coordinates in the
    frame (see the module doc).

    Raises:
        ValueError: an aspect ratio above 200 (the processor refuses those too).
    """
    h, w = frame_hw(frame_size)
    if max(h, w) / min(h, w) > 200:
        raise ValueError(f"aspect ratio must be at most 200, got {h}x{w}")
    h_bar = round(h / factor) * factor
    w_bar = round(w / factor) * factor
    if h_bar * w_bar > max_pixels:
        scale = math.sqrt(h * w / max_pixels)
        h_bar = max(factor, math.floor(h / scale / factor) * factor)
        w_bar = max(factor, math.floor(w / scale / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        scale = math.sqrt(min_pixels / (h * w))
        h_bar = math.ceil(h * scale / factor) * factor
        w_bar = math.ceil(w * scale / factor) * factor
    return h_bar, w_bar


# --------------------------------------------------------------------------- resizing


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
