"""eval/eval_foreground_segmentation.py on a synthetic COD10K-layout tree (CPU, tiny models)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from test_eval_support import (
    SCRIPTED_ANSWER,
    common_args,
    load_script,
    make_scripted_policy,
    read_jsonl,
    scripted_policy_dir,
    synthetic_root,
)

from seg_r1.data import load_foreground_dataset, load_mask, write_eval_jsonl
from seg_r1.metrics import format_sod_table
from seg_r1.metrics.folders import evaluate_folders

N_IMAGES = 6


@pytest.fixture(scope="module")
def setup(tiny_ckpts, tmp_path_factory):
    policy = scripted_policy_dir(tiny_ckpts, tmp_path_factory)
    root = synthetic_root(tmp_path_factory) / "fg"
    return policy, root, load_script("eval_foreground_segmentation")


@pytest.fixture(scope="module")
def run(setup, tmp_path_factory):
    """One run from the dataset's real layout (``--dataset synthetic --data_root ...``)."""
    policy, root, script = setup
    out = tmp_path_factory.mktemp("fg_out")
    argv = ["--dataset", "synthetic", "--data_root", str(root), "--vis_output_path", str(out),
            "--report_cases", "2", *common_args(policy)]  # fmt: skip
    assert script.main(argv) == 0
    return out


def test_masks_answers_metrics_and_report_are_written(run, setup):
    _, root, _ = setup
    out = run
    predictions = read_jsonl(out / "synthetic" / "predictions.jsonl")
    assert len(predictions) == N_IMAGES
    assert all(p["completion"] == SCRIPTED_ANSWER for p in predictions)
    dataset = load_foreground_dataset("synthetic", root=root, split="test")
    rows = {r["id"]: r for r in dataset}
    for record in predictions:
        mask = np.asarray(Image.open(out / "synthetic" / record["mask_png"]))
        gt = load_mask(rows[record["id"]])
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        assert mask.shape == gt.shape  # original resolution
        inter = int(((mask > 0) & gt).sum())
        union = int(((mask > 0) | gt).sum())
        assert (record["intersection"], record["union"]) == (inter, union)
    result = json.loads((out / "synthetic_metrics.json").read_text())
    metrics = result["metrics"]
    assert metrics["n"] == N_IMAGES
    assert 0.0 < metrics["Smeasure"] < 1.0 and 0.0 < metrics["gIoU"] < 1.0
    assert result["config"]["frame_size"] == 128 and result["config"]["sam2_bgr_compat"] is False
    table = (out / "synthetic_metrics.md").read_text()
    assert table.startswith(format_sod_table({"synthetic": metrics}))
    assert (out / "synthetic_cases.png").is_file()


def test_metrics_equal_the_folder_evaluation_of_the_saved_masks(run, setup):
    """The SOD numbers are those of the mask PNGs on disk, scored like any prediction folder."""
    _, root, _ = setup
    metrics = json.loads((run / "synthetic_metrics.json").read_text())["metrics"]
    pred_dir = run / "synthetic" / "masks" / "synthetic" / "test"
    folder = evaluate_folders(pred_dir, root / "Test" / "GT_Object")
    assert folder.complete
    expected = folder.metrics.result()
    assert {k: metrics[k] for k in expected} == pytest.approx(expected, abs=1e-12)


def test_one_gt_rule_and_pysodmetrics_on_the_written_files(setup, tmp_path):
    """Ground truth with greys of exactly 127, 128 and 129: IoU (the records), the reward and
    the SOD metrics all see ``grey > 128``; and the run's Sα / MAE / wF equal pysodmetrics run
    directly on the mask PNGs the run wrote and the GT files (an independent computation)."""
    import cv2
    from py_sod_metrics import MAE, Smeasure, WeightedFmeasure

    from seg_r1.data.io import ground_truth

    policy, root, script = setup
    tree = tmp_path / "fg"
    shutil.copytree(root, tree)
    gt_files = sorted((tree / "Test" / "GT_Object").glob("*.png"))
    for k, path in enumerate(gt_files):
        grey = np.asarray(Image.open(path).convert("L")).copy()
        ys, xs = np.nonzero(grey > 128)
        top, left, right = ys.min(), xs.min(), xs.max() + 1
        grey[top, left:right] = 128  # the object's top row: 128 is background
        grey[top + 1, left:right] = 129  # the next one: 129 is foreground
        grey[max(top - 1, 0), left:right] = 127  # above the object: background
        grey[-1, : 1 + k] = 129  # a few stray foreground pixels in the last row
        Image.fromarray(grey, "L").save(path)
    out = tmp_path / "out"
    argv = ["--dataset", "synthetic", "--data_root", str(tree), "--vis_output_path", str(out),
            "--report_cases", "0", *common_args(policy)]  # fmt: skip
    assert script.main(argv) == 0
    metrics = json.loads((out / "synthetic_metrics.json").read_text())["metrics"]
    assert metrics["n_evaluated"] == N_IMAGES and metrics["n_skipped"] == 0
    from seg_r1.evaluation import samples_by_id

    rows = samples_by_id(load_foreground_dataset("synthetic", root=tree, split="test"))
    sm, mae, wfm = Smeasure(), MAE(), WeightedFmeasure()
    for record in read_jsonl(out / "synthetic" / "predictions.jsonl"):
        gt_path = rows[record["id"]]["mask"]["path"]
        gt_file = cv2.imread(gt_path, cv2.IMREAD_GRAYSCALE)
        expected = gt_file > 128
        assert {127, 128, 129} <= set(np.unique(gt_file).tolist())
        # The one rule, seen by IoU (record), the data loader, the reward and the metrics.
        assert record["gt_area"] == int(expected.sum())
        np.testing.assert_array_equal(load_mask(rows[record["id"]]), expected)
        np.testing.assert_array_equal(ground_truth(gt_path), expected)
        pred_png = cv2.imread(str(out / "synthetic" / record["mask_png"]), cv2.IMREAD_GRAYSCALE)
        inter = int(((pred_png > 0) & expected).sum())
        assert record["intersection"] == inter
        for metric in (sm, mae, wfm):
            metric.step(pred=pred_png, gt=gt_file)
    assert metrics["Smeasure"] == pytest.approx(float(sm.get_results()["sm"]), abs=1e-10)
    assert metrics["MAE"] == pytest.approx(float(mae.get_results()["mae"]), abs=1e-10)
    assert metrics["wFmeasure"] == pytest.approx(float(wfm.get_results()["wfm"]), abs=1e-10)


def test_imperfect_answers_follow_the_official_eval_by_default(setup, tiny_ckpts, tmp_path):
    """An answer whose labels do not match its points: the official evaluation still makes a
    box-only mask (the default ``--answer_rule fallback``); the strict switch gives an empty
    one. The box-only mask equals the mask of the same box answered alone."""
    _, root, script = setup
    box = "<bbox>[16,20,112,108]</bbox>"
    mismatched = make_scripted_policy(
        tiny_ckpts.policy,
        tmp_path / "mismatched",
        "<think> a shape </think> " + box + ", <points>[[64,64]]</points>, <labels>[1,0]</labels>",
    )
    box_only = make_scripted_policy(
        tiny_ckpts.policy, tmp_path / "box_only", "<think> a shape </think> " + box
    )

    def run_with(policy, *extra):
        out = tmp_path / f"out_{policy.name}_{len(extra)}"
        argv = ["--dataset", "synthetic", "--data_root", str(root), "--vis_output_path",
                str(out), "--report_cases", "0", "--limit", "2", *common_args(policy), *extra]  # fmt: skip
        assert script.main(argv) == 0
        result = json.loads((out / "synthetic_metrics.json").read_text())
        return result, read_jsonl(out / "synthetic" / "predictions.jsonl")

    result, fallback = run_with(mismatched)
    assert result["config"]["answer_rule"] == "fallback"
    _, reference = run_with(box_only)
    _, strict = run_with(mismatched, "--answer_rule", "well_formed")
    for f, r, s in zip(fallback, reference, strict):
        assert not f["answer"]["ok"] and f["answer"]["usable"] and f["pred_area"] > 0
        assert f["mask_rle"] == r["mask_rle"]
        assert not s["answer"]["usable"] and s["pred_area"] == 0 and s["iou"] == 0.0


def test_eval_jsonl_input_gives_the_same_numbers(run, setup, tmp_path):
    """The seed's ``--prompt_path`` list (paths relative to ``--data_root``) reads the same
    images with the same ids, so the results are identical."""
    policy, root, script = setup
    jsonl = tmp_path / "synthetic_test.jsonl"
    n = write_eval_jsonl(root / "Test" / "Image", root / "Test" / "GT_Object", jsonl, root_dir=root)
    assert n == N_IMAGES
    out = tmp_path / "out"
    argv = ["--prompt_path", str(jsonl), "--data_root", str(root), "--dataset", "synthetic",
            "--vis_output_path", str(out), "--report_cases", "0", *common_args(policy)]  # fmt: skip
    assert script.main(argv) == 0
    expected = json.loads((run / "synthetic_metrics.json").read_text())["metrics"]
    assert json.loads((out / "synthetic_metrics.json").read_text())["metrics"] == expected


def test_real_sam2_backend_with_bgr_compat_runs(setup, tiny_ckpts, tmp_path):
    """The default segmenter path (SAM2 config + checkpoint) on the tiny SAM2."""
    policy, root, script = setup
    args = common_args(policy)
    args[args.index("classical")] = "sam2"
    out = tmp_path / "out"
    argv = ["--dataset", "synthetic", "--data_root", str(root), "--vis_output_path", str(out),
            "--sam2_config", str(tiny_ckpts.sam2_config),
            "--sam2_checkpoint", str(tiny_ckpts.sam2_checkpoint),
            "--bgr_compat", "--limit", "2", "--report_cases", "0", *args]  # fmt: skip
    assert script.main(argv) == 0
    result = json.loads((out / "synthetic_metrics.json").read_text())
    assert result["metrics"]["n"] == 2
    assert result["config"]["segmenter"] == "sam2" and result["config"]["sam2_bgr_compat"] is True
    assert len(list((out / "synthetic" / "masks").rglob("*.png"))) == 2


def test_missing_inputs_fail_loudly(setup, tmp_path):
    policy, _, script = setup
    with pytest.raises(SystemExit):
        script.main(["--vis_output_path", str(tmp_path), *common_args(policy)])
    from seg_r1.data import DatasetError

    with pytest.raises(DatasetError, match="not found"):
        script.main(["--prompt_path", str(tmp_path / "none.jsonl"), "--vis_output_path",
                     str(tmp_path), *common_args(policy)])  # fmt: skip
