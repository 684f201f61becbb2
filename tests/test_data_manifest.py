"""Stage manifests (prepare CLI, stage_manifest) and the seed's eval JSONL (tool + reader)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import (
    COD10K_TEST_CAM,
    make_all_fixture_trees,
    make_cod10k_tree,
    make_dis5k_tree,
)

from seg_r1.data import (
    DatasetError,
    LoadReport,
    build_stage,
    load_eval_jsonl,
    load_foreground_dataset,
    load_mask,
    load_reasonseg_dataset,
    load_refer_dataset,
    prepare_stage_manifests,
    read_manifest,
    stage_manifest,
    write_eval_jsonl,
    write_manifest,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    make_all_fixture_trees(root)
    return root


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "utils" / script), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_stages_from_raw_folders(root: Path) -> None:
    rl, summary = build_stage("rl", root)
    assert summary["sources"] == {"COD10K": 3, "CAMO": 3} and summary["total"] == 6
    assert set(rl["source"]) == {"COD10K", "CAMO"}
    assert len(stage_manifest("prerl", root=root)) == 3  # no manifest yet: raw folders
    assert len(stage_manifest("sod", root=root)) == 3


def test_prepare_cli_writes_manifests_and_counts(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    result = _run("prepare_datasets.py", "--root", str(root), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "COD10K" in result.stdout and "CAMO" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert {s: summary[s]["total"] for s in summary} == {"prerl": 3, "rl": 6, "sod": 3}
    lines = (out / "rl.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["image"] == f"COD10K-v3/Train/Image/{first['id'].split('/')[-1]}.jpg"
    assert first["mask"].startswith("COD10K-v3/Train/GT_Object/")
    ds = stage_manifest("rl", root=root, manifest_dir=out)
    assert len(ds) == 6 and not any("NonCAM" in i for i in ds["id"])
    assert load_mask(ds[0]).any()


def test_prepare_via_the_seed_shell_entry_point(tmp_path: Path) -> None:
    make_dis5k_tree(tmp_path)
    out = tmp_path / "m"
    env_python = {"PYTHON": sys.executable}
    import os

    result = subprocess.run(
        [
            "bash",
            str(REPO / "utils" / "prepare_datasets.sh"),
            "--root",
            str(tmp_path),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env_python},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "COD10K" in result.stdout and "absent" in result.stdout  # reported and skipped
    assert (out / "prerl.jsonl").is_file() and not (out / "rl.jsonl").exists()
    with pytest.raises(DatasetError, match="COD10K not found"):
        prepare_stage_manifests(tmp_path, out=out, strict=True)
    # `python utils/prepare_datasets.sh` (the seed README's spelling) works as well.
    seed = subprocess.run(
        [
            sys.executable,
            str(REPO / "utils" / "prepare_datasets.sh"),
            "--root",
            str(tmp_path),
            "--out",
            str(out),
            "--stages",
            "prerl",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert seed.returncode == 0, seed.stderr


def test_manifest_round_trip_for_every_task(root: Path, tmp_path: Path) -> None:
    for ds in (
        load_foreground_dataset("CAMO", root=root, split="test"),
        load_refer_dataset("refcocog", "val", root=root),
        load_reasonseg_dataset("val", root=root),
    ):
        path = tmp_path / "manifests" / "x.jsonl"
        assert write_manifest(ds, path, root) == len(ds)
        back = read_manifest(path, root=root)
        assert back["id"] == ds["id"] and back["query"] == ds["query"]
        for a, b in zip(ds, back):
            np.testing.assert_array_equal(load_mask(a), load_mask(b))


def test_manifest_with_missing_files(root: Path, tmp_path: Path) -> None:
    ds = load_foreground_dataset("HKU-IS", root=root, split="test")
    path = tmp_path / "manifests" / "hku.jsonl"
    write_manifest(ds, path, root)
    lines = path.read_text().splitlines()
    record = json.loads(lines[0])
    record["image"] = "HKU-IS/imgs/gone.png"
    path.write_text("\n".join([json.dumps(record), lines[1], "not json"]) + "\n")
    assert len(read_manifest(path, root=root)) == 1
    with pytest.raises(DatasetError, match="gone.png"):
        read_manifest(path, root=root, strict=True)


def test_eval_jsonl_tool_and_reader(tmp_path: Path) -> None:
    make_cod10k_tree(tmp_path)
    test = tmp_path / "COD10K-v3" / "Test"
    out = tmp_path / "eval" / "cod10k_test.jsonl"
    result = _run(
        "prepare_eval_datasets.py",
        "--image_dir",
        str(test / "Image"),
        "--gt_dir",
        str(test / "GT_Object"),
        "--output_file",
        str(out),
        "--root_dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0] == {
        "image_path": f"COD10K-v3/Test/Image/{sorted(COD10K_TEST_CAM)[0]}.jpg",
        "ground_truth": f"COD10K-v3/Test/GT_Object/{sorted(COD10K_TEST_CAM)[0]}.png",
    }
    assert len(records) == len(COD10K_TEST_CAM)  # NonCAM left out by default
    ds = load_eval_jsonl(out, root_dir=tmp_path)
    assert ds["source"][0] == "cod10k_test" and len(ds) == 2 and load_mask(ds[0]).any()
    everything = tmp_path / "all.jsonl"
    n = write_eval_jsonl(test / "Image", test / "GT_Object", everything, tmp_path, exclude=())
    assert n == 3


def test_eval_jsonl_on_camo_flat_gt(tmp_path: Path) -> None:
    from fixtures_data import CAMO_TEST, make_camo_tree

    make_camo_tree(tmp_path)
    base = tmp_path / "CAMO-V.1.0-CVIU2019"
    report = LoadReport()
    n = write_eval_jsonl(
        base / "Images" / "Test", base / "GT", tmp_path / "camo.jsonl", tmp_path, report=report
    )
    assert n == len(CAMO_TEST)
    assert report.issues == []  # the train split's GT files are not "GT without image"
