"""eval/eval_reasoning_segmentation.py on a synthetic ReasonSeg tree (CPU, tiny models)."""

from __future__ import annotations

import json
import shutil

import pytest
from test_eval_support import (
    SCRIPTED_ANSWER,
    common_args,
    load_script,
    read_jsonl,
    scripted_policy_dir,
    synthetic_root,
)

from seg_r1.data import load_ignore, load_reasonseg_dataset
from seg_r1.data.io import decode_rle
from seg_r1.metrics import ciou, giou

#: Samples written by ``synthetic_root``: val 5 (two with an ignore region), test 4.
N = {"test": 4, "val": 5}


@pytest.fixture(scope="module")
def setup(tiny_ckpts, tmp_path_factory):
    policy = scripted_policy_dir(tiny_ckpts, tmp_path_factory)
    root = synthetic_root(tmp_path_factory) / "rs"
    return policy, root, load_script("eval_reasoning_segmentation")


def _run(setup, out, *extra: str) -> tuple[dict, list[dict]]:
    policy, root, script = setup
    argv = ["--data_root", str(root), "--split", "test,val", "--output_file", str(out),
            *common_args(policy), *extra]  # fmt: skip
    assert script.main(argv) == 0
    return json.loads(out.read_text()), read_jsonl(out.with_suffix("") / "predictions.jsonl")


def test_every_sample_once_per_split(setup, tmp_path):
    result, predictions = _run(setup, tmp_path / "rs.json", "--report_cases", "1")
    assert list(result["results"]) == ["test", "val"]
    for split, n in N.items():
        assert result["results"][split]["n"] == n
        records = [p for p in predictions if p["group"] == split]
        assert len({p["id"] for p in records}) == n
        assert result["results"][split]["gIoU"] == giou([p["iou"] for p in records])
        assert result["results"][split]["cIoU"] == ciou(
            [p["intersection"] for p in records], [p["union"] for p in records]
        )
    assert all(p["completion"] == SCRIPTED_ANSWER for p in predictions)
    # The prompt of ReasonSeg: sentence queries keep their text, short ones are class names.
    assert {p["query_type"] for p in predictions} <= {"sentence", "class"}
    assert result["config"]["ignore_mode"] == "background"
    assert (tmp_path / "rs" / "cases_val.png").is_file()
    table = (tmp_path / "rs.md").read_text()
    assert (
        "| val | 5 / 200 |" in table and "INCOMPLETE val: evaluated 5 of the standard 200" in table
    )
    assert result["results"]["val"]["n_expected"] == 200 and result["complete"] is False


def test_ignore_regions_count_as_background_unless_excluded(setup, tmp_path):
    _, root, _ = setup
    _, background = _run(setup, tmp_path / "bg.json", "--report_cases", "0")
    result, excluded = _run(setup, tmp_path / "ex.json", "--ignore_mode", "exclude",
                            "--report_cases", "0")  # fmt: skip
    assert result["config"]["ignore_mode"] == "exclude"
    rows = {r["id"]: r for s in N for r in load_reasonseg_dataset(s, root=root)}
    has_ignore = {i for i, row in rows.items() if load_ignore(row) is not None}
    assert len(has_ignore) == 2
    covering = 0
    for bg, ex in zip(background, excluded):
        assert bg["id"] == ex["id"] and bg["completion"] == ex["completion"]
        assert ex["intersection"] == bg["intersection"]  # ignore pixels are never target
        if bg["id"] in has_ignore:
            # Excluding removes exactly the predicted pixels in the ignore region from U.
            pred = decode_rle(bg["mask_rle"])
            covered = int((pred & load_ignore(rows[bg["id"]])).sum())
            assert bg["union"] - ex["union"] == covered
            covering += covered > 0
        else:
            assert ex["union"] == bg["union"]
    # At least one prediction covers an ignore region, where the union strictly decreases:
    # the test fails if ``exclude`` does nothing.
    assert covering >= 1


def test_samples_without_target_are_kept_and_scored_by_lisas_rule(setup, tmp_path):
    """LISA's protocol keeps a sample with no target polygon: its GT is empty, so the
    scripted (non-empty) prediction scores IoU 0 and adds its area to the union; the
    split counts it (n 6 of 5 + 1) and nothing is reported skipped."""
    policy, root, script = setup
    tree = tmp_path / "rs"
    shutil.copytree(root, tree)
    val = tree / "ReasonSeg" / "val"
    donor = sorted(val.glob("*.jpg"))[0]
    shutil.copy(donor, val / "zz_no_target.jpg")
    (val / "zz_no_target.json").write_text(
        json.dumps({"text": ["the unicorn"], "is_sentence": False, "shapes": []})
    )
    out = tmp_path / "rs.json"
    argv = ["--data_root", str(tree), "--split", "val", "--output_file", str(out),
            "--report_cases", "0", *common_args(policy)]  # fmt: skip
    assert script.main(argv) == 0
    result = json.loads(out.read_text())["results"]["val"]
    assert result["n"] == N["val"] + 1 and result["n_skipped"] == 0
    (record,) = [
        p for p in read_jsonl(out.with_suffix("") / "predictions.jsonl")
        if p["id"].endswith("zz_no_target")
    ]  # fmt: skip
    assert record["gt_area"] == 0 and record["intersection"] == 0
    assert record["union"] == record["pred_area"] > 0 and record["iou"] == 0.0
