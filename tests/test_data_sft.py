"""SFT loader: FCoT schema from a JSON/JSONL folder and from parquet."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_data import SFT_SOLUTION, make_sft_folder, make_sft_parquet

from seg_r1.data import DatasetError, LoadReport, load_image, load_sft_dataset


def test_folder_of_json_and_jsonl(tmp_path: Path) -> None:
    make_sft_folder(tmp_path)
    ds = load_sft_dataset(tmp_path / "sft")
    assert ds.column_names == ["id", "problem", "image", "thinking", "solution", "system"]
    assert len(ds) == 5
    assert ds["id"][:3] == ["data/0", "data/1", "data/2"]
    assert ds["system"] == [
        "You are a helpful segmenter.",
        "",
        "You are a helpful segmenter.",
        "",
        "You are a helpful segmenter.",
    ]
    assert set(ds["solution"]) == {SFT_SOLUTION}
    raw = ds.with_format("arrow")["image"].to_pylist()[0]
    assert raw["bytes"] is None and raw["path"].endswith("images/sft_0.jpg")
    assert load_image(ds[0]).size == (40, 32)
    one = load_sft_dataset(tmp_path / "sft" / "more.json")
    assert len(one) == 2


def test_parquet_like_the_hub(tmp_path: Path) -> None:
    path = make_sft_parquet(tmp_path)
    for source in (path, tmp_path / "sft_parquet"):
        ds = load_sft_dataset(source)
        assert len(ds) == 3
        assert ds.column_names == ["id", "problem", "image", "thinking", "solution", "system"]
        assert set(ds["system"]) == {""}
        assert load_image(ds[1]).size == (40, 32)


def test_bad_records_are_skipped(tmp_path: Path) -> None:
    make_sft_folder(tmp_path)
    folder = tmp_path / "sft"
    (folder / "images" / "sft_1.jpg").unlink()
    (folder / "broken.jsonl").write_text('{"problem": "p", "image": "images/sft_0.jpg"}\n')
    report = LoadReport()
    ds = load_sft_dataset(folder, report=report)
    assert len(ds) == 4
    assert report.counts() == {"missing_image": 1, "missing_field": 1}
    with pytest.raises(DatasetError, match="broken.jsonl record 0"):
        load_sft_dataset(folder, strict=True)
    with pytest.raises(DatasetError, match="not found"):
        load_sft_dataset(tmp_path / "absent")
