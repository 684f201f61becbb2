"""ReasonSeg adapter: every sample once, ignore regions (255), flags, query types."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import REASONSEG_SIZE, make_reasonseg_tree

from seg_r1.data import (
    DatasetError,
    load_ignore,
    load_image,
    load_mask,
    load_reasonseg_dataset,
    rasterize_reasonseg,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reasonseg")
    make_reasonseg_tree(root)
    return root


def _by_stem(ds) -> dict:
    return {e["id"].split("/")[2]: e for e in ds}


def test_counts_and_query_types(root: Path) -> None:
    expected = {"val": 3, "test": 2, "train": 1}
    for split, count in expected.items():
        ds = load_reasonseg_dataset(split, root=root)
        assert len(ds) == count
        assert set(ds["task"]) == {"reasoning"} and set(ds["source"]) == {"ReasonSeg"}
    val = _by_stem(load_reasonseg_dataset("val", root=root))
    assert val["sent_ignore"]["query_type"] == "sentence"
    assert val["short_flag"]["query_type"] == "class"
    assert val["short_flag"]["query"] == "Umbrella"  # kept as written; prompts lower-case it
    assert val["two_texts"]["query"] == "the thing used to cut paper"  # the first text


def test_all_queries(root: Path) -> None:
    ds = load_reasonseg_dataset("val", root=root, queries="all")
    assert len(ds) == 4
    assert "ReasonSeg/val/two_texts/1" in ds["id"]


def test_ignore_region_is_not_target(root: Path) -> None:
    example = _by_stem(load_reasonseg_dataset("val", root=root))["sent_ignore"]
    w, h = REASONSEG_SIZE
    target, ignore = load_mask(example), load_ignore(example)
    assert target.shape == ignore.shape == (h, w)
    expected_ignore = np.zeros((h, w), bool)
    expected_ignore[10:17, 10:17] = True  # polygon 10..16 filled with its outline
    np.testing.assert_array_equal(ignore, expected_ignore)
    expected_target = np.zeros((h, w), bool)
    expected_target[4:31, 4:31] = True
    expected_target &= ~expected_ignore  # the smaller ignore shape is drawn over the target
    np.testing.assert_array_equal(target, expected_target)
    assert load_image(example).size == (w, h)


def test_flag_shapes_are_dropped_and_no_ignore_gives_none(root: Path) -> None:
    val = _by_stem(load_reasonseg_dataset("val", root=root))
    example = val["short_flag"]
    assert load_ignore(example) is None
    assert int(load_mask(example).sum()) == 21 * 21  # only the target, not the flag
    assert [s["label"] for s in json.loads(example["annotation"])["shapes"]] == ["target"]
    assert int(load_mask(val["two_texts"]).sum()) == 8 * 8 + 11 * 7  # two target parts


def test_larger_shapes_are_drawn_first() -> None:
    big = {"label": "ignore", "points": [[0, 0], [9, 0], [9, 9], [0, 9]]}
    small = {"label": "target", "points": [[2, 2], [4, 2], [4, 4], [2, 4]]}
    labels = rasterize_reasonseg([small, big], 10, 10)  # file order does not matter
    assert (labels == 1).sum() == 9 and (labels == 255).sum() == 91


def test_missing_split(root: Path) -> None:
    with pytest.raises(DatasetError, match="ReasonSeg split 'val2' not found"):
        load_reasonseg_dataset("val2", root=root)
