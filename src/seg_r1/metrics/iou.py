"""Referring / reasoning segmentation metrics: per-sample IoU, gIoU and cIoU.

* **IoU** of one sample: ``|pred & gt| / |pred | gt|`` over the pixels not ignored.
* **gIoU**: mean of the per-sample IoUs over the split.
* **cIoU**: ``sum(intersection) / sum(union)`` over the split (large objects weigh more).

Empty GT and empty prediction: the sample's IoU is **1.0** (a correct "nothing here" answer),
the convention of LISA's evaluation, which the reasoning/referring papers (LISA, Seg-Zero,
Seg-R1) report. Such a sample adds 0 to both cIoU sums, so cIoU just sums. The same holds when
the ignore mask covers every pixel (nothing left to get wrong). If every sample of a split has an
empty union, cIoU is also 1.0 (LISA's ``I / (U + 1e-10)`` would give 0 there; the epsilon is
otherwise dropped: IoUs here are exact ratios).

Masks are (H, W) arrays. Predictions: ``bool`` or integer (non-zero = foreground, e.g.
pycocotools' uint8 0/1); float predictions are refused (threshold them first). Ground truth goes
through :func:`seg_r1.metrics.binarize_gt`, the package's one GT rule (``> 128`` on the 0-255
scale, ``> 0.5`` on the 0/1 scale), so IoU and the SOD metrics see the same GT. ``ignore`` marks pixels excluded from both
the intersection and the union (e.g. ReasonSeg's label 255 when configured as "ignore").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from seg_r1.metrics._inputs import binarize_gt


def _as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        return mask
    if np.issubdtype(mask.dtype, np.integer):
        return mask != 0
    raise TypeError(
        f"{name} must be a bool or integer mask, got {mask.dtype}; threshold it first "
        "(e.g. `prob > 0.5`)"
    )


def intersection_union(
    pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None
) -> tuple[int, int]:
    """Pixel counts (intersection, union) of two masks, ignored pixels excluded from both.

    Args:
        pred: (H, W) predicted mask, bool or integer (non-zero = foreground).
        gt: (H, W) ground truth of the same shape, binarised by :func:`binarize_gt`.
        ignore: optional (H, W) mask of pixels to leave out (True / non-zero = ignored).

    Example:
        >>> import numpy as np
        >>> intersection_union(np.array([[1, 1, 0]]), np.array([[0, 1, 1]]))
        (1, 3)
    """
    pred = _as_mask(pred, "pred")
    gt = binarize_gt(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} != gt shape {gt.shape}")
    inter = pred & gt
    union = pred | gt
    if ignore is not None:
        ignore = _as_mask(ignore, "ignore")
        if ignore.shape != gt.shape:
            raise ValueError(f"ignore shape {ignore.shape} != gt shape {gt.shape}")
        keep = ~ignore
        inter &= keep
        union &= keep
    return int(np.count_nonzero(inter)), int(np.count_nonzero(union))


def iou_from_counts(intersection: int, union: int) -> float:
    """``intersection / union``, and 1.0 for an empty union (empty GT and empty prediction)."""
    return 1.0 if union == 0 else intersection / union


def mask_iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """IoU of one sample in [0, 1]; 1.0 when prediction and GT are both empty (see module doc).

    Args: as :func:`intersection_union`.
    """
    return iou_from_counts(*intersection_union(pred, gt, ignore))


def giou(ious: Iterable[float]) -> float:
    """gIoU: the mean of per-sample IoUs. Raises ValueError on an empty split."""
    values = list(ious)
    if not values:
        raise ValueError("gIoU of an empty split is undefined")
    return float(np.mean(values))


def ciou(intersections: Sequence[int], unions: Sequence[int]) -> float:
    """cIoU: ``sum(intersections) / sum(unions)``; 1.0 when every union is empty.

    Raises ValueError on an empty split or mismatched lengths.
    """
    if len(intersections) != len(unions):
        raise ValueError(f"{len(intersections)} intersections but {len(unions)} unions")
    if len(unions) == 0:
        raise ValueError("cIoU of an empty split is undefined")
    return iou_from_counts(int(sum(intersections)), int(sum(unions)))


@dataclass
class IoUAccumulator:
    """Accumulates gIoU and cIoU over a split, one sample (one referring expression) at a time.

    Example:
        >>> import numpy as np
        >>> acc = IoUAccumulator()
        >>> acc.update(np.array([[1, 1, 0, 0]]), np.array([[0, 1, 1, 0]]))  # I = 1, U = 3
        0.3333333333333333
        >>> acc.update(np.zeros((1, 4), bool), np.zeros((1, 4), bool))  # empty vs empty
        1.0
        >>> acc.result()  # gIoU = (1/3 + 1) / 2, cIoU = (1 + 0) / (3 + 0)
        {'gIoU': 0.6666666666666666, 'cIoU': 0.3333333333333333, 'n': 2}
    """

    ious: list[float] = field(default_factory=list)
    intersection: int = 0
    union: int = 0

    def __len__(self) -> int:
        return len(self.ious)

    def update(self, pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float:
        """Add one sample and return its IoU. Args: as :func:`intersection_union`."""
        return self.add(*intersection_union(pred, gt, ignore))

    def add(self, intersection: int, union: int) -> float:
        """Add one sample from its counts (e.g. computed in a worker) and return its IoU."""
        if not 0 <= intersection <= union:
            raise ValueError(f"need 0 <= intersection <= union, got {intersection}, {union}")
        iou = iou_from_counts(intersection, union)
        self.ious.append(iou)
        self.intersection += intersection
        self.union += union
        return iou

    def result(self) -> dict[str, float | int]:
        """``{"gIoU": mean IoU, "cIoU": sum I / sum U, "n": number of samples}``."""
        if not self.ious:
            raise ValueError("IoUAccumulator is empty: call update() at least once")
        return {
            "gIoU": giou(self.ious),
            "cIoU": iou_from_counts(self.intersection, self.union),
            "n": len(self.ious),
        }
