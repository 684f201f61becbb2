"""The COD/SOD metric suite: S-measure, weighted F-measure, F-measure, E-measure and MAE.

Definitions follow the papers and the standard toolbox (pysodmetrics 1.6.2 is the test oracle;
inputs are read as described in :mod:`seg_r1.metrics._inputs`: GT ``> 128``, prediction / 255
then min-max normalised):

* **S-measure** (Fan et al., ICCV 2017), ``alpha = 0.5``: ``max(0, alpha * S_object +
  (1 - alpha) * S_region)``; for an empty GT it is ``1 - mean(pred)``, for a full GT ``mean(pred)``.
  S_region splits the image at the GT centroid ``(round(mean row) + 1, round(mean col) + 1)``
  (numpy's round-half-to-even, MATLAB's 1-based ``1:X`` ranges) into four blocks weighted by area.
* **weighted F-measure** (Margolin et al., CVPR 2014), ``beta^2 = 1``: errors of background pixels
  are those of their nearest foreground pixel (Euclidean, ties broken like
  ``scipy.ndimage.distance_transform_edt``: smallest column, then smallest row), smoothed by the
  MATLAB ``fspecial('gaussian', 7, 5)`` kernel with zero padding, and weighted by
  ``2 - 0.5 ** (dist / 5)`` off the object. 0.0 for an empty GT.
* **F-measure** (Achanta et al., CVPR 2009), ``beta^2 = 0.3``: adaptive (binarised at
  ``pred >= min(2 * mean(pred), 1)``; 0 when TP = 0) and a curve over the 256 thresholds of
  ``uint8(255 * pred)`` (precision is 0 where nothing is predicted).
* **E-measure** (Fan et al., IJCAI 2018): enhanced alignment of the binarised prediction, adaptive
  threshold as above and the same 256-threshold curve.
* **MAE**: ``mean(|pred - gt|)``.

Curves have 256 entries in the toolbox's order: entry ``i`` binarises at ``uint8(255 * pred) >=
255 - i`` (so entry 0 keeps only the brightest bin and entry 255 keeps every pixel).

Deviation from pysodmetrics (and the MATLAB original): when the GT centroid falls in the last row
or column, one or two S_region blocks are empty (zero weight) and the toolbox returns NaN (the mean
of an empty block); here an empty block contributes 0, which is the limit of its zero weight.

Speed: the metrics of one pair share a :class:`~seg_r1.metrics._inputs.PreparedPair`. Integer
predictions are handled through 256-bin histograms (E, F, MAE, S_object, S_region statistics,
adaptive thresholds), the distance transform is OpenCV's exact one (``DIST_MASK_PRECISE``; its
float32 output squared and rounded gives the exact integer squared distance), the nearest
foreground pixel is only searched for the background pixels within the 7x7 smoothing window of
the object, and the separable Gaussian runs through ``cv2.sepFilter2D`` on the object's
bounding box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from seg_r1.metrics._inputs import EPS, PreparedPair, hist256, resize_pred, weighted_sum

#: Keys of :meth:`SODMetrics.result` and :meth:`SODScores.as_dict`, the toolbox's names.
from seg_r1.metrics.weighted_f import weighted_f_score

SOD_KEYS: tuple[str, ...] = (
    "Smeasure",
    "wFmeasure",
    "MAE",
    "adpEm",
    "meanEm",
    "maxEm",
    "adpFm",
    "meanFm",
    "maxFm",
)

#: F-measure beta^2 = 0.3 weights precision more than recall (Achanta et al. 2009).
F_BETA2 = 0.3
#: Weighted F-measure beta^2 = 1 (Margolin et al. 2014).
WF_BETA2 = 1.0


@dataclass(frozen=True, eq=False)
class ThresholdScores:
    """A thresholded metric of one pair: the adaptive score and the 256-threshold curve.

    Attributes:
        adaptive: score at the adaptive threshold ``min(2 * mean(pred), 1)``.
        curve: float64 (256,); entry ``i`` binarises at ``uint8(255 * pred) >= 255 - i``.
    """

    adaptive: float
    curve: np.ndarray

    @property
    def mean(self) -> float:
        """Mean of the curve over the 256 thresholds."""
        return float(self.curve.mean())

    @property
    def max(self) -> float:
        """Max of the curve over the 256 thresholds."""
        return float(self.curve.max())


@dataclass(frozen=True, eq=False)
class SODScores:
    """All metrics of one (prediction, GT) pair; curves are float64 (256,) in toolbox order."""

    s_measure: float
    weighted_f_measure: float
    mae: float
    adaptive_e_measure: float
    e_curve: np.ndarray
    adaptive_f_measure: float
    f_curve: np.ndarray
    precision: np.ndarray
    recall: np.ndarray

    def as_dict(self) -> dict[str, float]:
        """The per-pair scores under :data:`SOD_KEYS`."""
        return {
            "Smeasure": self.s_measure,
            "wFmeasure": self.weighted_f_measure,
            "MAE": self.mae,
            "adpEm": self.adaptive_e_measure,
            "meanEm": float(self.e_curve.mean()),
            "maxEm": float(self.e_curve.max()),
            "adpFm": self.adaptive_f_measure,
            "meanFm": float(self.f_curve.mean()),
            "maxFm": float(self.f_curve.max()),
        }


# --------------------------------------------------------------------------- E and F from counts


def _enhanced_alignment_score(tp, pos, num_fg: int, num_pixels: int):
    """E-measure of a binary prediction from its counts (scalars or arrays of thresholds).

    ``tp``: predicted foreground on GT foreground; ``pos``: predicted foreground. The enhanced
    alignment matrix only takes four values (one per TP/FP/FN/TN cell), so its sum is a weighted
    sum of four numbers.
    """
    if num_fg == 0:
        total = num_pixels - pos
    elif num_fg == num_pixels:
        total = pos
    else:
        mean_pred = pos / num_pixels
        mean_gt = num_fg / num_pixels
        pred_fg, pred_bg = 1 - mean_pred, 0 - mean_pred
        gt_fg, gt_bg = 1 - mean_gt, 0 - mean_gt
        cells = (
            (tp, pred_fg, gt_fg),
            (pos - tp, pred_fg, gt_bg),
            (num_fg - tp, pred_bg, gt_fg),
            (num_pixels - pos - (num_fg - tp), pred_bg, gt_bg),
        )
        total = 0
        for count, a, b in cells:
            align = 2 * (a * b) / (a**2 + b**2 + EPS)
            total = total + (align + 1) ** 2 / 4 * count
    return total / (num_pixels - 1 + EPS)


def _threshold_counts(pair: PreparedPair) -> tuple[np.ndarray, np.ndarray]:
    """(TP, P) float64 (256,) for every threshold, in toolbox curve order."""
    fg_hist, bg_hist = pair.bin_hists
    tp = np.cumsum(fg_hist[::-1])
    pos = tp + np.cumsum(bg_hist[::-1])
    return tp, pos


def _e_measure(pair: PreparedPair) -> ThresholdScores:
    tp, pos = _threshold_counts(pair)
    curve = _enhanced_alignment_score(tp, pos, pair.num_fg, pair.num_pixels)
    adp_tp, adp_pos = pair.adaptive_counts
    adaptive = _enhanced_alignment_score(adp_tp, adp_pos, pair.num_fg, pair.num_pixels)
    return ThresholdScores(float(adaptive), np.asarray(curve, dtype=np.float64))


def _f_curves(pair: PreparedPair, beta2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, F) float64 (256,) in toolbox curve order."""
    tp, pos = _threshold_counts(pair)
    precision = tp / np.where(pos == 0, 1, pos)  # nothing predicted: TP = 0, precision 0
    recall = tp / max(pair.num_fg, 1)  # empty GT: TP = 0, recall 0
    numerator = (1 + beta2) * precision * recall
    denominator = np.where(numerator == 0, 1, beta2 * precision + recall)
    return precision, recall, numerator / denominator


def _adaptive_f_measure(pair: PreparedPair, beta2: float) -> float:
    tp, pos = pair.adaptive_counts
    if tp == 0:
        return 0.0
    precision = tp / pos
    recall = tp / pair.num_fg
    return (1 + beta2) * precision * recall / (beta2 * precision + recall)


# ----------------------------------------------------------------------------------- S-measure


def _object_similarity(count: int, mean: float, squared_deviation: float) -> float:
    """S_object of one side: ``2 m / (m^2 + 1 + s + eps)``, s the sample std (0 for 1 pixel)."""
    std = math.sqrt(squared_deviation / (count - 1)) if count > 1 else 0.0
    return 2 * mean / (mean**2 + 1 + std + EPS)


def _s_object(pair: PreparedPair) -> float:
    """Object-level similarity: prediction on the object, 1 - prediction off it."""
    num_pixels, num_fg = pair.num_pixels, pair.num_fg
    num_bg = num_pixels - num_fg
    if pair.codes is not None:
        lut = pair.lut
        fg_mean = pair.pred_sum_fg / num_fg
        fg_sq = weighted_sum(pair.code_hist_fg, (lut - fg_mean) ** 2)
        bg_mean = (num_bg - pair.pred_sum_bg) / num_bg
        bg_sq = weighted_sum(pair.code_hist_bg, (1 - lut - bg_mean) ** 2)
    else:
        fg_values = pair.pred[pair.gt]
        bg_values = 1 - pair.pred[~pair.gt]
        fg_mean = float(fg_values.mean())
        bg_mean = float(bg_values.mean())
        fg_sq = float(np.square(fg_values - fg_mean).sum())
        bg_sq = float(np.square(bg_values - bg_mean).sum())
    fg_share = num_fg / num_pixels
    fg_score = _object_similarity(num_fg, fg_mean, fg_sq)
    bg_score = _object_similarity(num_bg, bg_mean, bg_sq)
    return fg_score * fg_share + bg_score * (1 - fg_share)


def _block_ssim(pair: PreparedPair, rows: slice, cols: slice) -> float:
    """The S-measure's SSIM of one non-empty block.

    ``alpha = 4 mx my sxy``, ``beta = (mx^2 + my^2)(sx + sy)`` with (N - 1 + eps) normalisation;
    ``alpha / (beta + eps)`` if alpha != 0, else 1 if beta == 0 (both constant and equal to 0, or
    both constant with an exact mean), else 0. The block mean of the prediction is numpy's, like
    the toolbox's, so the exact-zero tests come out the same.
    """
    pred = pair.pred[rows, cols]
    gt = pair.gt[rows, cols]
    count = pred.size
    mean_x = float(pred.mean())
    if pair.codes is not None:
        codes = pair.codes[rows, cols]
        hist_all = hist256(codes)
        hist_fg = hist256(codes, gt)
        deviation = pair.lut - mean_x
        num_fg = float(hist_fg.sum())
        sq_dev = weighted_sum(hist_all, deviation**2)
        dev_fg = weighted_sum(hist_fg, deviation)
        dev_bg = weighted_sum(hist_all - hist_fg, deviation)
    else:
        deviation = pred - mean_x
        num_fg = float(np.count_nonzero(gt))
        sq_dev = float(np.square(deviation).sum())
        dev_fg = float(deviation[gt].sum())
        dev_bg = float(deviation[~gt].sum())
    mean_y = num_fg / count
    norm = count - 1 + EPS
    sigma_x = sq_dev / norm
    sigma_y = (num_fg * (1 - mean_y) ** 2 + (count - num_fg) * mean_y**2) / norm
    sigma_xy = ((1 - mean_y) * dev_fg - mean_y * dev_bg) / norm
    alpha = 4 * mean_x * mean_y * sigma_xy
    beta = (mean_x**2 + mean_y**2) * (sigma_x + sigma_y)
    if alpha != 0:
        return alpha / (beta + EPS)
    return 1.0 if beta == 0 else 0.0


def _s_region(pair: PreparedPair) -> float:
    """Region-level similarity: area-weighted SSIM of the four blocks around the GT centroid."""
    height, width = pair.shape
    area = height * width
    num_fg = pair.num_fg
    # Exact integer sums, so the centroid equals numpy's float mean of the pixel coordinates.
    cy = round(int((np.arange(height) * pair.fg_row_counts).sum()) / num_fg) + 1
    cx = round(int((np.arange(width) * pair.fg_col_counts).sum()) / num_fg) + 1
    w_lt = cx * cy / area
    w_rt = cy * (width - cx) / area
    w_lb = (height - cy) * cx / area
    w_rb = 1 - w_lt - w_rt - w_lb
    blocks = (
        (w_lt, slice(0, cy), slice(0, cx)),
        (w_rt, slice(0, cy), slice(cx, width)),
        (w_lb, slice(cy, height), slice(0, cx)),
        (w_rb, slice(cy, height), slice(cx, width)),
    )
    score = 0.0
    for weight, rows, cols in blocks:
        if rows.stop > rows.start and cols.stop > cols.start:  # empty block: weight 0, see module
            score += _block_ssim(pair, rows, cols) * weight
    return score


def _s_measure(pair: PreparedPair, alpha: float) -> float:
    if pair.num_fg == 0:
        return 1 - pair.mean_pred
    if pair.num_fg == pair.num_pixels:
        return pair.mean_pred
    return max(0.0, alpha * _s_object(pair) + (1 - alpha) * _s_region(pair))


# ----------------------------------------------------------------------------------------- MAE


def _mae(pair: PreparedPair) -> float:
    if pair.codes is not None:  # |pred - 0| off the object, 1 - pred on it
        return (pair.pred_sum_bg + (pair.num_fg - pair.pred_sum_fg)) / pair.num_pixels
    return float(np.abs(pair.pred - pair.gt).mean())


# ------------------------------------------------------------------------------ public functions


def s_measure(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.5) -> float:
    """S-measure (structure measure) of one prediction, in [0, 1], higher is better.

    Args:
        pred: (H, W) prediction: uint8 [0, 255], bool (a binary mask: True = foreground) or float
            [0, 1]; min-max normalised as in :mod:`seg_r1.metrics._inputs`.
        gt: (H, W) GT: bool, or uint8 with foreground ``> 128``. Same shape as ``pred``.
        alpha: weight of the object-level term (0.5 in the paper and the toolbox).
    """
    return float(_s_measure(PreparedPair(pred, gt), alpha))


def weighted_f_measure(pred: np.ndarray, gt: np.ndarray, beta2: float = WF_BETA2) -> float:
    """Weighted F-measure (beta^2 = 1) of one prediction, in [0, 1]; 0.0 for an empty GT.

    Args: as :func:`s_measure`.
    """
    return float(weighted_f_score(PreparedPair(pred, gt), beta2))


def e_measure(pred: np.ndarray, gt: np.ndarray) -> ThresholdScores:
    """E-measure of one prediction: adaptive score and 256-threshold curve (see the module doc).

    Args: as :func:`s_measure`.
    """
    return _e_measure(PreparedPair(pred, gt))


def f_measure(pred: np.ndarray, gt: np.ndarray, beta2: float = F_BETA2) -> ThresholdScores:
    """F-measure (beta^2 = 0.3) of one prediction: adaptive score and 256-threshold curve.

    Args: as :func:`s_measure`.
    """
    pair = PreparedPair(pred, gt)
    return ThresholdScores(_adaptive_f_measure(pair, beta2), _f_curves(pair, beta2)[2])


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error between the normalised prediction and the binary GT, in [0, 1].

    Args: as :func:`s_measure`.
    """
    return float(_mae(PreparedPair(pred, gt)))


def sod_scores(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.5) -> SODScores:
    """Every COD/SOD metric of one pair, sharing the preparation between them.

    Args: as :func:`s_measure`; ``pred`` must already have the GT's shape (see
    :func:`~seg_r1.metrics.resize_pred`).
    """
    pair = PreparedPair(pred, gt)
    e_scores = _e_measure(pair)
    precision, recall, f_curve = _f_curves(pair, F_BETA2)
    return SODScores(
        s_measure=float(_s_measure(pair, alpha)),
        weighted_f_measure=float(weighted_f_score(pair, WF_BETA2)),
        mae=float(_mae(pair)),
        adaptive_e_measure=e_scores.adaptive,
        e_curve=e_scores.curve,
        adaptive_f_measure=float(_adaptive_f_measure(pair, F_BETA2)),
        f_curve=f_curve,
        precision=precision,
        recall=recall,
    )


# --------------------------------------------------------------------------------- accumulator


@dataclass
class SODMetrics:
    """Accumulates the COD/SOD suite over a dataset, like the toolbox's ``step``/``get_results``.

    ``update(pred, gt)`` takes the raw maps (see :func:`s_measure` for dtypes); a prediction whose
    shape differs from the GT's is resized to it with ``cv2.resize(..., (W, H),
    interpolation=cv2.INTER_LINEAR)`` when ``resize_pred`` is true (the usual eval scripts' step),
    and refused otherwise.

    ``result()`` aggregates like pysodmetrics: scalar metrics (Smeasure, wFmeasure, MAE, adpEm,
    adpFm) are means over images; the E/F curves are averaged over images first, then meanEm/maxEm
    and meanFm/maxFm are the mean and max of the averaged curve.

    Example:
        >>> import numpy as np
        >>> metrics = SODMetrics()
        >>> gt = np.zeros((8, 8), np.uint8); gt[2:6, 2:6] = 255
        >>> _ = metrics.update(gt.copy(), gt)  # a perfect prediction
        >>> scores = metrics.result()
        >>> round(scores["Smeasure"], 9), scores["MAE"], round(scores["maxFm"], 9)
        (1.0, 0.0, 1.0)
    """

    alpha: float = 0.5
    resize_pred: bool = True
    _scalars: dict[str, list[float]] = field(default_factory=dict, init=False, repr=False)
    _curve_sums: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _count: int = field(default=0, init=False, repr=False)

    def __len__(self) -> int:
        return self._count

    def score(self, pred: np.ndarray, gt: np.ndarray) -> SODScores:
        """The scores of one pair (resized as configured), without accumulating them."""
        gt = np.asarray(gt)
        if self.resize_pred:
            pred = resize_pred(pred, gt.shape[:2])
        return sod_scores(pred, gt, alpha=self.alpha)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
        """Score one pair, accumulate it and return its per-image scores (keys :data:`SOD_KEYS`)."""
        scores = self.score(pred, gt)
        self.add(scores)
        return scores.as_dict()

    def add(self, scores: SODScores) -> None:
        """Accumulate scores computed elsewhere (e.g. in worker processes), in dataset order."""
        for key, value in (
            ("Smeasure", scores.s_measure),
            ("wFmeasure", scores.weighted_f_measure),
            ("MAE", scores.mae),
            ("adpEm", scores.adaptive_e_measure),
            ("adpFm", scores.adaptive_f_measure),
        ):
            self._scalars.setdefault(key, []).append(value)
        for key, curve in (
            ("Em", scores.e_curve),
            ("Fm", scores.f_curve),
            ("precision", scores.precision),
            ("recall", scores.recall),
        ):
            if key in self._curve_sums:
                self._curve_sums[key] += curve
            else:
                self._curve_sums[key] = np.array(curve, dtype=np.float64)
        self._count += 1

    def curves(self) -> dict[str, np.ndarray]:
        """Curves averaged over images: ``Em``, ``Fm``, ``precision``, ``recall`` (256,) each."""
        if self._count == 0:
            raise ValueError("SODMetrics is empty: call update() at least once")
        return {key: total / self._count for key, total in self._curve_sums.items()}

    def result(self) -> dict[str, float]:
        """Dataset scores under :data:`SOD_KEYS` (floats)."""
        curves = self.curves()
        result = {key: float(np.mean(np.array(values))) for key, values in self._scalars.items()}
        result["meanEm"] = float(curves["Em"].mean())
        result["maxEm"] = float(curves["Em"].max())
        result["meanFm"] = float(curves["Fm"].mean())
        result["maxFm"] = float(curves["Fm"].max())
        return {key: result[key] for key in SOD_KEYS}
