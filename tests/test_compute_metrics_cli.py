"""eval/compute_metrics.py: file matching, failure reporting by name, JSON and table output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from seg_r1.metrics import SOD_KEYS, SODMetrics
from seg_r1.metrics.folders import evaluate_folders, match_by_stem

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "eval" / "compute_metrics.py"


def _write_pairs(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """GT a..e; predictions: a (smaller, gets resized), b (jpg), c (truncated PNG), d missing,
    plus an extra x. Returns the folders and the readable (pred, gt) arrays by stem."""
    rng = np.random.default_rng(0)
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    readable = {}
    for stem in "abcde":
        gt = np.zeros((30, 41), np.uint8)
        gt[5 : 5 + rng.integers(5, 20), 8 : 8 + rng.integers(5, 25)] = 255
        cv2.imwrite(str(gt_dir / f"{stem}.png"), gt)
        shape = (15, 20) if stem == "a" else (30, 41)
        pred = rng.integers(0, 256, shape, dtype=np.uint8)
        if stem in "ae":
            cv2.imwrite(str(pred_dir / f"{stem}.png"), pred)
            readable[stem] = (pred, gt)
        elif stem == "b":
            cv2.imwrite(str(pred_dir / "b.jpg"), pred)
            readable[stem] = (cv2.imread(str(pred_dir / "b.jpg"), cv2.IMREAD_GRAYSCALE), gt)
        elif stem == "c":
            cv2.imwrite(str(pred_dir / "c.png"), pred)
            data = (pred_dir / "c.png").read_bytes()
            (pred_dir / "c.png").write_bytes(data[: len(data) // 2])  # truncated
    cv2.imwrite(str(pred_dir / "x.png"), np.zeros((30, 41), np.uint8))
    (pred_dir / "notes.txt").write_text("not an image, ignored")
    return pred_dir, gt_dir, readable


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_match_by_stem(tmp_path):
    pred_dir, gt_dir, _ = _write_pairs(tmp_path)
    match = match_by_stem(pred_dir, gt_dir)
    assert [(stem, p.name, g.name) for stem, p, g in match.pairs] == [
        ("a", "a.png", "a.png"),
        ("b", "b.jpg", "b.png"),
        ("c", "c.png", "c.png"),
        ("e", "e.png", "e.png"),
    ]
    assert match.missing == ["d.png"]
    assert match.extra == ["x.png"]
    cv2.imwrite(str(pred_dir / "a.bmp"), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="share the stem 'a'"):
        match_by_stem(pred_dir, gt_dir)


def test_cli_fails_naming_missing_extra_and_unreadable(tmp_path):
    pred_dir, gt_dir, _ = _write_pairs(tmp_path)
    output = tmp_path / "out.json"
    proc = _run("--pred_dir", str(pred_dir), "--gt_dir", str(gt_dir), "--output", str(output))
    assert proc.returncode == 1
    assert "1 missing (GT without prediction): d.png" in proc.stderr
    assert "1 extra (prediction without GT): x.png" in proc.stderr
    assert "1 unreadable: pred/c.png" in proc.stderr
    assert "--allow_missing" in proc.stderr
    assert not output.exists()
    assert "Sα" not in proc.stdout


def test_cli_allow_missing_writes_json_and_table(tmp_path):
    pred_dir, gt_dir, readable = _write_pairs(tmp_path)
    output = tmp_path / "metrics" / "out.json"
    proc = _run(
        "--pred_dir", str(pred_dir), "--gt_dir", str(gt_dir), "--output", str(output),
        "--allow_missing", "--name", "toy",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(output.read_text())
    expected = SODMetrics()
    for stem in sorted(readable):
        expected.update(*readable[stem])  # "a" is resized to its GT inside update
    for key in SOD_KEYS:
        assert report[key] == pytest.approx(expected.result()[key], abs=1e-12), key
    assert report["num_images"] == 3
    assert (report["num_missing"], report["num_extra"], report["num_unreadable"]) == (1, 1, 1)
    assert (report["missing"], report["extra"], report["unreadable"]) == (
        ["d.png"],
        ["x.png"],
        ["pred/c.png"],
    )
    table = proc.stdout.strip().split("\n")
    assert table[0].startswith("| dataset | Sα | Fβw | Fβ(mean) | Eφ(mean) | Eφ(max) | MAE |")
    assert table[2].startswith("| toy | ")
    assert "metrics: 100%" in proc.stderr  # the tqdm bar


def test_workers_give_identical_scores(tmp_path):
    pred_dir, gt_dir, _ = _write_pairs(tmp_path)
    serial = evaluate_folders(pred_dir, gt_dir, num_workers=0, progress=False)
    parallel = evaluate_folders(pred_dir, gt_dir, num_workers=2, progress=False)
    assert serial.metrics.result() == parallel.metrics.result()
    assert serial.unreadable == parallel.unreadable == ["pred/c.png"]
    assert not serial.complete


def test_cli_complete_folder_succeeds_and_empty_fails(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    proc = _run("--pred_dir", str(pred_dir), "--gt_dir", str(gt_dir), "--allow_missing")
    assert proc.returncode == 1
    assert "no readable (prediction, GT) pair" in proc.stderr
    gt = np.zeros((8, 8), np.uint8)
    gt[2:5, 3:7] = 255
    cv2.imwrite(str(gt_dir / "only.png"), gt)
    cv2.imwrite(str(pred_dir / "only.png"), gt)
    proc = _run("--pred_dir", str(pred_dir), "--gt_dir", str(gt_dir))
    assert proc.returncode == 0, proc.stderr
    assert "| pred | 1.000 |" in proc.stdout  # perfect prediction: S = 1
