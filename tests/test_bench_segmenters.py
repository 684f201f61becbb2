"""benchmarks/bench_segmenters.py --tiny: every backend runs in its own process and the report
holds the figures, the ratios to ``sam2`` and the sam2 / sam2_hf mask agreement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_segmenters_tiny(tiny_ckpts, tmp_path):
    out = tmp_path / "report.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_segmenters.py"), "--tiny"]
    command += ["--checkpoints", str(tiny_ckpts.root), "--images", "2", "--prompt-sets", "2"]
    command += ["--threads", "1", "--out", str(out)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["frame"] == 256 and report["checkpoints"]["sam2_hf"] == str(tiny_ckpts.sam2_hf)
    for backend in ("sam2", "sam2_hf", "sam3"):
        result = report[backend]
        assert len(result["encoder_seconds_all"]) == 2 and result["threads"] == 1
        assert result["encoder_seconds_per_image"] > 0 and result["peak_rss_gib"] > 0
        assert result["decoder_calls"] == 1 + 2 * 2  # warm-up + 2 images x 2 prompt sets
    assert "vs_sam2" not in report["sam2"]
    for backend in ("sam2_hf", "sam3"):
        ratio = report[backend]["vs_sam2"]["encoder_seconds_per_image"]
        expected = (
            report[backend]["encoder_seconds_per_image"]
            / report["sam2"]["encoder_seconds_per_image"]
        )
        assert abs(ratio - expected) <= 0.001 + 0.001 * expected
    agreement = report["sam2_hf"]["masks_vs_sam2"]
    # 256 x 256 scenes are the tiny model's input size: no resize, the same weights -> the
    # same masks (tests/test_segmenter_hf.py).
    assert agreement == {
        "identical_masks": 4,
        "masks": 4,
        "differing_pixels_mean": 0.0,
        "differing_pixels_max": 0.0,
        "iou_min": 1.0,
    }
    assert "sam2_hf" in proc.stdout and "x)" in proc.stdout  # the table with the ratios


def test_worker_peak_rss_is_its_own():
    """A worker's peak RSS is its own address space's, not the parent's: Linux keeps
    ``ru_maxrss`` across fork + exec, so a worker started after the parent peaked (building
    checkpoints) would otherwise report the parent's figure."""
    import numpy as np

    ballast = np.ones(400 * 2**20, dtype=np.uint8)  # 400 MiB resident in THIS process
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import bench_segmenters as b; "
        "print(b.peak_rss_bytes())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    child = int(proc.stdout.strip())
    assert 1 * 2**20 < child < 200 * 2**20, child
    assert ballast.sum() == ballast.size
