"""The weighted F-measure (Margolin et al. 2014) as the COD/SOD toolbox computes it, exactly:
the error map smoothed by MATLAB's ``fspecial('gaussian', 7, 5)`` kernel, propagated from each
background pixel's nearest object pixel (ties resolved like scipy's exact feature transform),
weighted by the distance to the object. Used by :mod:`seg_r1.metrics.sod`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from seg_r1.metrics._inputs import EPS, PreparedPair, weighted_sum

#: Keys of :meth:`SODMetrics.result` and :meth:`SODScores.as_dict`, the toolbox's names.

# MATLAB fspecial('gaussian', 7, 5), the weighted F-measure's smoothing kernel. It is separable:
# exp(-(x^2 + y^2) / 2s^2) = g(x) g(y), normalised by sum(g)^2. No entry falls under eps * max, so
# fspecial's truncation does not apply.
_WF_SIGMA = 5.0
_WF_RADIUS = 3
_WF_G1 = np.exp(-(np.arange(-_WF_RADIUS, _WF_RADIUS + 1) ** 2) / (2 * _WF_SIGMA**2))
_WF_KERNEL_1D = _WF_G1 / _WF_G1.sum()
# Background weight B = 2 - exp(log(0.5) / 5 * dist): 1 at the object, 1.5 at 5 px, -> 2 far off.
_WF_DECAY = math.log(0.5) / 5

# Background pixels inside some object pixel's 7x7 window are at most (3, 3) away from it, so
# their nearest object pixel is at squared distance <= 18, within 4 px along each axis.
_BAND_MAX_D2 = 2 * _WF_RADIUS**2
_WF_WINDOW = np.ones((2 * _WF_RADIUS + 1, 2 * _WF_RADIUS + 1), dtype=np.uint8)
_BAND_PAD = 4


def _tie_ordered_offsets() -> dict[int, tuple[tuple[int, int], ...]]:
    """Offsets (dy, dx) to a nearest object pixel, grouped by squared length.

    Within a group they are ordered like scipy's exact feature transform resolves ties: the
    smallest column first, then the smallest row.
    """
    groups: dict[int, list[tuple[int, int]]] = {}
    for dy in range(-_BAND_PAD, _BAND_PAD + 1):
        for dx in range(-_BAND_PAD, _BAND_PAD + 1):
            d2 = dy * dy + dx * dx
            if 0 < d2 <= _BAND_MAX_D2:
                groups.setdefault(d2, []).append((dy, dx))
    return {
        d2: tuple(sorted(offsets, key=lambda o: (o[1], o[0]))) for d2, offsets in groups.items()
    }


def _offset_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dy, dx, valid) tables of shape (19, 8): row ``d2`` lists the offsets of squared length
    ``d2`` in tie order, padded with invalid (0, 0) entries."""
    groups = _tie_ordered_offsets()
    width = max(len(offsets) for offsets in groups.values())
    dy = np.zeros((_BAND_MAX_D2 + 1, width), dtype=np.intp)
    dx = np.zeros_like(dy)
    valid = np.zeros(dy.shape, dtype=bool)
    for d2, offsets in groups.items():
        for k, (oy, ox) in enumerate(offsets):
            dy[d2, k], dx[d2, k], valid[d2, k] = oy, ox, True
    return dy, dx, valid


_BAND_TABLE_DY, _BAND_TABLE_DX, _BAND_TABLE_VALID = _offset_tables()


def _fill_band_errors(error: np.ndarray, fg: np.ndarray, d2: np.ndarray) -> None:
    """Give each background pixel near the object the error of its nearest object pixel.

    Args:
        error: float64 (h, w) C-contiguous, the object pixels' errors; updated in place.
        fg: bool (h, w), the object.
        d2: float64 (h, w), exact squared distance to the object.

    Only the band of background pixels inside some object pixel's 7x7 window is filled (the rest
    never reaches an object pixel's smoothed error). The exact ``d2`` (<= 18 in the band) tells
    which offsets can hold the nearest object pixel; the first object pixel among them in scipy's
    tie order is taken.
    """
    height, width = fg.shape
    fg_u8 = fg.view(np.uint8)
    band_mask = cv2.subtract(cv2.dilate(fg_u8, _WF_WINDOW), fg_u8)
    points = cv2.findNonZero(band_mask)  # int32 (n, 1, 2) of (x, y), None when empty
    if points is None:
        return
    xs = points[:, 0, 0].astype(np.intp)
    ys = points[:, 0, 1].astype(np.intp)
    band_d2 = d2[ys, xs].astype(np.uint8)
    pad = _BAND_PAD
    stride = width + 2 * pad
    fg_padded = np.zeros((height + 2 * pad, stride), dtype=bool)  # no bounds checks needed
    fg_padded[pad:-pad, pad:-pad] = fg
    fg_flat = fg_padded.ravel()
    origin = (ys + pad) * stride + (xs + pad)
    # Each band pixel tests the offsets of its own squared distance (at most 8), in tie order,
    # all at once: the first object pixel wins.
    candidates = np.take(_BAND_TABLE_DY * stride + _BAND_TABLE_DX, band_d2, axis=0)  # (n, 8)
    candidates += origin[:, None]
    hits = np.take(fg_flat, candidates)
    hits &= np.take(_BAND_TABLE_VALID, band_d2, axis=0)
    first = hits.argmax(axis=1)
    rows = np.arange(xs.size)
    if not hits[rows, first].all():  # d2 comes from the same mask: cannot happen
        raise RuntimeError("weighted F-measure: nearest-object search failed")
    nearest = candidates[rows, first]
    near_y, near_x = np.divmod(nearest, stride)
    error[ys, xs] = error[near_y - pad, near_x - pad]


def weighted_f_score(pair: PreparedPair, beta2: float) -> float:
    num_fg = pair.num_fg
    if num_fg == 0:
        return 0.0
    gt, pred = pair.gt, pair.pred
    height, width = pair.shape

    # Exact Euclidean distance to the object (0 on it). OpenCV's precise transform returns float32
    # sqrt(d^2) for an integer d^2; squaring and rounding recovers d^2 exactly (|error| << 0.5 up
    # to d^2 ~ 4e6), so the distances are bit-identical to scipy's sqrt of the integer d^2.
    d2 = cv2.distanceTransform((~gt).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    d2 = d2.astype(np.float64)
    np.square(d2, out=d2)
    np.rint(d2, out=d2)

    # Object errors smoothed with background pixels taking their nearest object pixel's error;
    # only the object's bounding box grown by the kernel radius matters.
    rows = np.flatnonzero(pair.fg_row_counts)
    cols = np.flatnonzero(pair.fg_col_counts)
    box = (
        slice(max(rows[0] - _WF_RADIUS, 0), min(rows[-1] + _WF_RADIUS + 1, height)),
        slice(max(cols[0] - _WF_RADIUS, 0), min(cols[-1] + _WF_RADIUS + 1, width)),
    )
    fg_box = gt[box]
    error = 1.0 - pred[box]  # |pred - 1| on the object
    _fill_band_errors(error, fg_box, d2[box])
    smoothed = cv2.sepFilter2D(
        error, cv2.CV_64F, _WF_KERNEL_1D, _WF_KERNEL_1D, borderType=cv2.BORDER_CONSTANT
    )
    # On the object the weighted error is min(smoothed, own error); off it, pred * B.
    np.minimum(smoothed, error, out=smoothed)
    fg_error = weighted_sum(smoothed, fg_box.astype(np.float64))

    decay = np.sqrt(d2, out=d2)
    decay *= _WF_DECAY
    np.exp(decay, out=decay)  # 0.5 ** (dist / 5); 1 on the object
    pred_decay_bg = weighted_sum(pred, decay) - pair.pred_sum_fg
    fp_weighted = 2 * pair.pred_sum_bg - pred_decay_bg

    tp_weighted = num_fg - fg_error
    recall = 1 - fg_error / num_fg
    precision = tp_weighted / (tp_weighted + fp_weighted + EPS)
    return (1 + beta2) * recall * precision / (recall + beta2 * precision + EPS)
