"""Evaluation metrics: the COD/SOD suite and the referring/reasoning IoUs (SPEC section 7).

COD/SOD (:mod:`seg_r1.metrics.sod`; pysodmetrics is the reference and the test oracle):

* :func:`s_measure`, :func:`weighted_f_measure`, :func:`f_measure`, :func:`e_measure`,
  :func:`mae` -- one pair; :func:`sod_scores` -- the whole suite of one pair, sharing the work;
* :class:`SODMetrics` -- accumulator: ``update(pred, gt)`` per image, ``result()`` returns
  ``Smeasure, wFmeasure, MAE, adpEm, meanEm, maxEm, adpFm, meanFm, maxFm``;
* :func:`format_sod_table` -- markdown table in the field's column order.

Inputs follow the toolbox: GT binarised at ``> 128`` (or bool; :func:`binarize_gt` is the
package's ONE ground-truth rule, used by the data loaders and the rewards too), prediction
uint8 / 255 (or bool, or float in [0, 1]) min-max normalised; see :mod:`seg_r1.metrics._inputs`.

Referring / reasoning (:mod:`seg_r1.metrics.iou`): :func:`mask_iou`,
:func:`intersection_union`, :func:`giou`, :func:`ciou` and :class:`IoUAccumulator`
(empty GT + empty prediction = IoU 1.0, LISA's convention).
"""

from seg_r1.metrics._inputs import GT_THRESHOLD, binarize_gt, resize_pred
from seg_r1.metrics.iou import (
    IoUAccumulator,
    ciou,
    giou,
    intersection_union,
    iou_from_counts,
    mask_iou,
)
from seg_r1.metrics.sod import (
    SOD_KEYS,
    SODMetrics,
    SODScores,
    ThresholdScores,
    e_measure,
    f_measure,
    mae,
    s_measure,
    sod_scores,
    weighted_f_measure,
)
from seg_r1.metrics.table import SOD_TABLE_COLUMNS, format_sod_table

__all__ = [
    "GT_THRESHOLD",
    "SOD_KEYS",
    "SOD_TABLE_COLUMNS",
    "IoUAccumulator",
    "SODMetrics",
    "SODScores",
    "ThresholdScores",
    "binarize_gt",
    "ciou",
    "e_measure",
    "f_measure",
    "format_sod_table",
    "giou",
    "intersection_union",
    "iou_from_counts",
    "mae",
    "mask_iou",
    "resize_pred",
    "s_measure",
    "sod_scores",
    "weighted_f_measure",
]
