"""Tiny fake copies of every dataset layout Seg-R1 reads, for the data tests.

Each ``make_*_tree(root)`` writes a few generated 32-48 px images in the real folder layout
under ``root`` and returns what the adapters should find. ``make_all_fixture_trees(root)``
builds them all. Imported by the tests as ``from fixtures_data import ...`` (pytest puts
``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import io
import json
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# Real-looking names (COD10K-v3 encodes CAM/NonCAM, super-class and class in the name).
COD10K_TRAIN_CAM = [
    "COD10K-CAM-1-Aquatic-1-BatFish-1",
    "COD10K-CAM-2-Terrestrial-23-Cat-2",
    "COD10K-CAM-3-Flying-53-Bird-3",
]
COD10K_TRAIN_NONCAM = ["COD10K-NonCAM-1-Aquatic-1-Fish-4", "COD10K-NonCAM-5-Other-70-Sky-9"]
COD10K_TEST_CAM = ["COD10K-CAM-1-Aquatic-3-Crab-11", "COD10K-CAM-4-Amphibian-56-Frog-12"]
COD10K_TEST_NONCAM = ["COD10K-NonCAM-2-Terrestrial-40-Tree-13"]
CAMO_TRAIN = ["camourflage_00001", "camourflage_00002", "camourflage_00003"]
CAMO_TEST = ["camourflage_00004", "camourflage_00005"]


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def image_array(name: str, width: int = 40, height: int = 32) -> np.ndarray:
    """A deterministic random RGB image, uint8 (height, width, 3)."""
    return _rng(name).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def mask_array(name: str, width: int = 40, height: int = 32) -> np.ndarray:
    """A deterministic rectangle mask, bool (height, width), never empty."""
    rng = _rng(name + "/mask")
    x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
    x1, y1 = x0 + int(rng.integers(4, width // 2)), y0 + int(rng.integers(4, height // 2))
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def save_image(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def save_mask(path: Path, mask: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path, format="PNG")
    return path


def write_pairs(
    image_dir: Path,
    gt_dir: Path,
    stems: list[str],
    image_ext: str = ".jpg",
    size: tuple[int, int] = (40, 32),
    empty: bool = False,
) -> None:
    """An image and a ``.png`` mask for each stem (``empty``: all-black masks)."""
    w, h = size
    for stem in stems:
        save_image(image_dir / f"{stem}{image_ext}", image_array(stem, w, h))
        mask = np.zeros((h, w), bool) if empty else mask_array(stem, w, h)
        save_mask(gt_dir / f"{stem}.png", mask)


# --------------------------------------------------------------------------- foreground


def make_dis5k_tree(root: Path, folder: str = "DIS-TR") -> dict[str, int]:
    """DIS5K/<DIS-TR|DIS5K-TR>/im + gt, DIS-VD, DIS-TE1..4; returns counts per split."""
    base = root / "DIS5K"
    write_pairs(
        base / folder / "im", base / folder / "gt", [f"1#Accessories#1#Bag#{i}" for i in range(3)]
    )
    write_pairs(base / "DIS-VD" / "im", base / "DIS-VD" / "gt", ["vd_a", "vd_b"])
    for i in range(1, 5):
        write_pairs(base / f"DIS-TE{i}" / "im", base / f"DIS-TE{i}" / "gt", [f"te{i}_a"])
    return {"train": 3, "val": 2, "test": 4}


def make_cod10k_tree(root: Path) -> dict[str, int]:
    """COD10K-v3/{Train,Test}/{Image,GT_Object} with CAM and NonCAM files (+ GT_Edge)."""
    base = root / "COD10K-v3"
    for split, cam, noncam in (
        ("Train", COD10K_TRAIN_CAM, COD10K_TRAIN_NONCAM),
        ("Test", COD10K_TEST_CAM, COD10K_TEST_NONCAM),
    ):
        write_pairs(base / split / "Image", base / split / "GT_Object", cam)
        # NonCAM images come with all-black masks in the release.
        write_pairs(base / split / "Image", base / split / "GT_Object", noncam, empty=True)
        save_mask(base / split / "GT_Edge" / f"{cam[0]}.png", mask_array(cam[0]))
    return {"train": len(COD10K_TRAIN_CAM), "test": len(COD10K_TEST_CAM)}


def make_camo_tree(root: Path) -> dict[str, int]:
    """CAMO-V.1.0-CVIU2019/Images/{Train,Test} + one flat GT folder."""
    base = root / "CAMO-V.1.0-CVIU2019"
    write_pairs(base / "Images" / "Train", base / "GT", CAMO_TRAIN)
    write_pairs(base / "Images" / "Test", base / "GT", CAMO_TEST)
    return {"train": len(CAMO_TRAIN), "test": len(CAMO_TEST)}


def make_duts_tree(root: Path) -> dict[str, int]:
    """DUTS/DUTS-TR/DUTS-TR-{Image,Mask} and DUTS-TE/DUTS-TE-{Image,Mask}.

    One mask has an anti-aliased (grey) border, as real DUTS masks do: it must be kept.
    """
    base = root / "DUTS"
    train = [f"ILSVRC2012_test_{i:08d}" for i in (4, 5, 12)]
    test = [f"ILSVRC2012_test_{i:08d}" for i in (3, 23)]
    write_pairs(base / "DUTS-TR" / "DUTS-TR-Image", base / "DUTS-TR" / "DUTS-TR-Mask", train)
    write_pairs(base / "DUTS-TE" / "DUTS-TE-Image", base / "DUTS-TE" / "DUTS-TE-Mask", test)
    soft = mask_array(train[0]).astype(np.uint8) * 255
    ys, xs = np.nonzero(soft)
    soft[ys.min(), xs.min() : xs.max() + 1] = 128  # a grey top edge
    Image.fromarray(soft, "L").save(base / "DUTS-TR" / "DUTS-TR-Mask" / f"{train[0]}.png")
    return {"train": 3, "test": 2}


def make_dut_omron_tree(root: Path) -> dict[str, int]:
    base = root / "DUT-OMRON"
    write_pairs(base / "DUT-OMRON-image", base / "pixelwiseGT-new-PNG", ["im005", "im010"])
    return {"test": 2}


def make_hkuis_tree(root: Path) -> dict[str, int]:
    """HKU-IS/imgs/*.png + gt/*.png (HKU-IS images are PNG too)."""
    base = root / "HKU-IS"
    write_pairs(base / "imgs", base / "gt", ["0004", "0005"], image_ext=".png")
    return {"test": 2}


def make_ecssd_tree(root: Path) -> dict[str, int]:
    base = root / "ECSSD"
    write_pairs(base / "images", base / "ground_truth_mask", ["0001", "0002", "0003"])
    return {"test": 3}


# --------------------------------------------------------------------------- REFER

#: Expected expressions per (dataset, split) of :func:`make_refer_tree`.
REFER_EXPECTED: dict[str, dict[str, int]] = {
    "refcoco": {"train": 3, "val": 4, "testA": 2, "testB": 1},
    "refcoco+": {"train": 2, "val": 3, "testA": 1, "testB": 2},
    "refcocog": {"train": 2, "val": 3, "test": 3},
}
REFER_IMAGE_SIZE = (48, 40)  # (W, H)


def _coco_annotations(image_ids: list[int]) -> list[dict[str, Any]]:
    """Per image: ann 10*id+0 polygon rectangle, +1 uncompressed RLE, +2 compressed RLE."""
    from pycocotools import mask as mask_utils

    w, h = REFER_IMAGE_SIZE
    anns = []
    for image_id in image_ids:
        # Polygon: the rectangle x in [2, 20), y in [3, 15) (pycocotools' convention).
        anns.append(
            {
                "id": image_id * 10,
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 0,
                "segmentation": [[2, 3, 20, 3, 20, 15, 2, 15]],
                "bbox": [2, 3, 18, 12],
            }
        )
        # Uncompressed RLE (column-major runs): the first 2 columns fully on.
        anns.append(
            {
                "id": image_id * 10 + 1,
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 1,
                "segmentation": {"size": [h, w], "counts": [0, 2 * h, w * h - 2 * h]},
                "bbox": [0, 0, 2, h],
            }
        )
        compressed = np.zeros((h, w), dtype=np.uint8)
        compressed[20:30, 30:44] = 1
        rle = mask_utils.encode(np.asfortranarray(compressed))
        anns.append(
            {
                "id": image_id * 10 + 2,
                "image_id": image_id,
                "category_id": 2,
                "iscrowd": 0,
                "segmentation": {"size": [h, w], "counts": rle["counts"].decode()},
                "bbox": [30, 20, 14, 10],
            }
        )
    return anns


def _ref(ref_id: int, ann_id: int, image_id: int, split: str, sents: list[str]) -> dict[str, Any]:
    return {
        "ref_id": ref_id,
        "ann_id": ann_id,
        "image_id": image_id,
        "split": split,
        "sentences": [
            {"sent": s, "raw": s.capitalize(), "tokens": s.split(), "sent_id": ref_id * 10 + j}
            for j, s in enumerate(sents)
        ],
        "sent_ids": [ref_id * 10 + j for j in range(len(sents))],
        "category_id": 1,
        "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
    }


def make_refer_tree(root: Path) -> dict[str, dict[str, int]]:
    """Refer_Segm/{refcoco,refcoco+,refcocog} + coco_2014/train2014 images.

    Several expressions per ref, refs in several splits, the three COCO segmentation
    encodings. Returns :data:`REFER_EXPECTED`.
    """
    w, h = REFER_IMAGE_SIZE
    image_ids = [1, 2, 3, 4]
    images_dir = root / "Refer_Segm" / "coco_2014" / "train2014"
    images = []
    for image_id in image_ids:
        name = f"COCO_train2014_{image_id:012d}.jpg"
        save_image(images_dir / name, image_array(name, w, h))
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
    instances = {
        "images": images,
        "annotations": _coco_annotations(image_ids),
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    layouts: dict[str, tuple[str, list[dict[str, Any]]]] = {
        "refcoco": (
            "unc",
            [
                _ref(1, 10, 1, "train", ["left cat", "cat on the left"]),
                _ref(2, 11, 1, "train", ["strip"]),
                _ref(3, 20, 2, "val", ["man in red", "red shirt guy", "person left"]),
                _ref(4, 22, 2, "val", ["the dog"]),
                _ref(5, 30, 3, "testA", ["woman", "lady"]),
                _ref(6, 42, 4, "testB", ["blue car"]),
            ],
        ),
        "refcoco+": (
            "unc",
            [
                _ref(1, 10, 1, "train", ["furry thing", "animal"]),
                _ref(2, 20, 2, "val", ["red shirt", "shirt"]),
                _ref(3, 21, 2, "val", ["thin strip"]),
                _ref(4, 30, 3, "testA", ["lady"]),
                _ref(5, 42, 4, "testB", ["vehicle", "blue vehicle"]),
            ],
        ),
        "refcocog": (
            "umd",
            [
                _ref(1, 10, 1, "train", ["a cat sitting on the left", "the cat"]),
                _ref(2, 20, 2, "val", ["a man wearing a red shirt", "the man in red"]),
                _ref(3, 32, 3, "val", ["a dog lying on the right"]),
                _ref(4, 40, 4, "test", ["the car", "a blue car parked", "car"]),
            ],
        ),
    }
    for dataset, (split_by, refs) in layouts.items():
        folder = root / "Refer_Segm" / dataset
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"refs({split_by}).p").write_bytes(pickle.dumps(refs, protocol=2))
        (folder / "instances.json").write_text(json.dumps(instances))
    (root / "Refer_Segm" / "refcocog" / "refs(google).p").write_bytes(
        pickle.dumps(layouts["refcocog"][1][:2], protocol=2)
    )
    return REFER_EXPECTED


# --------------------------------------------------------------------------- ReasonSeg

REASONSEG_SIZE = (48, 40)  # (W, H)


def make_reasonseg_tree(root: Path) -> dict[str, Any]:
    """ReasonSeg/{train,val,test}: sentence and short queries, an ignore region, a flag.

    val/``sent_ignore``: target rectangle x 4..30, y 4..30 with an ignore rectangle
    x 10..16, y 10..16 inside it; val/``short_flag``: short query, a "flag" shape dropped;
    val/``two_texts``: two sentence queries.
    """
    w, h = REASONSEG_SIZE

    def rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
        return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

    samples = {
        "val": {
            "sent_ignore": {
                "text": ["What part of the picture would keep you dry in the rain?"],
                "is_sentence": True,
                "shapes": [
                    {"label": "target", "points": rect(4, 4, 30, 30), "shape_type": "polygon"},
                    {"label": "ignore", "points": rect(10, 10, 16, 16), "shape_type": "polygon"},
                ],
            },
            "short_flag": {
                "text": ["Umbrella"],
                "is_sentence": False,
                "shapes": [
                    {"label": "target", "points": rect(20, 5, 40, 25), "shape_type": "polygon"},
                    {"label": "flag", "points": rect(0, 0, 47, 39), "shape_type": "polygon"},
                ],
            },
            "two_texts": {
                "text": ["the thing used to cut paper", "what would you cut paper with?"],
                "is_sentence": True,
                "shapes": [
                    {"label": "target", "points": rect(1, 1, 8, 8), "shape_type": "polygon"},
                    {"label": "target", "points": rect(30, 30, 40, 36), "shape_type": "polygon"},
                ],
            },
        },
        "test": {
            "t1": {
                "text": ["the animal that can fly"],
                "is_sentence": True,
                "shapes": [{"label": "target", "points": rect(5, 5, 15, 15)}],
            },
            "t2": {
                "text": ["Bird"],
                "is_sentence": False,
                "shapes": [{"label": "target", "points": rect(2, 2, 12, 20)}],
            },
        },
        "train": {
            "tr1": {
                "text": ["something to sit on"],
                "is_sentence": True,
                "shapes": [{"label": "target", "points": rect(3, 3, 20, 20)}],
            }
        },
    }
    for split, items in samples.items():
        folder = root / "ReasonSeg" / split
        for stem, record in items.items():
            save_image(folder / f"{stem}.jpg", image_array(stem, w, h))
            (folder / f"{stem}.json").write_text(json.dumps(record))
    return {"val": 3, "test": 2, "train": 1, "val_all_queries": 4}


# --------------------------------------------------------------------------- SFT

SFT_SOLUTION = "<bbox>[1,2,30,31]</bbox>, <points>[[10,10],[2,30]]</points>, <labels>[1,0]</labels>"


def sft_records(n: int) -> list[dict[str, Any]]:
    return [
        {
            "problem": "Identify and segment all the primary objects in the image.",
            "image": f"images/sft_{i}.jpg",
            "thinking": f"<think>object {i} is in the middle</think>",
            "solution": SFT_SOLUTION,
            **({"system": "You are a helpful segmenter."} if i % 2 == 0 else {}),
        }
        for i in range(n)
    ]


def make_sft_folder(root: Path) -> dict[str, int]:
    """sft/ with data.jsonl (3 records), more.json (2 records) and images/."""
    folder = root / "sft"
    records = sft_records(5)
    for i in range(5):
        save_image(folder / "images" / f"sft_{i}.jpg", image_array(f"sft_{i}"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:3]))
    (folder / "more.json").write_text(json.dumps(records[3:]))
    return {"records": 5}


def make_sft_parquet(root: Path) -> Path:
    """sft_parquet/data/train-00000-of-00001.parquet like the hub's FCoT (embedded images)."""
    import datasets

    rows = sft_records(3)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "thinking": datasets.Value("string"),
            "problem": datasets.Value("string"),
            "solution": datasets.Value("string"),
        }
    )
    encoded = []
    for i, row in enumerate(rows):
        buffer = io.BytesIO()
        Image.fromarray(image_array(f"pq_{i}")).save(buffer, format="PNG")
        encoded.append(
            {
                **{k: row[k] for k in ("thinking", "problem", "solution")},
                "image": {"bytes": buffer.getvalue(), "path": None},
            }
        )
    ds = datasets.Dataset.from_list(encoded, features=features)
    path = root / "sft_parquet" / "data" / "train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(path))
    return path


# --------------------------------------------------------------------------- bad input


def make_bad_foreground_tree(root: Path) -> dict[str, str]:
    """ECSSD layout with one file per problem; returns {kind: offending file name}."""
    images, gts = root / "ECSSD" / "images", root / "ECSSD" / "ground_truth_mask"
    write_pairs(images, gts, ["good1", "good2"])
    save_image(images / "no_gt.jpg", image_array("no_gt"))
    save_mask(gts / "no_image.png", mask_array("no_image"))
    # Unreadable: not an image at all.
    images.joinpath("garbage.jpg").write_bytes(b"this is not a jpeg" * 10)
    save_mask(gts / "garbage.png", mask_array("garbage"))
    # Truncated: a valid JPEG cut in half (header intact, data and end marker missing).
    buffer = io.BytesIO()
    Image.fromarray(image_array("truncated", 64, 64)).save(buffer, format="JPEG")
    images.joinpath("truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    save_mask(gts / "truncated.png", mask_array("truncated", 64, 64))
    # GT of another size than its image.
    save_image(images / "size.jpg", image_array("size"))
    save_mask(gts / "size.png", mask_array("size", 20, 20))
    # Non-binary GT: a grey ramp (e.g. a probability map given as ground truth).
    save_image(images / "grey.jpg", image_array("grey"))
    ramp = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (32, 1))
    Image.fromarray(ramp, "L").save(gts / "grey.png")
    return {
        "missing_gt": "no_gt.jpg",
        "gt_without_image": "no_image.png",
        "unreadable_image": "garbage.jpg",
        "truncated_image": "truncated.jpg",
        "size_mismatch": "size.png",
        "non_binary_gt": "grey.png",
    }


# --------------------------------------------------------------------------- everything


def make_all_fixture_trees(root: Path) -> dict[str, Any]:
    """Every layout above under one ``root`` (a fake ``datasets/``); returns the counts."""
    return {
        "DIS5K": make_dis5k_tree(root),
        "COD10K": make_cod10k_tree(root),
        "CAMO": make_camo_tree(root),
        "DUTS": make_duts_tree(root),
        "DUT-OMRON": make_dut_omron_tree(root),
        "HKU-IS": make_hkuis_tree(root),
        "ECSSD": make_ecssd_tree(root),
        "refer": make_refer_tree(root),
        "ReasonSeg": make_reasonseg_tree(root),
        "sft": make_sft_folder(root),
    }


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """``{relative path: (mtime_ns, sha256)}`` of every file under ``root``."""
    import hashlib

    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
