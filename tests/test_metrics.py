"""seg_r1.metrics against the pysodmetrics oracle, plus hand-computed IoU / table cases.

The COD/SOD corpus is generated here (seeded numpy, small non-square sizes) and covers random,
blob-like and near-binary predictions, uniform predictions (0, 255, 128), empty / full / one-pixel
GTs, GTs with JPEG-like grey values around the 128 threshold and tie-heavy GTs for the weighted
F-measure's nearest-pixel search. Every key must agree with pysodmetrics 1.6.2 to 1e-6 absolute,
per image and aggregated, except where the oracle returns NaN (see ``test_s_measure_empty_block``).
"""

from __future__ import annotations

import doctest
import math
import warnings

import cv2
import numpy as np
import py_sod_metrics
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py_sod_metrics.utils import prepare_data

import seg_r1.metrics._inputs as inputs_module
import seg_r1.metrics.iou as iou_module
import seg_r1.metrics.sod as sod_module
import seg_r1.metrics.table as table_module
from seg_r1.metrics import (
    SOD_KEYS,
    IoUAccumulator,
    SODMetrics,
    ciou,
    e_measure,
    f_measure,
    format_sod_table,
    giou,
    intersection_union,
    mae,
    mask_iou,
    resize_pred,
    s_measure,
    sod_scores,
    weighted_f_measure,
)

TOL = 1e-6

# ------------------------------------------------------------------------------------- oracle


def _oracle_metrics():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Fmeasure is deprecated in favour of FmeasureV2
        return {
            "sm": py_sod_metrics.Smeasure(),
            "wfm": py_sod_metrics.WeightedFmeasure(),
            "mae": py_sod_metrics.MAE(),
            "em": py_sod_metrics.Emeasure(),
            "fm": py_sod_metrics.Fmeasure(),
        }


def _oracle_step(metrics, pred: np.ndarray, gt: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty-slice mean of the S_region NaN case
        for metric in metrics.values():
            metric.step(pred, gt)


def _oracle_results(metrics) -> dict[str, float]:
    """The usual pysodmetrics eval-script aggregation, under our keys."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = metrics["em"].get_results()["em"]
        fm = metrics["fm"].get_results()["fm"]
        return {
            "Smeasure": float(metrics["sm"].get_results()["sm"]),
            "wFmeasure": float(metrics["wfm"].get_results()["wfm"]),
            "MAE": float(metrics["mae"].get_results()["mae"]),
            "adpEm": float(em["adp"]),
            "meanEm": float(em["curve"].mean()),
            "maxEm": float(em["curve"].max()),
            "adpFm": float(fm["adp"]),
            "meanFm": float(fm["curve"].mean()),
            "maxFm": float(fm["curve"].max()),
        }


def oracle(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    metrics = _oracle_metrics()
    _oracle_step(metrics, pred, gt)
    return _oracle_results(metrics)


def oracle_s_measure_skipping_empty_blocks(pred_u8: np.ndarray, gt_u8: np.ndarray) -> float:
    """The toolbox's S-measure with empty S_region blocks contributing 0 instead of NaN.

    Built from the oracle's own pieces (``object``, ``ssim``) and its block split: centroid
    ``round(mean index) + 1``, blocks ``[0:cy) x [0:cx)`` etc., weights by area with the last one
    ``1 - others``.
    """
    pred, gt = prepare_data(pred_u8, gt_u8)
    sm = py_sod_metrics.Smeasure()
    if gt.mean() == 0:
        return 1 - pred.mean()
    if gt.mean() == 1:
        return pred.mean()
    h, w = gt.shape
    cy, cx = (int(v) + 1 for v in np.argwhere(gt).mean(axis=0).round())
    weights = [cx * cy / (h * w), cy * (w - cx) / (h * w), (h - cy) * cx / (h * w)]
    weights.append(1 - sum(weights))
    blocks = [
        (slice(0, cy), slice(0, cx)),
        (slice(0, cy), slice(cx, w)),
        (slice(cy, h), slice(0, cx)),
        (slice(cy, h), slice(cx, w)),
    ]
    region = sum(
        sm.ssim(pred[r, c], gt[r, c]) * weight
        for weight, (r, c) in zip(weights, blocks)
        if gt[r, c].size
    )
    return max(0.0, 0.5 * sm.object(pred, gt) + 0.5 * region)


# ------------------------------------------------------------------------------------- corpus


def _smooth(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(rng.standard_normal((h, w)), (0, 0), sigma)


def _gt(kind: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    gt = np.zeros((h, w), np.uint8)
    if kind == "blob":
        field = _smooth(rng, h, w, max(h, w) / 8)
        gt[field > np.quantile(field, rng.uniform(0.5, 0.95))] = 255
    elif kind == "full":
        gt[:] = 255
    elif kind == "pixel_first":
        gt[0, 0] = 255
    elif kind == "pixel_mid":
        gt[h // 2, w // 3] = 255
    elif kind == "jpeg":  # greys on both sides of 128, 128 itself is background
        field = _smooth(rng, h, w, max(h, w) / 8)
        fg = field > np.median(field)
        noise = rng.integers(-40, 41, (h, w))
        gt = np.clip(np.where(fg, 170, 90) + noise, 0, 255).astype(np.uint8)
        gt[0, :2] = (128, 129)
    elif kind == "ties":  # isolated dots and diagonals: many equidistant nearest pixels
        gt[rng.random((h, w)) < 0.03] = 255
        for k in range(0, min(h, w), 2):
            gt[k, k] = 255
        gt[::7, ::5] = 255
    elif kind == "thin":
        gt[h // 3, 2 : w - 2] = 255
        gt[1 : h - 1, w // 2] = 255
    elif kind != "empty":
        raise ValueError(kind)
    return gt


def _pred(kind: str, rng: np.random.Generator, gt: np.ndarray) -> np.ndarray:
    h, w = gt.shape
    if kind == "random":
        return rng.integers(0, 256, (h, w), dtype=np.uint8)
    if kind == "blob":  # a smooth map correlated with the GT
        field = cv2.GaussianBlur((gt > 128).astype(np.float64), (0, 0), 2)
        field += rng.uniform(0.2, 1.0) * _smooth(rng, h, w, 4) * 3
        field -= field.min()
        return (255 * field / max(field.max(), 1e-9)).astype(np.uint8)
    if kind == "near_binary":  # GT with flipped pixels and a few greys
        pred = np.where(gt > 128, 255, 0)
        flip = rng.random((h, w)) < 0.05
        pred = np.where(flip, 255 - pred, pred)
        grey = rng.random((h, w)) < 0.05
        return np.where(grey, rng.integers(0, 256, (h, w)), pred).astype(np.uint8)
    if kind == "zeros":
        return np.zeros((h, w), np.uint8)
    if kind == "ones":
        return np.full((h, w), 255, np.uint8)
    if kind == "const128":
        return np.full((h, w), 128, np.uint8)
    if kind == "gt":
        return np.where(gt > 128, 255, 0).astype(np.uint8)
    raise ValueError(kind)


SIZES = ((37, 53), (53, 37), (64, 64), (29, 96), (3, 5))
GT_KINDS = ("blob", "empty", "full", "pixel_first", "pixel_mid", "jpeg", "ties", "thin")
PRED_KINDS = ("random", "blob", "near_binary", "zeros", "ones", "const128", "gt")


def _build_corpus() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20240607)
    corpus = []
    for h, w in SIZES:
        for gt_kind in GT_KINDS:
            gt = _gt(gt_kind, rng, h, w)
            for pred_kind in PRED_KINDS:
                pred = _pred(pred_kind, rng, gt)
                corpus.append((f"{h}x{w}-{gt_kind}-{pred_kind}", pred, gt))
    # One-pixel objects in the last row / column: the oracle's S_region has an empty block.
    for h, w, y, x in ((37, 53, 36, 52), (37, 53, 36, 10), (37, 53, 5, 52)):
        gt = np.zeros((h, w), np.uint8)
        gt[y, x] = 255
        for pred_kind in ("random", "blob", "zeros", "const128"):
            corpus.append((f"{h}x{w}-edge{y},{x}-{pred_kind}", _pred(pred_kind, rng, gt), gt))
    return corpus


CORPUS = _build_corpus()


@pytest.fixture(scope="module")
def oracle_per_image() -> dict[str, dict[str, float]]:
    return {name: oracle(pred, gt) for name, pred, gt in CORPUS}


def _expected(name: str, pred, gt, oracle_scores: dict[str, float]) -> dict[str, float]:
    """The oracle's scores, with its NaN S-measure replaced by the empty-block-free value."""
    expected = dict(oracle_scores)
    if math.isnan(expected["Smeasure"]):
        expected["Smeasure"] = oracle_s_measure_skipping_empty_blocks(pred, gt)
    return expected


def _assert_close(ours: dict[str, float], expected: dict[str, float], context: str) -> None:
    assert set(ours) == set(SOD_KEYS)
    for key in SOD_KEYS:
        assert abs(ours[key] - expected[key]) <= TOL, f"{context}: {key} {ours[key]} vs {expected}"


# ------------------------------------------------------------------------ COD/SOD vs the oracle


def test_corpus_covers_the_nan_case(oracle_per_image):
    """The corpus includes images where pysodmetrics' S-measure is NaN (and only S-measure)."""
    nan_keys = {k for scores in oracle_per_image.values() for k, v in scores.items() if v != v}
    assert nan_keys == {"Smeasure"}


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=[name for name, _, _ in CORPUS])
def test_suite_matches_oracle_per_image(index, oracle_per_image):
    name, pred, gt = CORPUS[index]
    expected = _expected(name, pred, gt, oracle_per_image[name])
    _assert_close(sod_scores(pred, gt).as_dict(), expected, name)


def test_suite_matches_oracle_aggregated(oracle_per_image):
    ours = SODMetrics()
    theirs = _oracle_metrics()
    for name, pred, gt in CORPUS:
        ours.update(pred, gt)
        if not math.isnan(oracle_per_image[name]["Smeasure"]):
            _oracle_step(theirs, pred, gt)
    result = ours.result()
    assert list(result) == list(SOD_KEYS)
    # All keys but Smeasure aggregate the same images in both; the oracle's aggregated S-measure
    # would be NaN with the empty-block images, so it is checked against the per-image values.
    ours_without_nan = SODMetrics()
    for name, pred, gt in CORPUS:
        if not math.isnan(oracle_per_image[name]["Smeasure"]):
            ours_without_nan.update(pred, gt)
    expected = _oracle_results(theirs)
    _assert_close(ours_without_nan.result(), expected, "aggregated, oracle-defined images")
    s_values = [_expected(n, p, g, oracle_per_image[n])["Smeasure"] for n, p, g in CORPUS]
    assert abs(result["Smeasure"] - np.mean(s_values)) <= TOL
    assert len(ours) == len(CORPUS)


def test_curves_match_oracle_elementwise():
    """E/F curves and precision/recall, entry by entry (toolbox order), not just mean/max."""
    for name, pred, gt in CORPUS[::7]:
        metrics = _oracle_metrics()
        _oracle_step(metrics, pred, gt)
        em = metrics["em"].get_results()["em"]
        fm = metrics["fm"].get_results()
        scores = sod_scores(pred, gt)
        np.testing.assert_allclose(scores.e_curve, em["curve"], rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(scores.f_curve, fm["fm"]["curve"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(scores.precision, fm["pr"]["p"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(scores.recall, fm["pr"]["r"], rtol=0, atol=1e-12)
        accumulated = SODMetrics()
        accumulated.update(pred, gt)
        np.testing.assert_array_equal(accumulated.curves()["Em"], scores.e_curve)


def test_functional_forms_agree_with_suite():
    for name, pred, gt in CORPUS[::5]:
        suite = sod_scores(pred, gt)
        assert s_measure(pred, gt) == suite.s_measure, name
        assert weighted_f_measure(pred, gt) == suite.weighted_f_measure, name
        assert mae(pred, gt) == suite.mae, name
        em, fm = e_measure(pred, gt), f_measure(pred, gt)
        assert em.adaptive == suite.adaptive_e_measure
        np.testing.assert_array_equal(em.curve, suite.e_curve)
        assert (em.mean, em.max) == (suite.as_dict()["meanEm"], suite.as_dict()["maxEm"])
        assert fm.adaptive == suite.adaptive_f_measure
        np.testing.assert_array_equal(fm.curve, suite.f_curve)


def test_float_and_integer_predictions_equal_uint8():
    """uint8 / 255 as float64 and wider integer dtypes give the uint8 numbers exactly."""
    for name, pred, gt in CORPUS[::3]:
        reference = sod_scores(pred, gt).as_dict()
        assert sod_scores(pred / 255, gt).as_dict() == pytest.approx(reference, abs=1e-12), name
        assert sod_scores(pred.astype(np.int64), gt).as_dict() == reference, name


def test_bool_masks_equal_uint8_0_255_and_the_oracle():
    """The RL reward's call: a binary predicted mask and a binary GT, both bool."""
    for name, pred, gt in CORPUS:
        if not name.endswith(("-near_binary", "-gt", "-zeros", "-ones")):
            continue
        pred_bool, gt_bool = pred > 127, gt > 128
        pred_u8 = np.where(pred_bool, 255, 0).astype(np.uint8)
        gt_u8 = np.where(gt_bool, 255, 0).astype(np.uint8)
        expected = oracle(pred_u8, gt_u8)
        if math.isnan(expected["Smeasure"]):
            expected["Smeasure"] = oracle_s_measure_skipping_empty_blocks(pred_u8, gt_u8)
        _assert_close(sod_scores(pred_bool, gt_bool).as_dict(), expected, name)
        assert s_measure(pred_bool, gt_bool) == sod_scores(pred_u8, gt_u8).s_measure


def test_s_measure_empty_block():
    """GT centroid in the last row: the toolbox gives NaN, we drop the zero-weight block."""
    gt = np.zeros((6, 8), np.uint8)
    gt[5, 2] = 255  # centroid row round(5) + 1 = 6 = H: the bottom blocks are empty
    pred = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    assert math.isnan(oracle(pred, gt)["Smeasure"])
    ours = s_measure(pred, gt)
    assert math.isfinite(ours)
    assert ours == pytest.approx(oracle_s_measure_skipping_empty_blocks(pred, gt), abs=1e-12)


def test_s_measure_trivial_gts_by_hand():
    pred = np.zeros((3, 4), bool)
    pred[0, :3] = True  # 3 of 12 pixels
    assert s_measure(pred, np.zeros((3, 4), bool)) == 0.75  # empty GT: 1 - mean(pred)
    assert s_measure(pred, np.ones((3, 4), bool)) == 0.25  # full GT: mean(pred)


def test_mae_and_normalisation_by_hand():
    gt = np.array([[0, 255, 0, 0]], np.uint8)
    assert mae(np.array([[0, 255, 255, 0]], np.uint8), gt) == 0.25  # one wrong pixel of four
    # min-max normalisation: [10, 60] -> [0, 1], so this is the same prediction as above
    assert mae(np.array([[10, 60, 60, 10]], np.uint8), gt) == 0.25
    # a constant map keeps its value: |128/255 - gt| averaged
    assert mae(np.full((1, 4), 128, np.uint8), gt) == pytest.approx((3 * 128 + 127) / 255 / 4)


def test_weighted_f_measure_empty_gt_is_zero():
    pred = np.zeros((5, 7), np.uint8)
    assert weighted_f_measure(pred, np.zeros((5, 7), np.uint8)) == 0.0


def test_resize_to_gt_like_eval_scripts():
    rng = np.random.default_rng(3)
    gt = _gt("blob", rng, 45, 61)
    small = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    resized = cv2.resize(small, (61, 45), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(resize_pred(small, gt.shape), resized)
    metrics = SODMetrics()
    per_image = metrics.update(small, gt)
    _assert_close(per_image, oracle(resized, gt), "resized")
    with pytest.raises(ValueError, match="shape"):
        sod_scores(small, gt)  # the functional forms never resize silently
    with pytest.raises(ValueError, match="shape"):
        SODMetrics(resize_pred=False).update(small, gt)
    bool_resized = resize_pred(np.ones((2, 2), bool), (3, 3))
    assert bool_resized.dtype == np.uint8 and (bool_resized == 255).all()


def test_histogram_fallback_for_huge_images(monkeypatch):
    """Images over 2**24 pixels count with np.bincount (float32 calcHist would round)."""
    name, pred, gt = CORPUS[0]
    reference = sod_scores(pred, gt).as_dict()
    monkeypatch.setattr(inputs_module, "_CALCHIST_MAX_PIXELS", 0)
    assert sod_scores(pred, gt).as_dict() == pytest.approx(reference, abs=1e-12)
    assert sod_scores(pred / 255, gt).as_dict() == pytest.approx(reference, abs=1e-12)


def test_histogram_with_a_flat_calchist(monkeypatch):
    """OpenCV builds that return calcHist's counts as (256,) instead of (256, 1) (the GPU
    machine's OpenCV, seen in benchmarks/gpu_check.sh) give the same scores as the oracle."""
    name, pred, gt = CORPUS[0]
    reference = sod_scores(pred, gt).as_dict()
    real = cv2.calcHist

    class FlatCV2:
        def __getattr__(self, attr):
            return getattr(cv2, attr)

        @staticmethod
        def calcHist(*args, **kwargs):
            return real(*args, **kwargs).reshape(-1)

    monkeypatch.setattr(inputs_module, "cv2", FlatCV2())
    assert sod_scores(pred, gt).as_dict() == pytest.approx(reference, abs=1e-12)
    codes = np.array([[0, 3, 3], [255, 3, 0]], np.uint8)
    expected = np.bincount(codes.ravel(), minlength=256).astype(np.float64)
    assert np.array_equal(inputs_module.hist256(codes), expected)


def test_input_validation():
    gt = np.zeros((4, 4), np.uint8)
    with pytest.raises(TypeError, match="GT"):
        s_measure(np.zeros((4, 4), np.uint8), np.zeros((4, 4), "U1"))
    with pytest.raises(ValueError, match="NaN"):
        s_measure(np.zeros((4, 4), np.uint8), np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        s_measure(np.full((4, 4), 2.0), gt)
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        s_measure(np.full((4, 4), 300), gt)
    with pytest.raises(ValueError, match="2-D"):
        s_measure(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        SODMetrics().result()


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    height=st.integers(2, 24),
    width=st.integers(2, 24),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
    levels=st.sampled_from([2, 3, 256]),
)
def test_random_small_pairs_match_oracle(height, width, density, seed, levels):
    rng = np.random.default_rng(seed)
    gt = np.where(rng.random((height, width)) < density, 255, 0).astype(np.uint8)
    pred = (rng.integers(0, levels, (height, width)) * (255 // (levels - 1))).astype(np.uint8)
    expected = oracle(pred, gt)
    if math.isnan(expected["Smeasure"]):
        expected["Smeasure"] = oracle_s_measure_skipping_empty_blocks(pred, gt)
    _assert_close(sod_scores(pred, gt).as_dict(), expected, f"{height}x{width} seed {seed}")


# ------------------------------------------------------------------------------ referring IoUs


def test_intersection_union_and_iou_by_hand():
    pred = np.array([[1, 1, 0, 0]], bool)
    gt = np.array([[0, 1, 1, 0]], bool)
    assert intersection_union(pred, gt) == (1, 3)  # I = {1}, U = {0, 1, 2}
    assert mask_iou(pred, gt) == 1 / 3
    ignore = np.array([[0, 0, 1, 0]], bool)  # pixel 2 leaves the union
    assert intersection_union(pred, gt, ignore) == (1, 2)
    assert mask_iou(pred, gt, ignore) == 0.5
    ignore_hit = np.array([[0, 1, 0, 0]], bool)  # pixel 1 leaves both
    assert intersection_union(pred, gt, ignore_hit) == (0, 2)
    assert mask_iou(pred, gt, ignore_hit) == 0.0


def test_iou_empty_conventions():
    empty = np.zeros((3, 3), bool)
    some = np.zeros((3, 3), bool)
    some[1, 1] = True
    assert mask_iou(empty, empty) == 1.0  # empty vs empty: LISA's convention
    assert mask_iou(empty, some) == 0.0
    assert mask_iou(some, empty) == 0.0
    assert mask_iou(some, some, ignore=np.ones((3, 3), bool)) == 1.0  # nothing left to judge
    assert ciou([0, 0], [0, 0]) == 1.0
    assert giou([1.0, 0.0, 0.5]) == 0.5


def test_iou_accepts_integer_masks_and_refuses_float():
    pred = np.array([[0, 1], [1, 1]], np.uint8)  # pycocotools-style 0/1
    gt = np.array([[0, 255], [0, 255]], np.uint8)
    assert intersection_union(pred, gt) == (2, 3)
    with pytest.raises(TypeError, match="threshold"):
        mask_iou(pred.astype(np.float32), gt)
    with pytest.raises(ValueError, match="shape"):
        mask_iou(pred, gt[:, :1])


def test_iou_accumulator_by_hand():
    acc = IoUAccumulator()
    # A: I = 1, U = 3 -> 1/3
    assert acc.update(np.array([[1, 1, 0, 0]]), np.array([[0, 1, 1, 0]])) == 1 / 3
    # B: empty vs empty -> 1.0, adds 0 / 0 to the cIoU sums
    assert acc.update(np.zeros((1, 4), bool), np.zeros((1, 4), bool)) == 1.0
    # C: pred everywhere, GT on 2 pixels -> I = 2, U = 4 -> 0.5
    assert acc.update(np.ones((1, 4), bool), np.array([[1, 1, 0, 0]], bool)) == 0.5
    # D: like C but the last pixel ignored -> I = 2, U = 3
    ignore = np.array([[0, 0, 0, 1]], bool)
    assert acc.update(np.ones((1, 4), bool), np.array([[1, 1, 0, 0]], bool), ignore) == 2 / 3
    result = acc.result()
    assert result["n"] == 4
    # gIoU = (1/3 + 1 + 1/2 + 2/3) / 4 = 2.5 / 4 = 0.625
    assert result["gIoU"] == pytest.approx(0.625, abs=1e-15)
    # cIoU = (1 + 0 + 2 + 2) / (3 + 0 + 4 + 3) = 5 / 10
    assert result["cIoU"] == 0.5
    assert len(acc) == 4


def test_iou_accumulator_errors():
    with pytest.raises(ValueError, match="empty"):
        IoUAccumulator().result()
    with pytest.raises(ValueError, match="intersection <= union"):
        IoUAccumulator().add(3, 2)


# ----------------------------------------------------------------------------------- the table


def test_format_sod_table_exact():
    row = {
        "Smeasure": 0.8734,
        "wFmeasure": 0.7612,
        "MAE": 0.02849,
        "adpEm": 0.9011,
        "meanEm": 0.9102,
        "maxEm": 0.9304,
        "adpFm": 0.7704,
        "meanFm": 0.7801,
        "maxFm": 0.8013,
    }
    assert format_sod_table({"COD10K": row, "CAMO": row}, name_header="model").split("\n") == [
        "| model | Sα | Fβw | Fβ(mean) | Eφ(mean) | Eφ(max) | MAE | adpFm | maxFm | adpEm |",
        "|---|---|---|---|---|---|---|---|---|---|",
        "| COD10K | 0.873 | 0.761 | 0.780 | 0.910 | 0.930 | 0.028 | 0.770 | 0.801 | 0.901 |",
        "| CAMO | 0.873 | 0.761 | 0.780 | 0.910 | 0.930 | 0.028 | 0.770 | 0.801 | 0.901 |",
    ]
    with pytest.raises(KeyError, match="maxFm"):
        format_sod_table({"x": {k: v for k, v in row.items() if k != "maxFm"}})


@pytest.mark.parametrize("module", [iou_module, sod_module, table_module], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
