"""Foreground adapters on their fixture trees: counts, NonCAM exclusion, CAMO split, masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_data import (
    CAMO_TEST,
    CAMO_TRAIN,
    COD10K_TEST_CAM,
    COD10K_TRAIN_CAM,
    make_all_fixture_trees,
    make_dis5k_tree,
    mask_array,
    save_image,
)
from PIL import Image

from seg_r1.data import (
    FOREGROUND_DATASETS,
    SEGMENTATION_COLUMNS,
    DatasetError,
    LoadReport,
    load_foreground_dataset,
    load_ignore,
    load_image,
    load_mask,
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("datasets")
    return root, make_all_fixture_trees(root)


@pytest.mark.parametrize(
    "name,split",
    [
        ("DIS5K", "train"),
        ("DIS5K", "val"),
        ("DIS5K", "test"),
        ("COD10K", "train"),
        ("COD10K", "test"),
        ("CAMO", "train"),
        ("CAMO", "test"),
        ("DUTS", "train"),
        ("DUTS", "test"),
        ("DUT-OMRON", "test"),
        ("HKU-IS", "test"),
        ("ECSSD", "test"),
    ],
)
def test_counts_and_schema(tree: tuple[Path, dict], name: str, split: str) -> None:
    root, expected = tree
    report = LoadReport()
    ds = load_foreground_dataset(name, root=root, split=split, report=report)
    assert len(ds) == expected[name][split]
    assert report.issues == []  # a clean tree gives no skip and no warning
    assert tuple(ds.column_names) == SEGMENTATION_COLUMNS
    assert set(ds["task"]) == {"foreground"}
    assert set(ds["source"]) == {name}
    assert set(ds["query"]) == {""} and set(ds["query_type"]) == {""}
    assert len(set(ds["id"])) == len(ds)
    example = ds[0]
    # The image column points at the original file: no copy, no re-encoding.
    raw = ds.with_format("arrow")["image"].to_pylist()[0]
    assert raw["bytes"] is None and Path(raw["path"]).is_relative_to(root)
    image = load_image(example)
    mask = load_mask(example)
    assert image.mode == "RGB"
    assert mask.dtype == bool and mask.shape == (image.height, image.width)
    assert load_ignore(example) is None


def test_cod10k_excludes_noncam_unless_asked(tree: tuple[Path, dict]) -> None:
    root, _ = tree
    ds = load_foreground_dataset("COD10K", root=root, split="train")
    assert sorted(i.split("/")[-1] for i in ds["id"]) == sorted(COD10K_TRAIN_CAM)
    assert not any("NonCAM" in i for i in ds["id"])
    test = load_foreground_dataset("COD10K", root=root, split="test")
    assert sorted(i.split("/")[-1] for i in test["id"]) == sorted(COD10K_TEST_CAM)
    everything = load_foreground_dataset("COD10K", root=root, split="train", exclude=())
    assert len(everything) == 5  # NonCAM masks are empty: kept with an "empty_gt" warning


def test_camo_flat_gt_split_by_image_folders(tree: tuple[Path, dict]) -> None:
    root, _ = tree
    report = LoadReport()
    train = load_foreground_dataset("CAMO", root=root, split="train", report=report)
    test = load_foreground_dataset("CAMO", root=root, split="test", report=report)
    assert [i.split("/")[-1] for i in train["id"]] == CAMO_TRAIN
    assert [i.split("/")[-1] for i in test["id"]] == CAMO_TEST
    # The other split's GT files in the shared folder are not "GT without image".
    assert report.issues == []
    assert set(train["split"]) == {"train"}


def test_masks_match_the_gt_files(tree: tuple[Path, dict]) -> None:
    root, _ = tree
    ds = load_foreground_dataset("ECSSD", root=root, split="test")
    for example in ds:
        stem = example["id"].split("/")[-1]
        np.testing.assert_array_equal(load_mask(example), mask_array(stem))


def test_soft_mask_border_is_kept_and_binarised(tree: tuple[Path, dict]) -> None:
    root, _ = tree
    ds = load_foreground_dataset("DUTS", root=root, split="train")
    example = next(e for e in ds if e["id"].endswith("00000004"))
    expected = mask_array("ILSVRC2012_test_00000004")
    ys, xs = np.nonzero(expected)
    # The grey top edge is exactly 128: background under the one GT rule (> 128, the toolbox's).
    expected[ys.min(), :] = False
    np.testing.assert_array_equal(load_mask(example), expected)


def test_dis5k_test_joins_the_four_subsets_and_aliases(tmp_path: Path) -> None:
    make_dis5k_tree(tmp_path, folder="DIS5K-TR")  # the seed README's folder name
    assert len(load_foreground_dataset("DIS5K", root=tmp_path, split="train")) == 3
    test = load_foreground_dataset("dis5k", root=tmp_path, split="test")
    assert sorted(i.split("/")[1] for i in test["id"]) == [f"DIS-TE{i}" for i in range(1, 5)]


def test_explicit_folders_override_the_layout(tree: tuple[Path, dict]) -> None:
    root, _ = tree
    base = root / "COD10K-v3" / "Test"
    ds = load_foreground_dataset(
        "COD10K",
        root=root / "elsewhere",
        split="test",
        image_dir=base / "Image",
        gt_dir=base / "GT_Object",
    )
    assert len(ds) == len(COD10K_TEST_CAM)


def test_unknown_name_and_split(tree: tuple[Path, dict]) -> None:
    root, _ = tree
    with pytest.raises(ValueError, match="unknown foreground dataset"):
        load_foreground_dataset("PASCAL-S", root=root)
    with pytest.raises(DatasetError, match="no 'train' split"):
        load_foreground_dataset("ECSSD", root=root, split="train")
    assert "synthetic" in FOREGROUND_DATASETS


def test_load_image_handles_modes_and_exif(tmp_path: Path) -> None:
    rgba = np.zeros((6, 10, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 10
    save_image(tmp_path / "rgba.png", rgba)
    img = load_image({"image": str(tmp_path / "rgba.png")})
    assert img.mode == "RGB" and img.size == (10, 6) and img.getpixel((0, 0)) == (200, 0, 0)
    save_image(tmp_path / "grey.png", np.full((6, 10), 77, np.uint8))
    assert load_image(str(tmp_path / "grey.png")).getpixel((3, 3)) == (77, 77, 77)
    # EXIF orientation 6 (rotate 90° clockwise to display): 10x6 stored -> 6x10 shown.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((6, 10, 3), np.uint8)).save(tmp_path / "rot.jpg", exif=exif)
    assert load_image({"image": {"path": str(tmp_path / "rot.jpg"), "bytes": None}}).size == (6, 10)
