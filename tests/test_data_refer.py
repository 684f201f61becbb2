"""RefCOCO / RefCOCO+ / RefCOCOg adapter: every expression, splits, the three COCO encodings."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import REFER_EXPECTED, REFER_IMAGE_SIZE, make_refer_tree

from seg_r1.data import (
    EVAL_SPLITS,
    DatasetError,
    LoadReport,
    load_ignore,
    load_image,
    load_mask,
    load_refer_dataset,
)
from seg_r1.data.refer import load_refs


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refer")
    make_refer_tree(root)
    return root


@pytest.mark.parametrize(
    "dataset,split", [(d, s) for d, splits in REFER_EXPECTED.items() for s in splits]
)
def test_every_expression_is_an_example(root: Path, dataset: str, split: str) -> None:
    ds = load_refer_dataset(dataset, split, root=root)
    assert len(ds) == REFER_EXPECTED[dataset][split]
    assert set(ds["task"]) == {"referring"} and set(ds["query_type"]) == {"expression"}
    assert set(ds["source"]) == {dataset} and set(ds["split"]) == {split}
    assert len(set(ds["id"])) == len(ds)


def test_eval_splits_are_the_standard_ones() -> None:
    assert EVAL_SPLITS == {
        "refcoco": ("val", "testA", "testB"),
        "refcoco+": ("val", "testA", "testB"),
        "refcocog": ("val", "test"),
    }


def test_queries_ids_and_masks(root: Path) -> None:
    ds = load_refer_dataset("refcoco", "val", root=root)
    assert ds["query"] == ["man in red", "red shirt guy", "person left", "the dog"]
    assert ds["id"][0] == "refcoco/val/3/30"
    w, h = REFER_IMAGE_SIZE
    polygon = load_mask(ds[0])  # ann 20: polygon rectangle x 2..19, y 3..14
    expected = np.zeros((h, w), bool)
    expected[3:15, 2:20] = True
    np.testing.assert_array_equal(polygon, expected)
    compressed = load_mask(ds[3])  # ann 22: compressed RLE
    expected = np.zeros((h, w), bool)
    expected[20:30, 30:44] = True
    np.testing.assert_array_equal(compressed, expected)
    assert load_image(ds[0]).size == (w, h)
    assert load_ignore(ds[0]) is None
    annotation = json.loads(ds[3]["annotation"])
    assert (annotation["ann_id"], annotation["ref_id"], annotation["image_id"]) == (22, 4, 2)


def test_uncompressed_rle(root: Path) -> None:
    ds = load_refer_dataset("refcoco+", "val", root=root)
    strip = load_mask(ds[2])  # ann 21: uncompressed RLE, the first two columns
    assert strip[:, :2].all() and not strip[:, 2:].any()


def test_split_by_and_missing_split(root: Path) -> None:
    google = load_refer_dataset("refcocog", "val", root=root, split_by="google")
    assert len(google) == 2
    with pytest.raises(DatasetError, match="available: \\['test', 'train', 'val'\\]"):
        load_refer_dataset("refcocog", "testA", root=root)
    with pytest.raises(ValueError, match="unknown referring dataset"):
        load_refer_dataset("refclef", "val", root=root)


def test_image_root_override_and_missing_images(root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="image folder not found"):
        load_refer_dataset("refcoco", "val", root=root, image_root=tmp_path / "nope")
    (tmp_path / "imgs").mkdir()
    report = LoadReport()
    ds = load_refer_dataset(
        "refcoco", "val", root=root, image_root=tmp_path / "imgs", report=report
    )
    assert len(ds) == 0
    assert report.counts() == {"missing_image": 1}  # one message per image, not per ref
    with pytest.raises(DatasetError, match="COCO_train2014_000000000002.jpg") as info:
        load_refer_dataset("refcoco", "val", root=root, image_root=tmp_path / "imgs", strict=True)
    assert info.value.path.endswith("COCO_train2014_000000000002.jpg")


def test_refs_pickle_with_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 1, "path": Path("x")}]))
    with pytest.raises(DatasetError, match="refusing to load"):
        load_refs(path)
