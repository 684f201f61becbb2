"""Input conventions of the COD/SOD metrics, and the per-pair work the metrics share.

The conventions are those of the standard toolbox (pysodmetrics, after the MATLAB originals):

* **GT** -- a 2-D array binarised by :func:`binarize_gt`, the package's one ground-truth rule:
  ``bool`` is used as is; a 0-255 map (8-bit PNG) is foreground where ``> 128``, so JPEG-like
  greys up to 128 are background (the toolbox's rule); a map on the 0/1 scale (maximum <= 1)
  is foreground where ``> 0.5`` (the toolbox would read it as empty).
* **Prediction** -- a 2-D array of the same shape, one of

  - ``uint8`` in [0, 255] (or another integer dtype with values in that range): divided by 255
    (MATLAB ``im2double``);
  - ``bool``: False/True are 0.0/1.0, i.e. the same as a uint8 map of {0, 255};
  - ``float32``/``float64`` in [0, 1]: used as is (float32 is promoted to float64);

  then min-max normalised to [0, 1] when its max != min (MATLAB ``mapminmax``); a constant map
  keeps its value (a uint8 map of 128 stays 128/255).

For the threshold curves the normalised prediction is quantised as ``uint8(255 * p)``
(truncation, like the toolbox), giving 256 bins. Integer and bool predictions only ever take 256
distinct values ("codes"), so everything the metrics need is read off a 256-bin histogram of the
codes split by GT, and the normalised map is built with one lookup table: results are the same
float64 numbers as the toolbox's elementwise arithmetic. A float32 prediction is not: its values
differ from the uint8/255 ones in the last bits, which can move a pixel by one bin; pass the uint8
map for toolbox-exact numbers.
"""

from __future__ import annotations

from functools import cached_property

import cv2
import numpy as np

#: MATLAB's ``eps`` (2.2204e-16): the toolbox adds it to denominators; reproduced for equal numbers.
EPS: float = float(np.spacing(1))

#: cv2.calcHist counts in float32, exact up to 2**24; larger images fall back to np.bincount.
_CALCHIST_MAX_PIXELS = 1 << 24

#: Values of the 256 uint8 codes after ``im2double`` (v / 255, correctly rounded like numpy's).
_UINT8_SCALE = np.arange(256, dtype=np.float64) / 255


#: THE ground-truth rule of the whole package, on the 0-255 scale: foreground is ``> 128``.
#: It is the toolbox's (pysodmetrics ``gt > 128``), so the SOD metrics stay equal to it; the
#: official Seg-R1 reward binarises at ``> 127`` -- the two differ only on GT pixels of
#: exactly 128 (none in a 0/255 mask). See ``eval/README.md``, "Ground truth".
GT_THRESHOLD = 128


def binarize_gt(gt: np.ndarray) -> np.ndarray:
    """THE ground-truth rule: a GT map as a C-contiguous ``bool (H, W)`` array.

    Every reader of ground truth calls this (the dataset loaders, the rewards, the metrics):

    * ``bool`` -- used as is;
    * a numeric map on the **0/1 scale** (its maximum is <= 1: a ``{0, 1}`` integer mask or a
      float mask in [0, 1]) -- foreground where ``> 0.5``. The toolbox would read a 0/1 map as
      empty (``> 128``), which is the official reward's defect (SPEC §4); an all-zero map is
      empty on either scale;
    * any other numeric map is on the **0-255 scale** -- foreground where ``> 128``
      (:data:`GT_THRESHOLD`), the toolbox's rule: a grey of 128 is background, 129 foreground.

    Raises:
        ValueError: not 2-D, or NaN values.
        TypeError: not a boolean or numeric array.
    """
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise ValueError(f"GT must be a 2-D (H, W) map, got shape {gt.shape}")
    if gt.dtype == np.bool_:
        return np.ascontiguousarray(gt)
    if not (np.issubdtype(gt.dtype, np.integer) or np.issubdtype(gt.dtype, np.floating)):
        raise TypeError(f"GT must be a bool or numeric (0..255 or 0/1) map, got {gt.dtype}")
    if np.issubdtype(gt.dtype, np.floating) and np.isnan(gt).any():
        raise ValueError("GT contains NaN values")
    if gt.size and gt.max() <= 1:
        return np.ascontiguousarray(gt > 0.5)
    return np.ascontiguousarray(gt > GT_THRESHOLD)


def resize_pred(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a prediction to ``shape`` = (H, W) like the usual eval scripts.

    ``cv2.resize(pred, (W, H), interpolation=cv2.INTER_LINEAR)`` (bilinear, half-pixel centres) on
    the raw map, before normalisation; a bool map is first turned into uint8 {0, 255}. Returns the
    input unchanged when it already has that shape.
    """
    pred = np.asarray(pred)
    height, width = shape
    if pred.shape == (height, width):
        return pred
    if pred.ndim != 2:
        raise ValueError(f"prediction must be a 2-D (H, W) map, got shape {pred.shape}")
    if pred.dtype == np.bool_:
        pred = pred.astype(np.uint8) * np.uint8(255)
    elif np.issubdtype(pred.dtype, np.integer) and pred.dtype != np.uint8:
        pred = _integer_to_uint8(pred)
    return cv2.resize(pred, (width, height), interpolation=cv2.INTER_LINEAR)


def _integer_to_uint8(pred: np.ndarray) -> np.ndarray:
    if pred.size and (pred.min() < 0 or pred.max() > 255):
        raise ValueError(
            f"integer predictions must lie in [0, 255], got [{pred.min()}, {pred.max()}]"
        )
    return pred.astype(np.uint8)


def hist256(codes: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Counts of the uint8 ``codes`` (where ``mask``), as a float64 (256,) array."""
    if codes.size <= _CALCHIST_MAX_PIXELS:
        mask_u8 = None if mask is None else mask.view(np.uint8)
        counts = cv2.calcHist([codes], [0], mask_u8, [256], [0, 256])
        # (256, 1) here (OpenCV 4.14), (256,) from the GPU machine's OpenCV build (gpu_check)
        return counts.reshape(256).astype(np.float64)
    values = codes.ravel() if mask is None else codes[mask]
    return np.bincount(values, minlength=256).astype(np.float64)


def weighted_sum(weights: np.ndarray, values: np.ndarray) -> float:
    """``sum(weights * values)`` of two same-shape float64 arrays.

    ``np.einsum`` runs its own single-threaded loop; ``np.dot`` would go through BLAS, whose
    threads stall badly on a loaded machine (a 512x512 dot took 10+ ms instead of 0.05 ms).
    """
    return float(np.einsum("i,i->", weights.ravel(), values.ravel()))


class PreparedPair:
    """A (prediction, GT) pair in the toolbox's conventions, with the work the metrics share.

    Attributes:
        pred: float64 (H, W) C-contiguous, the normalised prediction in [0, 1].
        gt: bool (H, W) C-contiguous, the binarised GT.
        codes: uint8 (H, W) with ``pred == lut[codes]`` for integer/bool input, else None.
        lut: float64 (256,) value of each code, or None.

    Everything else is computed on first use and cached, so a metric suite pays for it once.
    """

    def __init__(self, pred: np.ndarray, gt: np.ndarray) -> None:
        self.gt = binarize_gt(gt)
        pred = np.asarray(pred)
        if pred.shape != self.gt.shape:
            raise ValueError(
                f"prediction shape {pred.shape} != GT shape {self.gt.shape}; resize it first "
                "(seg_r1.metrics.resize_pred, as SODMetrics does)"
            )
        if pred.size == 0:
            raise ValueError("empty prediction/GT (0 pixels)")
        self.codes: np.ndarray | None
        self.lut: np.ndarray | None
        if pred.dtype == np.bool_ or np.issubdtype(pred.dtype, np.integer):
            if pred.dtype == np.bool_:
                codes = np.ascontiguousarray(pred).view(np.uint8)
                scale = np.zeros(256, dtype=np.float64)
                scale[1] = 1.0
            else:
                codes = np.ascontiguousarray(
                    pred if pred.dtype == np.uint8 else _integer_to_uint8(pred)
                )
                scale = _UINT8_SCALE
            self.codes = codes
            present = np.flatnonzero(self.code_hist_all)
            low, high = scale[present[0]], scale[present[-1]]
            self.lut = (scale - low) / (high - low) if high != low else scale.copy()
            self.pred = cv2.LUT(codes, self.lut)
        elif pred.dtype in (np.float32, np.float64):
            pred = pred.astype(np.float64)
            low, high = float(pred.min()), float(pred.max())
            if not (0.0 <= low and high <= 1.0):
                raise ValueError(
                    f"float predictions must lie in [0, 1], got [{low}, {high}]; "
                    "pass uint8 maps in [0, 255] unscaled"
                )
            if high != low:
                pred = (pred - low) / (high - low)
            self.codes = None
            self.lut = None
            self.pred = np.ascontiguousarray(pred)
        else:
            raise TypeError(f"prediction dtype {pred.dtype} not supported (uint8, bool, float)")

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W)."""
        return self.gt.shape  # type: ignore[return-value]

    @property
    def num_pixels(self) -> int:
        """H * W."""
        return self.gt.size

    @cached_property
    def num_fg(self) -> int:
        """Number of GT foreground pixels."""
        return int(np.count_nonzero(self.gt))

    @cached_property
    def fg_row_counts(self) -> np.ndarray:
        """int (H,) number of GT foreground pixels in each row."""
        return np.count_nonzero(self.gt, axis=1)

    @cached_property
    def fg_col_counts(self) -> np.ndarray:
        """int (W,) number of GT foreground pixels in each column."""
        return np.count_nonzero(self.gt, axis=0)

    @cached_property
    def code_hist_all(self) -> np.ndarray:
        """float64 (256,) counts of each code over the image (integer/bool input only)."""
        assert self.codes is not None
        return hist256(self.codes)

    @cached_property
    def code_hist_fg(self) -> np.ndarray:
        """float64 (256,) counts of each code on GT foreground (integer/bool input only)."""
        assert self.codes is not None
        return hist256(self.codes, self.gt)

    @cached_property
    def code_hist_bg(self) -> np.ndarray:
        """float64 (256,) counts of each code on GT background (integer/bool input only)."""
        return self.code_hist_all - self.code_hist_fg

    @cached_property
    def mean_pred(self) -> float:
        """Mean of the normalised prediction (numpy's pairwise sum, as the toolbox computes it)."""
        return float(self.pred.mean())

    @cached_property
    def bin_hists(self) -> tuple[np.ndarray, np.ndarray]:
        """(fg, bg): float64 (256,) counts of ``uint8(255 * pred)`` on GT foreground/background."""
        if self.codes is not None:
            assert self.lut is not None
            # Codes absent from the image may map outside [0, 1]; they have zero weight.
            code_bin = (np.clip(self.lut, 0.0, 1.0) * 255).astype(np.uint8)
            fg = np.bincount(code_bin, weights=self.code_hist_fg, minlength=256)
            bg = np.bincount(code_bin, weights=self.code_hist_bg, minlength=256)
            return fg, bg
        bins = (self.pred * 255).astype(np.uint8)
        fg = hist256(bins, self.gt)
        return fg, hist256(bins) - fg

    @cached_property
    def adaptive_threshold(self) -> float:
        """The toolbox's adaptive threshold ``min(2 * mean(pred), 1)``."""
        return min(2 * self.mean_pred, 1.0)

    @cached_property
    def adaptive_counts(self) -> tuple[int, int]:
        """(TP, P) of the prediction binarised at ``pred >= adaptive_threshold``."""
        threshold = self.adaptive_threshold
        if self.codes is not None:
            assert self.lut is not None
            selected = self.lut >= threshold
            return int(self.code_hist_fg[selected].sum()), int(self.code_hist_all[selected].sum())
        binary = self.pred >= threshold
        return int(np.count_nonzero(binary & self.gt)), int(np.count_nonzero(binary))

    @cached_property
    def pred_sum_fg(self) -> float:
        """Sum of the normalised prediction over GT foreground."""
        if self.codes is not None:
            assert self.lut is not None
            return weighted_sum(self.code_hist_fg, self.lut)
        return float(self.pred[self.gt].sum())

    @cached_property
    def pred_sum_bg(self) -> float:
        """Sum of the normalised prediction over GT background."""
        if self.codes is not None:
            assert self.lut is not None
            return weighted_sum(self.code_hist_bg, self.lut)
        return float(self.pred[~self.gt].sum())
