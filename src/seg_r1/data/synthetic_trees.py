"""Synthetic scenes written in each dataset's real layout: a COD10K-style foreground tree, a
REFER-style referring tree (refs pickle + instances.json + COCO image names) and a
ReasonSeg-style reasoning tree (image + JSON polygons), so that every adapter of
:mod:`seg_r1.data` is exercised on them. The scenes are :mod:`seg_r1.data.synthetic`'s.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seg_r1.data.refer import DEFAULT_SPLIT_BY, load_refs
from seg_r1.data.schema import DatasetError
from seg_r1.data.synthetic import FOREGROUND_RADIUS, SHAPES, scene_rng, synthetic_scenes

logger = logging.getLogger(__name__)

#: JPEG quality of the written images: high enough that camouflage edges (a few grey levels)
#: survive.
JPEG_QUALITY = 95


def _save_jpeg(array: np.ndarray, path: Path) -> None:
    # 4:4:4 chroma keeps small coloured objects' edges where the mask says they are.
    Image.fromarray(array).save(path, format="JPEG", quality=JPEG_QUALITY, subsampling=0)


def _save_mask(mask: np.ndarray, path: Path) -> None:
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path, format="PNG")


def _prepare_folder(folder: Path, prefix: str, keep: set[str]) -> None:
    """Create ``folder``; delete only our own stale outputs (``prefix*``) not in ``keep``.

    Refuses to write into a folder holding other files, so user data is never touched.
    """
    folder.mkdir(parents=True, exist_ok=True)
    foreign = [p for p in folder.iterdir() if not p.name.startswith(prefix)]
    if foreign:
        raise DatasetError(
            f"refusing to write synthetic data into {folder}: it holds other files "
            f"(e.g. {foreign[0].name}); choose an empty --out",
            folder,
        )
    for path in folder.iterdir():
        if path.name not in keep:
            path.unlink()


def foreground_split_dirs(root: str | Path, split: str) -> tuple[Path, Path]:
    """``(image folder, mask folder)`` of ``split`` (``"train"`` | ``"test"``) in a synthetic
    foreground tree: ``<root>/<Train|Test>/Image`` and ``.../GT_Object``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    base = Path(root) / split.capitalize()
    return base / "Image", base / "GT_Object"


def write_foreground_dataset(
    out: str | os.PathLike[str],
    n: int,
    seed: int = 0,
    size: int = 256,
    split: str = "train",
    camouflage_ratio: float = 0.5,
    multi_object_ratio: float = 0.15,
    *,
    object_radius: tuple[float, float] = FOREGROUND_RADIUS,
    distractors: int = 0,
    spotlight: bool = False,
) -> list[str]:
    """Write ``n`` foreground scenes COD10K-style; return the image stems written.

    Files: ``<out>/<Train|Test>/Image/SYN-<CAM|SAL>-<index>.jpg`` and
    ``GT_Object/<same>.png`` (mask 0/255). ``split``: ``"train"`` | ``"test"``.
    ``object_radius``, ``distractors`` and ``spotlight``: see :func:`seg_r1.data.synthetic.make_scene`.
    """
    image_dir, gt_dir = foreground_split_dirs(out, split)
    base = image_dir.parent
    _prepare_folder(image_dir, "SYN-", keep=set())  # stale outputs of an earlier run go
    _prepare_folder(gt_dir, "SYN-", keep=set())
    stems: list[str] = []
    scenes = synthetic_scenes(
        n, seed, size, "foreground", split, camouflage_ratio, multi_object_ratio,
        object_radius=object_radius, distractors=distractors, spotlight=spotlight,
    )  # fmt: skip
    for index, scene in enumerate(scenes):
        stem = f"SYN-{'CAM' if scene.camouflaged else 'SAL'}-{index + 1:06d}"
        _save_jpeg(scene.image, image_dir / f"{stem}.jpg")
        _save_mask(scene.foreground, gt_dir / f"{stem}.png")
        stems.append(stem)
    logger.info("wrote %d synthetic foreground scenes to %s", n, base)
    return stems


#: REFER split -> image id block (image_id = block * 1_000_000 + index + 1).
_SPLIT_BLOCKS = {"train": 1, "val": 2, "testA": 3, "testB": 4, "test": 5}


def _split_block(split: str) -> int:
    return _SPLIT_BLOCKS.get(split, 10 + zlib.crc32(split.encode("utf-8")) % 1000)


def _rle(mask: np.ndarray) -> tuple[dict[str, Any], float, list[float]]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    area = float(mask_utils.area(rle))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    return (
        {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
        area,
        bbox,
    )


def write_referring_dataset(
    out: str | os.PathLike[str],
    n: int,
    seed: int = 0,
    size: int = 256,
    split: str = "val",
    dataset: str = "refcoco",
    split_by: str | None = None,
) -> int:
    """Write ``n`` referring scenes REFER-style; return the number of expressions.

    Adds (or replaces) ``split`` in ``<out>/Refer_Segm/<dataset>/refs(<split_by>).p`` and
    ``instances.json`` (other splits already there are kept); images go to
    ``<out>/Refer_Segm/coco_2014/train2014/COCO_train2014_<image_id:012d>.jpg``. Every object
    is a ref with 1-3 sentences; segmentations are compressed RLE (exact).
    """

    split_by = split_by or DEFAULT_SPLIT_BY.get(dataset, "unc")
    ann_dir = Path(out) / "Refer_Segm" / dataset
    image_dir = Path(out) / "Refer_Segm" / "coco_2014" / "train2014"
    ann_dir.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    refs_path, instances_path = ann_dir / f"refs({split_by}).p", ann_dir / "instances.json"
    block = _split_block(split)

    refs: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    if refs_path.is_file() and instances_path.is_file():  # keep the other splits
        old = json.loads(instances_path.read_text(encoding="utf-8"))
        if any(int(i["id"]) < 1_000_000 for i in old.get("images", [])):
            # Real COCO image ids are below 1e6, ours above: never rewrite real annotations.
            raise DatasetError(
                f"refusing to modify {instances_path}: it holds real (non-synthetic) "
                "annotations; choose another --out",
                instances_path,
            )
        refs = [r for r in load_refs(refs_path) if r.get("split") != split]
        images = [i for i in old["images"] if i["id"] // 1_000_000 != block]
        annotations = [a for a in old["annotations"] if a["image_id"] // 1_000_000 != block]
    prefix = f"COCO_train2014_{block:06d}"
    for stale in image_dir.glob(f"{prefix}*.jpg"):
        stale.unlink()  # our own images of this split from an earlier run

    categories = [{"id": i + 1, "name": s, "supercategory": "shape"} for i, s in enumerate(SHAPES)]
    n_sentences = 0
    for index, scene in enumerate(synthetic_scenes(n, seed, size, "referring", split)):
        image_id = block * 1_000_000 + index + 1
        file_name = f"COCO_train2014_{image_id:012d}.jpg"
        _save_jpeg(scene.image, image_dir / file_name)
        images.append({"id": image_id, "file_name": file_name, "height": size, "width": size})
        for k, (obj, exprs) in enumerate(zip(scene.objects, scene.expressions)):
            ann_id = image_id * 10 + k
            segmentation, area, bbox = _rle(obj.mask)
            category_id = SHAPES.index(obj.shape) + 1
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": category_id,
                    "segmentation": segmentation,
                    "area": area,
                    "bbox": bbox,
                    "iscrowd": 0,
                }
            )
            sentences = [
                {"sent": e, "raw": e, "tokens": e.split(), "sent_id": ann_id * 10 + j}
                for j, e in enumerate(exprs)
            ]
            n_sentences += len(sentences)
            refs.append(
                {
                    "ref_id": ann_id,
                    "ann_id": ann_id,
                    "image_id": image_id,
                    "split": split,
                    "sentences": sentences,
                    "sent_ids": [s["sent_id"] for s in sentences],
                    "category_id": category_id,
                    "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
                }
            )
    refs.sort(key=lambda r: r["ref_id"])
    images.sort(key=lambda i: i["id"])
    annotations.sort(key=lambda a: a["id"])
    refs_path.write_bytes(pickle.dumps(refs, protocol=2))
    instances = {"images": images, "annotations": annotations, "categories": categories}
    instances_path.write_text(json.dumps(instances, sort_keys=True, separators=(",", ":")))
    logger.info("wrote %d synthetic %s %s images (%d expressions)", n, dataset, split, n_sentences)
    return n_sentences


def write_reasoning_dataset(
    out: str | os.PathLike[str],
    n: int,
    seed: int = 0,
    size: int = 256,
    split: str = "val",
) -> list[str]:
    """Write ``n`` ReasonSeg-style samples to ``<out>/ReasonSeg/<split>/``; return the stems.

    One target object per image; ``is_sentence`` alternates with the scene's draw (sentence
    query vs a short "<colour> <shape>" query); about a third of the samples also mark
    another object as an ``"ignore"`` region (label 255).
    """
    folder = Path(out) / "ReasonSeg" / split
    _prepare_folder(folder, "SYN-", set())
    stems: list[str] = []
    for index, scene in enumerate(synthetic_scenes(n, seed, size, "referring", split)):
        rng = scene_rng(seed, split + "/reasoning", index)
        target = int(rng.integers(len(scene.objects)))
        obj = scene.objects[target]
        is_sentence = bool(rng.random() < 0.5)
        phrase = scene.descriptions[target].removeprefix("the ")
        text = (
            f"Which object in this picture is the {phrase}? Segment it."
            if is_sentence
            else f"{obj.colour} {obj.shape}"
        )
        shapes = [{"label": "target", "points": obj.polygon.tolist(), "shape_type": "polygon"}]
        others = [i for i in range(len(scene.objects)) if i != target]
        if others and rng.random() < 0.35:
            other = scene.objects[others[int(rng.integers(len(others)))]]
            shapes.append(
                {"label": "ignore", "points": other.polygon.tolist(), "shape_type": "polygon"}
            )
        stem = f"SYN-{index + 1:06d}"
        _save_jpeg(scene.image, folder / f"{stem}.jpg")
        record = {"text": [text], "is_sentence": is_sentence, "shapes": shapes}
        (folder / f"{stem}.json").write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
        stems.append(stem)
    logger.info("wrote %d synthetic ReasonSeg %s samples to %s", n, split, folder)
    return stems
