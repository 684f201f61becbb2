"""eval/eval_referring_segmentation.py on synthetic REFER-layout data (CPU, tiny checkpoints).

The same evaluation is run four ways -- uninterrupted, killed with SIGKILL midway and
resumed, sharded over two worker processes, and re-run -- and must give identical results
and per-sample records.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_eval_support import (
    ROOT,
    SCRIPTED_ANSWER,
    common_args,
    load_script,
    read_jsonl,
    scripted_policy_dir,
    synthetic_root,
)

from seg_r1.data import DatasetError
from seg_r1.evaluation import EvalError
from seg_r1.metrics import IoUAccumulator

SCRIPT = "eval_referring_segmentation"
SPLITS = "refcoco_val,refcoco_testA"
#: Expressions written by ``synthetic_root`` (30 in val, 21 in testA).
N_VAL, N_TESTA = 30, 21


@pytest.fixture(scope="module")
def setup(tiny_ckpts, tmp_path_factory):
    policy = scripted_policy_dir(tiny_ckpts, tmp_path_factory)
    root = synthetic_root(tmp_path_factory) / "ref"
    return policy, root, load_script(SCRIPT)


def _args(policy: Path, root: Path, output: Path, *extra: str) -> list[str]:
    return [
        "--data_root", str(root),
        "--split", SPLITS,
        "--output_file", str(output),
        "--report_cases", "0",
        *common_args(policy, batch_size=4),
        *extra,
    ]  # fmt: skip


def _results(output: Path) -> dict:
    return json.loads(output.read_text())["results"]


def _predictions(output: Path) -> list[dict]:
    return read_jsonl(output.with_suffix("") / "predictions.jsonl")


def _count_lines(folder: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in folder.glob("*.jsonl"))


def test_every_expression_and_metrics_from_records(setup, tmp_path):
    policy, root, script = setup
    output = tmp_path / "a" / "results.json"
    assert script.main(_args(policy, root, output, "--report_cases", "2")) == 0
    results = _results(output)
    assert list(results) == ["refcoco_val", "refcoco_testA"]
    assert results["refcoco_val"]["n"] == N_VAL and results["refcoco_testA"]["n"] == N_TESTA
    predictions = _predictions(output)
    assert len(predictions) == N_VAL + N_TESTA
    assert len({p["id"] for p in predictions}) == N_VAL + N_TESTA
    assert all(p["completion"] == SCRIPTED_ANSWER for p in predictions)
    # Metrics are recomputable from the per-sample records alone.
    for group, result in results.items():
        acc = IoUAccumulator()
        for p in predictions:
            if p["group"] == group:
                acc.add(p["intersection"], p["union"])
        assert acc.result() == {k: result[k] for k in ("gIoU", "cIoU", "n")}
    assert 0.0 < results["refcoco_val"]["gIoU"] < 1.0  # non-trivial masks
    assert results["refcoco_val"]["format_ok_rate"] == 1.0
    table = output.with_suffix(".md").read_text()
    # The standard size of RefCOCO val is 10,834 expressions: the synthetic split is flagged.
    assert "| refcoco_val | 30 / 10834 |" in table
    assert "**INCOMPLETE refcoco_val: evaluated 30 of the standard 10,834 samples" in table
    assert results["refcoco_val"]["complete"] is False
    assert (output.with_suffix("") / "cases_refcoco_val.png").is_file()


def _coco_mask(segmentation, height: int, width: int) -> np.ndarray:
    """pycocotools' own decoding of a COCO segmentation (polygons or RLE), merged."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


def test_ciou_giou_equal_plain_numpy_over_the_saved_masks(setup, tmp_path):
    """An independent computation: the saved masks (RLE decoded by pycocotools), the GT from
    the split's own annotations (pycocotools), plain NumPy sums -- not the runner's
    accumulator or its mask decoding."""
    from pycocotools import mask as mask_utils

    from seg_r1.data import load_refer_dataset

    policy, root, script = setup
    output = tmp_path / "results.json"
    assert script.main(_args(policy, root, output)) == 0
    results = _results(output)
    rows = {}
    for name, split in (("refcoco", "val"), ("refcoco", "testA")):
        rows.update({r["id"]: r for r in load_refer_dataset(name, split, root=root)})
    by_group: dict[str, list[tuple[int, int]]] = {}
    for record in _predictions(output):
        ann = json.loads(rows[record["id"]]["annotation"])
        gt = _coco_mask(ann["segmentation"], ann["height"], ann["width"])
        rle = dict(record["mask_rle"], counts=record["mask_rle"]["counts"].encode())
        pred = mask_utils.decode(rle).astype(bool)
        assert pred.shape == gt.shape
        inter, union = int((pred & gt).sum()), int((pred | gt).sum())
        by_group.setdefault(record["group"], []).append((inter, union))
    assert set(by_group) == {"refcoco_val", "refcoco_testA"}
    for group, counts in by_group.items():
        inter = np.array([c[0] for c in counts], float)
        union = np.array([c[1] for c in counts], float)
        assert (union > 0).all()
        assert results[group]["gIoU"] == pytest.approx(float(np.mean(inter / union)), abs=1e-12)
        assert results[group]["cIoU"] == pytest.approx(inter.sum() / union.sum(), abs=1e-12)
        assert results[group]["n"] == len(counts)


def test_skipped_samples_are_counted_by_reason_and_strict_refuses(setup, tmp_path):
    """No silent drops: a missing image skips all its expressions; the result says how many
    and why, the run is marked incomplete (JSON, markdown, log), and --strict refuses."""
    policy, root, script = setup
    tree = tmp_path / "ref"
    shutil.copytree(root, tree)
    instances = json.loads((tree / "Refer_Segm" / "refcoco" / "instances.json").read_text())
    with (tree / "Refer_Segm" / "refcoco" / "refs(unc).p").open("rb") as f:
        refs = pickle.load(f)
    val_images = sorted({r["image_id"] for r in refs if r["split"] == "val"})
    victim = next(i for i in instances["images"] if i["id"] == val_images[0])
    lost = sum(len(r["sentences"]) for r in refs if r["image_id"] == victim["id"])
    images = next(tree.rglob(victim["file_name"]))
    images.unlink()
    output = tmp_path / "results.json"
    argv = _args(policy, tree, output)
    argv[argv.index("--data_root") + 1] = str(tree)
    assert script.main(argv) == 0
    summary = json.loads(output.read_text())
    val = summary["results"]["refcoco_val"]
    assert lost > 0 and val["n"] == val["n_evaluated"] == N_VAL - lost
    assert val["n_skipped"] == lost and val["skipped"] == {"missing_image": lost}
    assert val["n_expected"] == 10834 and val["complete"] is False
    assert summary["complete"] is False
    table = output.with_suffix(".md").read_text()
    assert f"skipped {lost} (missing_image {lost})" in table
    with pytest.raises(DatasetError, match="strict"):
        script.main([*argv, "--strict", "--overwrite"])


#: Samples of the resume / shard tests: 6 chunks of 4 (keeps them fast).
LIMIT = "24"


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):
    """An uninterrupted single-process run of the first 24 expressions."""
    policy, root, script = setup
    out = tmp_path_factory.mktemp("reference") / "results.json"
    assert script.main(_args(policy, root, out, "--limit", LIMIT)) == 0
    return out, _results(out), _predictions(out)


def test_killed_then_resumed_run_gives_identical_results(setup, reference, tmp_path):
    policy, root, script = setup
    _, expected_results, expected_predictions = reference
    out = tmp_path / "killed" / "results.json"
    records = out.with_suffix("") / "records"
    args = _args(policy, root, out, "--limit", LIMIT)
    # A real interruption: SIGKILL as soon as the first chunk's records are on disk ...
    with (tmp_path / "killed.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "eval" / f"{SCRIPT}.py"), *args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        while proc.poll() is None and _count_lines(records) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    done = _count_lines(records)
    assert 0 < done < int(LIMIT)
    assert not out.exists()
    # ... then the same command again resumes and finishes with identical numbers.
    assert script.main(args) == 0
    assert _results(out) == expected_results
    assert _predictions(out) == expected_predictions
    assert _count_lines(records) == int(LIMIT)  # finished samples were not redone


def test_sharded_run_gives_identical_results(setup, reference, tmp_path):
    policy, root, script = setup
    _, expected_results, expected_predictions = reference
    out = tmp_path / "results.json"
    assert script.main(_args(policy, root, out, "--limit", LIMIT, "--num_workers", "2")) == 0
    assert _results(out) == expected_results
    assert _predictions(out) == expected_predictions
    assert len(list((out.with_suffix("") / "records").glob("part-*.jsonl"))) == 2


def test_same_command_twice_gives_identical_results(setup, reference):
    policy, root, script = setup
    out, expected_results, expected_predictions = reference
    part = out.with_suffix("") / "records" / "part-000.jsonl"
    before = part.read_bytes()
    assert script.main(_args(policy, root, out, "--limit", LIMIT)) == 0
    assert _results(out) == expected_results
    assert _predictions(out) == expected_predictions
    assert part.read_bytes() == before  # nothing was recomputed


def test_partial_chunk_is_recomputed_whole(setup, tmp_path):
    """A chunk with some records missing is rerun with the same composition; only the
    missing records are appended and the final numbers do not change."""
    policy, root, script = setup
    out = tmp_path / "results.json"
    script.main(_args(policy, root, out, "--limit", "10"))
    expected = _results(out)
    part = out.with_suffix("") / "records" / "part-000.jsonl"
    lines = part.read_text().splitlines(keepends=True)
    assert len(lines) == 10
    part.write_text("".join(lines[:5]) + lines[5][:17])  # chunk 2 half written, torn line
    script.main(_args(policy, root, out, "--limit", "10"))
    assert _results(out) == expected
    assert len(part.read_text().splitlines()) == 10


def test_resume_refuses_other_settings(setup, tmp_path):
    policy, root, script = setup
    out = tmp_path / "results.json"
    script.main(_args(policy, root, out, "--limit", "2"))
    with pytest.raises(EvalError, match="max_new_tokens: was 64, now 65"):
        script.main(_args(policy, root, out, "--limit", "2", "--max_new_tokens", "65"))
    assert script.main(_args(policy, root, out, "--limit", "2", "--max_new_tokens", "65",
                             "--overwrite")) == 0  # fmt: skip


def test_split_names(setup):
    _, _, script = setup
    assert len(script.parse_splits("all")) == 8
    assert script.parse_splits("refcoco+_testA,refcocog_test") == [
        ("refcoco+", "testA"),
        ("refcocog", "test"),
    ]
    with pytest.raises(SystemExit, match="refcocoX_val"):
        script.parse_splits("refcocoX_val")
