"""Reasoning segmentation: ReasonSeg (image + LabelMe-style JSON with polygons).

Layout: ``<root>/ReasonSeg/{train,val,test}/<name>.jpg`` + ``<name>.json`` (also
``<root>/reason_seg/ReasonSeg/<split>``), the JSON being::

    {"text": ["query", ...], "is_sentence": true,
     "shapes": [{"label": "target", "points": [[x, y], ...], "shape_type": "polygon"}, ...]}

Labels: a label containing ``"ignore"`` marks a region ignored in evaluation (value 255 of
the label map), ``"flag"`` shapes are deprecated annotations and dropped, anything else is
target. Shapes are rasterised largest first (see :func:`seg_r1.data.io.rasterize_reasonseg`).
JSON files that are not UTF-8 are read as cp1252 (some ReasonSeg files are).

Protocol (SPEC §7): every sample exactly once: one row per image, ``query`` = the first
text (``queries="all"`` gives one row per text instead, ids ``.../<name>/<k>``).
``query_type`` = ``"sentence"`` when ``is_sentence`` is true, else ``"class"`` (a short
noun phrase; the prompt lower-cases it). ``annotation`` holds height, width, the JSON path
and the shapes, so the masks need no second read of the JSON.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from seg_r1.data.io import BadFile, inspect_image, is_ignore_label
from seg_r1.data.schema import (
    IMAGE_EXTENSIONS,
    DatasetError,
    LoadReport,
    check_all,
    check_level,
    finish_rows,
    list_files,
    segmentation_row,
)

logger = logging.getLogger(__name__)

REASONSEG_SPLITS: tuple[str, ...] = ("train", "val", "test")
_FOLDERS = ("ReasonSeg", "reason_seg/ReasonSeg")


def find_reasonseg_dir(split: str, root: str | os.PathLike[str] = "datasets") -> Path:
    """``<root>/ReasonSeg/<split>`` (or the LISA-style ``reason_seg/ReasonSeg/<split>``)."""
    root = Path(root)
    for folder in _FOLDERS:
        if (root / folder / split).is_dir():
            return root / folder / split
    raise DatasetError(
        f"ReasonSeg split {split!r} not found: no folder {root / 'ReasonSeg' / split} "
        "(see datasets/README.md)",
        root / "ReasonSeg" / split,
    )


def read_reasonseg_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse one ReasonSeg annotation (UTF-8, falling back to cp1252). Raises ``BadFile``."""
    raw = Path(path).read_bytes()
    try:
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            data = json.loads(raw.decode("cp1252"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadFile("bad_json", f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BadFile("bad_json", "JSON is not an object")
    return data


def _queries(data: dict[str, Any]) -> list[str]:
    text = data.get("text", [])
    if isinstance(text, str):
        text = [text]
    return [str(t).strip() for t in text if str(t).strip()]


def _shapes(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Usable shapes: polygons with >= 3 vertices, ``flag`` shapes dropped."""
    shapes = []
    for shape in data.get("shapes") or []:
        if not isinstance(shape, dict):
            continue
        label = str(shape.get("label", ""))
        points = shape.get("points") or []
        if label.lower() == "flag" or len(points) < 3:
            continue
        shapes.append({"label": label, "points": [[float(x), float(y)] for x, y in points]})
    return shapes


def load_reasonseg_dataset(
    split: str = "val",
    root: str | os.PathLike[str] = "datasets",
    queries: str = "first",
    strict: bool = False,
    check: str = "fast",
    num_workers: int | None = None,
    report: LoadReport | None = None,
    empty_targets: str = "keep",
) -> Any:
    """One ReasonSeg split as a :class:`datasets.Dataset` (schema: :mod:`seg_r1.data.io`).

    Args:
        split: ``"train"`` | ``"val"`` | ``"test"`` (any sub-folder of ``ReasonSeg/``).
        root: the ``datasets/`` folder.
        queries: ``"first"`` (one row per sample, the standard protocol) or ``"all"``.
        strict: raise :class:`DatasetError` on the first problem instead of skipping.
        check: ``"none"`` | ``"fast"`` | ``"full"``; the image header is always read because
            the polygons need the image size.
        empty_targets: samples with no target polygon (empty ``shapes``, or only ignore/flag
            shapes): ``"keep"`` (default; LISA's protocol evaluates them, an empty prediction
            scoring IoU 1.0 and any other 0.0; each is warned about as ``empty_target``) or
            ``"skip"`` (training: a box answer cannot be right on them).

    Skipped (logged with the file name): JSON without image, image without JSON, unreadable
    image or JSON, no query text, and with ``empty_targets="skip"`` no target polygon.
    """
    check_level(check)
    if queries not in ("first", "all"):
        raise ValueError(f"queries must be 'first' or 'all', got {queries!r}")
    if empty_targets not in ("keep", "skip"):
        raise ValueError(f"empty_targets must be 'keep' or 'skip', got {empty_targets!r}")
    local = LoadReport(name=f"ReasonSeg {split}", strict=strict)
    folder = find_reasonseg_dir(split, root)
    jsons = list_files(folder, (".json",))
    images: dict[str, Path] = {}
    for image in list_files(folder, IMAGE_EXTENSIONS):
        images.setdefault(image.stem, image)
    json_stems = {j.stem for j in jsons}
    for stem, image in images.items():
        if stem not in json_stems:
            local.skip("missing_annotation", image, f"no annotation {stem}.json")
    pairs = []
    for path in jsons:
        image = images.get(path.stem)
        if image is None:
            local.skip("missing_image", path, f"no image {path.stem}.jpg next to it")
        else:
            pairs.append((path, image))

    def read(pair: tuple[Path, Path]) -> tuple[Path, Path, Any]:
        json_path, image = pair
        try:
            size = inspect_image(image, check)
            return json_path, image, (size, read_reasonseg_json(json_path))
        except BadFile as bad:
            return json_path, image, bad

    results = check_all(pairs, read, f"reading {local.name}", num_workers)

    rows: list[dict[str, Any]] = []
    for json_path, image, result in results:
        if isinstance(result, BadFile):
            local.skip(
                result.kind, json_path if result.kind == "bad_json" else image, result.message
            )
            continue
        (width, height), data = result
        texts = _queries(data)
        if not texts:
            local.skip("no_query", json_path, "no query text ('text' is empty)")
            continue
        try:
            shapes = _shapes(data)
        except (TypeError, ValueError) as exc:
            local.skip("bad_json", json_path, f"malformed 'shapes' ({exc})")
            continue
        if not any(not is_ignore_label(s["label"]) for s in shapes):
            if empty_targets == "skip":
                local.skip("empty_polygons", json_path, "no target polygon (empty 'shapes')")
                continue
            local.warn("empty_target", json_path, "no target polygon: kept, scored by LISA's rule")
        query_type = "sentence" if bool(data.get("is_sentence", False)) else "class"
        annotation = {
            "height": height,
            "width": width,
            "json_path": str(json_path),
            "shapes": shapes,
        }
        chosen = texts[:1] if queries == "first" else texts
        for k, text in enumerate(chosen):
            rows.append(
                segmentation_row(
                    id=f"ReasonSeg/{split}/{json_path.stem}"
                    + ("" if queries == "first" else f"/{k}"),
                    image=image,
                    source="ReasonSeg",
                    task="reasoning",
                    split=split,
                    query=text,
                    query_type=query_type,
                    annotation=annotation,
                )
            )
    return finish_rows(rows, local, report)
