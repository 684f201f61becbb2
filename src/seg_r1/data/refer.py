"""Referring segmentation: RefCOCO, RefCOCO+ and RefCOCOg in the REFER format.

Layout (relative to ``root``, default ``datasets/``)::

    Refer_Segm/
        refcoco/   refs(unc).p  instances.json
        refcoco+/  refs(unc).p  instances.json
        refcocog/  refs(umd).p  refs(google).p  instances.json
        coco_2014/train2014/COCO_train2014_000000xxxxxx.jpg      (the default image_root)

``refs(<split_by>).p`` is a pickled list of refs ``{"ref_id", "ann_id", "image_id", "split",
"sentences": [{"sent", "sent_id", "raw", "tokens"}], "category_id", "file_name", ...}``;
``instances.json`` is COCO-style ``{"images": [{"id", "file_name", "height", "width"}],
"annotations": [{"id", "image_id", "segmentation", "bbox", "category_id"}], "categories"}``
with polygon or RLE segmentations. The image file is the COCO ``file_name`` of the ref's
image (the ref's own ``file_name`` carries an ``_<ann_id>`` suffix and is not a file).

Protocol (SPEC §7): EVERY expression is an example: one row per (ref, sentence), with
``query`` = the sentence's ``"sent"`` (the tokenised, lower-cased form the field evaluates
with; ``"raw"`` if ``"sent"`` is missing), ``query_type="expression"``, and ``annotation``
holding the COCO segmentation (schema: :mod:`seg_r1.data.io`). Standard splits: refcoco and
refcoco+ ``"unc"`` val/testA/testB (+train), refcocog ``"umd"`` val/test (+train).

The pickle is read with an unpickler that refuses every class or function, so a REFER file
can only yield plain lists, dicts, strings and numbers.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seg_r1.data.io import BadFile, inspect_image
from seg_r1.data.schema import (
    DatasetError,
    LoadReport,
    check_all,
    check_level,
    finish_rows,
    segmentation_row,
)

logger = logging.getLogger(__name__)

REFER_DATASETS: tuple[str, ...] = ("refcoco", "refcoco+", "refcocog")
DEFAULT_SPLIT_BY: dict[str, str] = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
#: The splits the field reports (SPEC §7); ``"train"`` exists too.
EVAL_SPLITS: dict[str, tuple[str, ...]] = {
    "refcoco": ("val", "testA", "testB"),
    "refcoco+": ("val", "testA", "testB"),
    "refcocog": ("val", "test"),
}
_ANNOTATION_FOLDERS = ("Refer_Segm", "refer_seg", ".")
_IMAGE_ROOTS = (
    "Refer_Segm/coco_2014/train2014",
    "coco_2014/train2014",
    "Refer_Segm/images/mscoco/images/train2014",
    "refer_seg/images/mscoco/images/train2014",
)


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain containers only: any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a REFER refs file holds only lists and dicts"
        )


def load_refs(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The list of refs in a REFER ``refs(<split_by>).p`` file (Python 2 pickles included)."""
    with open(path, "rb") as f:
        try:
            # Python 2 pickles: 8-bit strings decoded as UTF-8; bad bytes replaced, not fatal.
            refs = _PlainUnpickler(f, encoding="utf-8", errors="replace").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise DatasetError(f"cannot read REFER refs file ({exc})", path) from exc
    if not isinstance(refs, list):
        raise DatasetError(f"REFER refs file holds a {type(refs).__name__}, not a list", path)
    return refs


def find_refer_dir(dataset: str, root: str | os.PathLike[str] = "datasets") -> Path:
    """The folder with ``dataset``'s refs and instances (``<root>/Refer_Segm/<dataset>``...)."""
    root = Path(root)
    for folder in _ANNOTATION_FOLDERS:
        candidate = root / folder / dataset
        if (candidate / "instances.json").is_file():
            return candidate
    raise DatasetError(
        f"{dataset} annotations not found: expected {root / 'Refer_Segm' / dataset}/"
        "instances.json (see datasets/README.md)",
        root / "Refer_Segm" / dataset,
    )


def default_image_root(root: str | os.PathLike[str] = "datasets") -> Path:
    """COCO train2014 images: the first existing of the usual folders under ``root``."""
    root = Path(root)
    for folder in _IMAGE_ROOTS:
        if (root / folder).is_dir():
            return root / folder
    return root / _IMAGE_ROOTS[0]


def _check_image(path: Path, height: int, width: int, check: str) -> BadFile | None:
    if not path.is_file():
        return BadFile("missing_image", "image file not found")
    if check == "none":
        return None
    try:
        size = inspect_image(path, check)
    except BadFile as bad:
        return bad
    if size != (width, height):
        return BadFile(
            "size_mismatch",
            f"image is {size[0]}x{size[1]} but instances.json says {width}x{height} (W x H)",
        )
    return None


def load_refer_dataset(
    dataset: str = "refcoco",
    split: str = "val",
    root: str | os.PathLike[str] = "datasets",
    image_root: str | os.PathLike[str] | None = None,
    split_by: str | None = None,
    strict: bool = False,
    check: str = "fast",
    num_workers: int | None = None,
    report: LoadReport | None = None,
) -> Any:
    """Every referring expression of one split as a :class:`datasets.Dataset`.

    Args:
        dataset: ``"refcoco"`` | ``"refcoco+"`` | ``"refcocog"``.
        split: a split present in the refs file (``"val"``, ``"testA"``, ``"test"``, ``"train"``).
        root: the ``datasets/`` folder (annotations in ``<root>/Refer_Segm/<dataset>``).
        image_root: folder of the COCO images; default: :func:`default_image_root`.
        split_by: refs file variant, default ``"unc"`` (refcoco/+) or ``"umd"`` (refcocog).
        strict: raise :class:`DatasetError` on the first problem instead of skipping.
        check: ``"none"`` (no image is opened), ``"fast"`` (each image's header and end
            marker; size must match instances.json), ``"full"`` (full decode).

    Returns:
        rows with ``id = "<dataset>/<split>/<ref_id>/<sent_id>"``, ``task="referring"``.
    """
    check_level(check)
    if dataset not in DEFAULT_SPLIT_BY:
        raise ValueError(f"unknown referring dataset {dataset!r}; choose from {REFER_DATASETS}")
    split_by = split_by or DEFAULT_SPLIT_BY[dataset]
    local = LoadReport(name=f"{dataset}({split_by}) {split}", strict=strict)
    folder = find_refer_dir(dataset, root)
    refs_path = folder / f"refs({split_by}).p"
    if not refs_path.is_file():
        raise DatasetError(f"{dataset}: refs file not found: {refs_path}", refs_path)
    image_root = Path(image_root) if image_root is not None else default_image_root(root)
    if not image_root.is_dir():
        raise DatasetError(
            f"{dataset}: image folder not found: {image_root} (pass image_root=)", image_root
        )

    refs = load_refs(refs_path)
    available = sorted({str(r.get("split")) for r in refs})
    refs = [r for r in refs if r.get("split") == split]
    if not refs:
        raise DatasetError(
            f"{dataset}({split_by}) has no refs in split {split!r} (available: {available})",
            refs_path,
        )
    instances_path = folder / "instances.json"
    try:
        instances = json.loads(instances_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {instances_path} ({exc})", instances_path) from exc
    images = {int(img["id"]): img for img in instances.get("images", [])}
    wanted = {int(r["ann_id"]) for r in refs if "ann_id" in r}
    anns = {int(a["id"]): a for a in instances.get("annotations", []) if int(a["id"]) in wanted}
    del instances

    # Images first: one check per image, shared by all its expressions.
    image_ids = sorted({int(r["image_id"]) for r in refs if int(r["image_id"]) in images})
    paths = {i: image_root / images[i]["file_name"] for i in image_ids}

    def check_one(image_id: int) -> tuple[int, BadFile | None]:
        info = images[image_id]
        return image_id, _check_image(
            paths[image_id], int(info["height"]), int(info["width"]), check
        )

    image_problems = dict(check_all(image_ids, check_one, f"checking {local.name}", num_workers))

    rows: list[dict[str, Any]] = []
    reported_images: set[int] = set()
    for ref in refs:
        image_id = int(ref["image_id"])
        ref_id = ref.get("ref_id")
        where = f"{refs_path} ref_id={ref_id}"
        sentences = [s for s in ref.get("sentences", []) if isinstance(s, Mapping)]
        # A skipped ref drops all its expressions: each one is a sample of the protocol.
        n_samples = max(len(sentences), 1)
        if image_id not in images:
            local.skip(
                "missing_image_info",
                where,
                f"image_id {image_id} not in instances.json",
                samples=n_samples,
            )
            continue
        bad = image_problems[image_id]
        if bad is not None:
            if image_id not in reported_images:  # one message per image, skip all its refs
                reported_images.add(image_id)
                local.skip(bad.kind, paths[image_id], bad.message, samples=n_samples)
            else:
                local.drop(bad.kind, paths[image_id], n_samples)
            continue
        ann = anns.get(int(ref.get("ann_id", -1)))
        if ann is None:
            local.skip(
                "missing_annotation",
                where,
                f"ann_id {ref.get('ann_id')} not found",
                samples=n_samples,
            )
            continue
        segmentation = ann.get("segmentation")
        if not segmentation:
            local.skip(
                "empty_segmentation",
                where,
                f"ann_id {ann['id']} has no segmentation",
                samples=n_samples,
            )
            continue
        if not sentences:
            local.skip("no_expression", where, "ref has no sentences")
            continue
        info = images[image_id]
        for index, sentence in enumerate(sentences):
            text = str(sentence.get("sent") or sentence.get("raw") or "").strip()
            sent_id = sentence.get("sent_id", index)
            if not text:
                local.skip("no_expression", f"{where} sent_id={sent_id}", "empty sentence")
                continue
            annotation = {
                "height": int(info["height"]),
                "width": int(info["width"]),
                "segmentation": segmentation,
                "ann_id": int(ann["id"]),
                "ref_id": ref_id,
                "sent_id": sent_id,
                "image_id": image_id,
                "category_id": ann.get("category_id", ref.get("category_id")),
                "bbox": ann.get("bbox"),
            }
            rows.append(
                segmentation_row(
                    id=f"{dataset}/{split}/{ref_id}/{sent_id}",
                    image=paths[image_id],
                    source=dataset,
                    task="referring",
                    split=split,
                    query=text,
                    query_type="expression",
                    annotation=annotation,
                )
            )
    return finish_rows(rows, local, report)
