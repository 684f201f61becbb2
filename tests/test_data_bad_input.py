"""Bad input: each problem is named in a warning and skipped, or raised under strict.

Also checks that loading, preparing and listing never change the user's files.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_data import (
    make_all_fixture_trees,
    make_bad_foreground_tree,
    make_refer_tree,
    snapshot,
)

from seg_r1.data import (
    DatasetError,
    LoadReport,
    load_foreground_dataset,
    load_reasonseg_dataset,
    load_refer_dataset,
    prepare_stage_manifests,
    stage_manifest,
    write_eval_jsonl,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def bad(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    return tmp_path, make_bad_foreground_tree(tmp_path)


def test_each_problem_is_named_and_skipped(
    bad: tuple[Path, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    root, problems = bad
    report = LoadReport()
    with caplog.at_level(logging.WARNING, logger="seg_r1.data"):
        ds = load_foreground_dataset("ECSSD", root=root, split="test", report=report)
    assert sorted(ds["id"]) == ["ECSSD/test/good1", "ECSSD/test/good2"]
    assert report.counts() == {kind: 1 for kind in problems}
    by_kind = {issue.kind: Path(issue.path).name for issue in report.issues}
    assert by_kind == problems
    for name in problems.values():  # every offending file is named in a warning
        assert any(name in record.getMessage() for record in caplog.records), name
    summary = caplog.records[-1].getMessage()  # and one summary line closes the load
    assert summary.startswith("ECSSD test: kept 2, skipped 6 (")
    assert "truncated_image: 1" in summary and "non_binary_gt: 1" in summary


@pytest.mark.parametrize("check", ["fast", "full"])
def test_truncation_found_without_full_decode_too(
    bad: tuple[Path, dict[str, str]], check: str
) -> None:
    root, _ = bad
    report = LoadReport()
    load_foreground_dataset("ECSSD", root=root, split="test", check=check, report=report)
    assert report.counts()["truncated_image"] == 1


def test_check_none_only_pairs_names(bad: tuple[Path, dict[str, str]]) -> None:
    root, _ = bad
    report = LoadReport()
    ds = load_foreground_dataset("ECSSD", root=root, split="test", check="none", report=report)
    assert len(ds) == 6  # unreadable, truncated, size and grey files are not opened
    assert report.counts() == {"missing_gt": 1, "gt_without_image": 1}


def test_strict_raises_with_the_path(bad: tuple[Path, dict[str, str]]) -> None:
    root, _ = bad
    with pytest.raises(DatasetError) as info:
        load_foreground_dataset("ECSSD", root=root, split="test", strict=True)
    assert Path(info.value.path).name in set(bad[1].values())
    assert Path(info.value.path).name in str(info.value)


def test_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="COD10K not found") as info:
        load_foreground_dataset("COD10K", root=tmp_path, split="train")
    assert info.value.path.endswith("COD10K-v3")
    (tmp_path / "COD10K-v3" / "Train" / "Image").mkdir(parents=True)
    with pytest.raises(DatasetError, match="GT_Object") as info:
        load_foreground_dataset("COD10K", root=tmp_path, split="train")
    assert info.value.path.endswith("GT_Object")
    with pytest.raises(DatasetError, match="ReasonSeg split 'test' not found"):
        load_reasonseg_dataset("test", root=tmp_path)
    with pytest.raises(DatasetError, match="refcoco annotations not found"):
        load_refer_dataset("refcoco", "val", root=tmp_path)


def test_one_missing_dis_subset_is_skipped(tmp_path: Path) -> None:
    from fixtures_data import make_dis5k_tree

    make_dis5k_tree(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "DIS5K" / "DIS-TE3")
    report = LoadReport()
    assert len(load_foreground_dataset("DIS5K", tmp_path, "test", report=report)) == 3
    assert report.counts() == {"missing_folder": 1}
    with pytest.raises(DatasetError, match="DIS-TE3"):
        load_foreground_dataset("DIS5K", tmp_path, "test", strict=True)


def _write_reasonseg(folder: Path, stem: str, record: dict | str) -> None:
    from fixtures_data import image_array, save_image

    save_image(folder / f"{stem}.jpg", image_array(stem))
    text = record if isinstance(record, str) else json.dumps(record)
    (folder / f"{stem}.json").write_text(text)


def test_reasonseg_bad_samples(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "ReasonSeg" / "val"
    square = [[1, 1], [9, 1], [9, 9], [1, 9]]
    _write_reasonseg(
        folder,
        "ok",
        {"text": ["a"], "is_sentence": False, "shapes": [{"label": "target", "points": square}]},
    )
    _write_reasonseg(folder, "empty", {"text": ["a"], "is_sentence": True, "shapes": []})
    _write_reasonseg(
        folder,
        "only_ignore",
        {"text": ["a"], "is_sentence": True, "shapes": [{"label": "ignore", "points": square}]},
    )
    _write_reasonseg(folder, "no_text", {"text": [], "shapes": [{"label": "t", "points": square}]})
    _write_reasonseg(folder, "broken", "{not json")
    (folder / "orphan.json").write_text(json.dumps({"text": ["a"], "shapes": []}))
    from fixtures_data import image_array, save_image

    save_image(folder / "lonely.jpg", image_array("lonely"))
    report = LoadReport()
    with caplog.at_level(logging.WARNING, logger="seg_r1.data"):
        ds = load_reasonseg_dataset("val", root=tmp_path, report=report)
    # Samples without a target polygon are kept (LISA's protocol) and warned about.
    assert ds["id"] == ["ReasonSeg/val/empty", "ReasonSeg/val/ok", "ReasonSeg/val/only_ignore"]
    assert report.counts() == {
        "no_query": 1,
        "bad_json": 1,
        "missing_image": 1,
        "missing_annotation": 1,
    }
    assert report.counts(skipped=False) == {"empty_target": 2}
    assert report.skipped_samples == report.counts()  # one sample per JSON
    # Training skips them instead.
    skipping = LoadReport()
    ds = load_reasonseg_dataset("val", root=tmp_path, report=skipping, empty_targets="skip")
    assert ds["id"] == ["ReasonSeg/val/ok"] and skipping.counts()["empty_polygons"] == 2
    text = caplog.text
    for name in (
        "empty.json",
        "only_ignore.json",
        "no_text.json",
        "broken.json",
        "orphan.json",
        "lonely.jpg",
    ):
        assert name in text
    with pytest.raises(DatasetError):
        load_reasonseg_dataset("val", root=tmp_path, strict=True)


def test_refer_size_mismatch_and_missing_annotation(tmp_path: Path) -> None:
    make_refer_tree(tmp_path)
    instances_path = tmp_path / "Refer_Segm" / "refcoco" / "instances.json"
    instances = json.loads(instances_path.read_text())
    instances["images"][1]["width"] = 99  # image 2 (val) is really 48 wide
    instances["annotations"] = [a for a in instances["annotations"] if a["id"] != 30]
    instances_path.write_text(json.dumps(instances))
    report = LoadReport()
    assert len(load_refer_dataset("refcoco", "val", root=tmp_path, report=report)) == 0
    assert report.counts() == {"size_mismatch": 1}
    report = LoadReport()
    assert len(load_refer_dataset("refcoco", "testA", root=tmp_path, report=report)) == 0
    assert report.counts() == {"missing_annotation": 1}


def test_user_files_are_never_changed(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    make_all_fixture_trees(root)
    make_bad_foreground_tree(tmp_path / "bad")
    before, before_bad = snapshot(root), snapshot(tmp_path / "bad")
    out = tmp_path / "out"
    prepare_stage_manifests(root, out=out)
    for stage in ("prerl", "rl", "sod"):
        stage_manifest(stage, root=root, manifest_dir=out)
        stage_manifest(stage, root=root, rebuild=True)
    write_eval_jsonl(
        root / "COD10K-v3" / "Test" / "Image",
        root / "COD10K-v3" / "Test" / "GT_Object",
        out / "cod.jsonl",
        root_dir=root,
    )
    load_foreground_dataset("ECSSD", root=tmp_path / "bad", split="test")
    load_refer_dataset("refcocog", "val", root=root)
    load_reasonseg_dataset("val", root=root)
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "utils" / "prepare_eval_datasets.py"),
            "--image_dir",
            str(tmp_path / "bad" / "ECSSD" / "images"),
            "--gt_dir",
            str(tmp_path / "bad" / "ECSSD" / "ground_truth_mask"),
            "--output_file",
            str(out / "bad.jsonl"),
            "--root_dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 2 pairs" in result.stdout and "truncated.jpg" in result.stderr
    # Same files, same bytes, same modification times; nothing added to the user's trees.
    assert snapshot(root) == before
    assert snapshot(tmp_path / "bad") == before_bad


def test_skipped_samples_count_every_sample_of_a_reported_file() -> None:
    """A file reported once (e.g. a missing COCO image) drops every sample that needs it."""
    report = LoadReport(name="x")
    report.skip("missing_image", "a.jpg", "image file not found", samples=3)
    report.skip("missing_image", "b.jpg", "image file not found")
    report.drop("missing_image", "a.jpg", 2)  # two more expressions of a.jpg
    report.warn("empty_target", "c.json", "kept")
    assert report.skipped_samples == {"missing_image": 6}
    assert [i.samples for i in report.issues] == [5, 1, 1]
    assert report.counts() == {"missing_image": 2}  # issues, one per file
    with pytest.raises(ValueError, match="no such skipped issue"):
        report.drop("missing_image", "z.jpg", 1)
