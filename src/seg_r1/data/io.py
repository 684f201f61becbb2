"""Reading one example: the shared schema, image/mask decoding, file checks and skip reports.

Every segmentation dataset built by :mod:`seg_r1.data` has the same columns
(:data:`SEGMENTATION_FEATURES`), so datasets of different tasks can be concatenated:

===============  ==================  ===========================================================
column           feature             meaning
===============  ==================  ===========================================================
``id``           string              unique within the dataset, e.g. ``"COD10K/train/<stem>"``
``image``        ``Image()``         the ORIGINAL image file, stored by path (never re-encoded)
``source``       string              ``"COD10K"``, ``"CAMO"``, ``"refcoco"``, ``"ReasonSeg"``...
``task``         string              ``"foreground"`` | ``"referring"`` | ``"reasoning"``
``query``        string              the text query (``""`` for foreground)
``query_type``   string              ``""`` | ``"expression"`` | ``"sentence"`` | ``"class"``
``split``        string              the split the example was read from (``"train"``, ``"val"``...)
``mask``         ``Image()`` or None foreground only: the ground-truth mask FILE (by path)
``annotation``   string (JSON)       referring / reasoning only (``""`` for foreground), see below
===============  ==================  ===========================================================

``annotation`` JSON:

* referring: ``{"height", "width", "segmentation", "ann_id", "ref_id", "sent_id", "image_id",
  "category_id", "bbox"}`` where ``segmentation`` is the COCO annotation's segmentation
  (polygon list, uncompressed RLE or compressed RLE) and ``bbox`` is COCO ``[x, y, w, h]``;
* reasoning: ``{"height", "width", "json_path", "shapes": [{"label", "points"}, ...]}`` with
  the ReasonSeg polygons in absolute pixel coordinates (``"flag"`` shapes already dropped).

Masks are read ONLY through :func:`load_mask` / :func:`load_ignore`, images through
:func:`load_image`. Conventions: masks are ``np.ndarray`` of dtype ``bool`` and shape
``(H, W)`` in the pixel grid of the image returned by :func:`load_image` (after EXIF
orientation); foreground ground truth is the GT file converted to 8-bit greyscale (``"1"``-mode
files as 0/255) and binarised by :func:`seg_r1.metrics.binarize_gt`, the package's one rule:
``grey > 128`` (the toolbox's), or ``> 0.5`` for a file on the 0/1 scale.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from seg_r1.metrics import binarize_gt

logger = logging.getLogger(__name__)

Task = Literal["foreground", "referring", "reasoning"]
Check = Literal["none", "fast", "full"]
CHECK_LEVELS: tuple[str, ...] = ("none", "fast", "full")

#: Image file suffixes the adapters pick up (lower-case; the match is case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Ground-truth suffixes tried in this order when pairing (the field's convention is PNG).
MASK_EXTENSIONS: tuple[str, ...] = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")

#: Grey levels strictly between these bounds count as "soft" in a ground-truth mask.
#: Anti-aliased borders and JPEG ringing stay within a few levels of 0/255, so the band
#: (16, 239) only catches genuinely grey pixels.
SOFT_LOW, SOFT_HIGH = 16, 239
#: A GT with more than this fraction of soft pixels is not a binary mask (a photo or a
#: probability map was given as ground truth) and is skipped. Real anti-aliased masks
#: (DUTS, HKU-IS) have soft pixels only along the boundary: well under 10 % of the image.
MAX_SOFT_FRACTION = 0.10

#: EXIF orientations that swap width and height (transpose / rotate 90 / 270 / transverse).
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION_TAG = 0x0112
#: How many individual skip warnings one load logs before only counting.
_MAX_WARNINGS_LOGGED = 20


def segmentation_features() -> Any:
    """The :class:`datasets.Features` shared by every segmentation dataset (see module doc)."""
    import datasets

    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "source": datasets.Value("string"),
            "task": datasets.Value("string"),
            "query": datasets.Value("string"),
            "query_type": datasets.Value("string"),
            "split": datasets.Value("string"),
            "mask": datasets.Image(),
            "annotation": datasets.Value("string"),
        }
    )


SEGMENTATION_COLUMNS: tuple[str, ...] = (
    "id",
    "image",
    "source",
    "task",
    "query",
    "query_type",
    "split",
    "mask",
    "annotation",
)


# --------------------------------------------------------------------------- errors / reports


class DatasetError(RuntimeError):
    """A dataset cannot be read as asked. ``path`` names the offending file or folder."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


@dataclass(frozen=True)
class Issue:
    """One problem found while reading a dataset.

    ``kind`` is a stable short name (``"missing_gt"``, ``"truncated_image"``...), ``path`` the
    file concerned, ``skipped`` whether the example was dropped (``False``: kept, warned),
    ``samples`` how many samples it dropped (a missing COCO image drops every referring
    expression of it).
    """

    kind: str
    path: str
    message: str
    skipped: bool = True
    samples: int = 1


@dataclass
class LoadReport:
    """Collects what a loader kept, skipped and warned about, for logs and CLIs.

    With ``strict=True`` the first skip raises :class:`DatasetError` instead of being recorded.
    Pass one report to a loader (``report=``) to read its counts afterwards.
    """

    name: str = ""
    strict: bool = False
    kept: int = 0
    issues: list[Issue] = field(default_factory=list)

    def skip(self, kind: str, path: str | os.PathLike[str], message: str, samples: int = 1) -> None:
        """Record a skipped example -- ``samples`` samples dropped for one reason (raise
        :class:`DatasetError` under ``strict``)."""
        if self.strict:
            raise DatasetError(
                f"{self.name}: {message}: {path} (strict mode; fix or remove the file)", path
            )
        self.issues.append(Issue(kind, str(path), message, skipped=True, samples=samples))
        self._log(f"skipping {path}: {message}")

    def drop(self, kind: str, path: str | os.PathLike[str], samples: int) -> None:
        """Count ``samples`` more samples dropped for the issue already :meth:`skip`-ped for
        ``path`` (reported once; e.g. the other expressions of a missing image)."""
        for index in range(len(self.issues) - 1, -1, -1):
            issue = self.issues[index]
            if issue.kind == kind and issue.path == str(path) and issue.skipped:
                self.issues[index] = Issue(
                    issue.kind, issue.path, issue.message, True, issue.samples + samples
                )
                return
        raise ValueError(f"drop({kind!r}, {path}): no such skipped issue to add to")

    def warn(self, kind: str, path: str | os.PathLike[str], message: str) -> None:
        """Record a problem that does not drop the example (never raises)."""
        self.issues.append(Issue(kind, str(path), message, skipped=False))
        self._log(f"{path}: {message}")

    def _log(self, text: str) -> None:
        # The first problems are logged one by one; beyond that only the summary counts them
        # (a dataset with thousands of identical problems should not flood the log).
        if len(self.issues) <= _MAX_WARNINGS_LOGGED:
            logger.warning("%s: %s", self.name, text)
        elif len(self.issues) == _MAX_WARNINGS_LOGGED + 1:
            logger.warning("%s: further problems are only counted in the summary", self.name)

    @property
    def num_skipped(self) -> int:
        """Skipped examples (issues); :attr:`skipped_samples` counts the samples they held."""
        return sum(issue.skipped for issue in self.issues)

    @property
    def skipped_samples(self) -> dict[str, int]:
        """``{kind: samples dropped}`` (what an evaluation reports as ``n_skipped``)."""
        out: Counter[str] = Counter()
        for issue in self.issues:
            if issue.skipped:
                out[issue.kind] += issue.samples
        return dict(out)

    def counts(self, skipped: bool = True) -> dict[str, int]:
        """``{kind: count}`` of skipped (or, with ``skipped=False``, warned-only) issues."""
        return dict(Counter(i.kind for i in self.issues if i.skipped == skipped))

    def summary(self) -> str:
        """One line: ``"<name>: kept N, skipped M (kind: k, ...)"``."""
        text = f"{self.name}: kept {self.kept}"
        if self.num_skipped:
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts().items()))
            text += f", skipped {self.num_skipped} ({detail})"
        warned = self.counts(skipped=False)
        if warned:
            text += ", warnings (" + ", ".join(f"{k}: {v}" for k, v in sorted(warned.items())) + ")"
        return text

    def log_summary(self) -> None:
        logger.log(logging.WARNING if self.issues else logging.INFO, "%s", self.summary())

    def merge(self, other: LoadReport) -> None:
        self.kept += other.kept
        self.issues.extend(other.issues)


def finish_report(local: LoadReport, report: LoadReport | None) -> None:
    """Log ``local``'s summary and fold it into the caller's ``report``."""
    local.log_summary()
    if report is not None:
        report.merge(local)


def check_level(check: str) -> str:
    if check not in CHECK_LEVELS:
        raise ValueError(f"check must be one of {CHECK_LEVELS}, got {check!r}")
    return check


# --------------------------------------------------------------------------- file checks


class BadFile(Exception):
    """Internal: a file failed a check. ``kind`` is the :class:`Issue` kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _tail(path: Path, nbytes: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - nbytes))
        return f.read()


def _looks_complete(path: Path, fmt: str | None) -> bool | None:
    """Cheap truncation test from the file's end marker; ``None`` when the format has none."""
    if fmt == "JPEG":
        # EOI marker. Some cameras append data after it, hence the 4 KiB window; a miss is
        # confirmed by a full decode before the file is called truncated.
        return b"\xff\xd9" in _tail(path, 4096)
    if fmt == "PNG":
        return b"IEND" in _tail(path, 1024)
    return None


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` after EXIF orientation, read from the header only."""
    w, h = img.size
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION_TAG)
    except Exception:  # a broken EXIF block is not worth rejecting the image for
        orientation = None
    return (h, w) if orientation in _SWAPPING_ORIENTATIONS else (w, h)


def inspect_image(path: str | os.PathLike[str], check: str = "fast") -> tuple[int, int]:
    """Check that ``path`` is a readable, complete image; return its oriented ``(W, H)``.

    ``check="fast"`` reads the header and the end-of-file marker (JPEG/PNG; other formats are
    decoded), falling back to a full decode when the marker is missing; ``"full"`` always
    decodes; ``"none"`` reads the header only. Raises :class:`BadFile` on failure.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            size = oriented_size(img)
            fmt = img.format
            if check == "none":
                return size
            complete = _looks_complete(path, fmt)
            if check == "full" or not complete:
                img.load()
    except UnidentifiedImageError as exc:
        raise BadFile("unreadable_image", "not a readable image") from exc
    except OSError as exc:
        if "truncated" in str(exc).lower():
            raise BadFile("truncated_image", "truncated image") from exc
        raise BadFile("unreadable_image", f"unreadable image ({exc})") from exc
    except (ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadFile("unreadable_image", f"unreadable image ({exc})") from exc
    return size


def _mask_grey(img: Image.Image) -> np.ndarray:
    """A mask file as an 8-bit-comparable array (alpha dropped, colour converted to grey)."""
    if img.mode == "1":
        return np.asarray(img, dtype=np.uint8) * 255
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return np.asarray(img)
    return np.asarray(img.convert("L"))


def mask_from_image(img: Image.Image) -> np.ndarray:
    """Binary ``bool (H, W)`` mask of a decoded ground-truth image: EXIF orientation applied,
    then :func:`seg_r1.metrics.binarize_gt` (``grey > 128``; 0/1-scale files ``> 0.5``)."""
    return binarize_gt(_mask_grey(ImageOps.exif_transpose(img)))


def read_mask_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Binary mask from a ground-truth image file (:func:`mask_from_image`)."""
    with Image.open(path) as img:
        return mask_from_image(img)


def inspect_mask(
    path: str | os.PathLike[str], image_size: tuple[int, int] | None, check: str = "fast"
) -> bool:
    """Check a ground-truth mask file; return whether it is empty (no foreground pixel under
    :func:`seg_r1.metrics.binarize_gt`).

    Raises :class:`BadFile` when it cannot be decoded, its size differs from ``image_size``
    (``(W, H)``, oriented) or it is not a mask (more than :data:`MAX_SOFT_FRACTION` grey
    pixels). With ``check="none"`` nothing is read and ``False`` is returned.
    """
    if check == "none":
        return False
    path = Path(path)
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            grey = _mask_grey(img)
    except UnidentifiedImageError as exc:
        raise BadFile("unreadable_gt", "not a readable mask image") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        kind = "unreadable_gt"
        raise BadFile(kind, f"unreadable mask ({exc})") from exc
    h, w = grey.shape[:2]
    if image_size is not None and (w, h) != tuple(image_size):
        raise BadFile(
            "size_mismatch",
            f"mask is {w}x{h} but its image is {image_size[0]}x{image_size[1]} (W x H)",
        )
    if grey.dtype == np.uint8:
        soft = np.count_nonzero((grey > SOFT_LOW) & (grey < SOFT_HIGH)) / max(grey.size, 1)
        if soft > MAX_SOFT_FRACTION:
            raise BadFile(
                "non_binary_gt",
                f"mask is not binary ({soft:.0%} of pixels are grey; expected 0/255 values)",
            )
    return not bool(np.any(binarize_gt(grey)))


# --------------------------------------------------------------------------- images


@contextmanager
def _opened(value: Any) -> Iterator[Image.Image]:
    """A PIL image from a decoded image, a ``{"path", "bytes"}`` dict or a path.

    Files opened here are closed on exit; a decoded image passed in is left as is.
    """
    if isinstance(value, Image.Image):
        yield value
        return
    if isinstance(value, Mapping):
        if value.get("bytes"):
            source: Any = io.BytesIO(value["bytes"])
        elif value.get("path"):
            source = value["path"]
        else:
            raise ValueError("image dict has neither 'bytes' nor 'path'")
    elif isinstance(value, (str, os.PathLike)):
        source = value
    else:
        raise TypeError(f"cannot read an image from {type(value).__name__}")
    with Image.open(source) as img:
        yield img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image as RGB, after EXIF orientation.

    Grey -> replicated channels; RGBA/LA -> alpha dropped (not composited); palette with
    transparency -> via RGBA; 16-bit / float grey -> scaled to 0..255 by the type's range.
    """
    img = ImageOps.exif_transpose(img)
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if img.mode == "F" else 65535.0
        grey = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def load_image(example: Mapping[str, Any] | Any) -> Image.Image:
    """The example's image as an RGB :class:`PIL.Image.Image` (EXIF orientation applied).

    ``example`` is a dataset row (its ``image`` is used) or directly a PIL image, a
    ``{"path", "bytes"}`` dict or a path.
    """
    value = example["image"] if isinstance(example, Mapping) and "image" in example else example
    with _opened(value) as img:
        rgb = to_rgb(img)
        rgb.load()
    return rgb


# --------------------------------------------------------------------------- masks


def decode_coco_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygons, uncompressed or compressed RLE) as a bool ``(H, W)``.

    Polygons with fewer than 3 vertices are ignored; several parts are united.
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        rles = mask_utils.frPyObjects(polygons, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation, Mapping):
        counts = segmentation["counts"]
        if isinstance(counts, list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(dict(segmentation), height, width)
        else:
            rle = {
                "size": list(segmentation["size"]),
                "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
            }
    else:
        raise ValueError(f"unsupported COCO segmentation of type {type(segmentation).__name__}")
    decoded = mask_utils.decode(rle)
    if decoded.ndim == 3:
        decoded = decoded.any(axis=2)
    return decoded.astype(bool)


def _polygon_int(points: Sequence[Sequence[float]]) -> np.ndarray:
    # Vertices are truncated to integer pixels, as LabelMe-style tools (and the reference
    # ReasonSeg evaluation) do; coordinates are non-negative so truncation == floor.
    return np.asarray(points, dtype=np.float64).astype(np.int32).reshape(-1, 1, 2)


def rasterize_polygon(points: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """One polygon (``[[x, y], ...]`` absolute pixels) as a bool ``(H, W)`` mask.

    The interior is filled and the 1-pixel outline drawn, so thin polygons keep their border.
    """
    canvas = np.zeros((height, width), dtype=np.uint8)
    _draw_polygon(canvas, _polygon_int(points), 1)
    return canvas.astype(bool)


def _draw_polygon(canvas: np.ndarray, pts: np.ndarray, value: int) -> None:
    cv2.polylines(canvas, [pts], True, value, 1)
    cv2.fillPoly(canvas, [pts], value)


def _polygon_area(pts: np.ndarray) -> int:
    """Pixel count of the rasterised polygon, drawn in its bounding-box crop (cheap)."""
    x0, y0 = pts[:, 0, 0].min(), pts[:, 0, 1].min()
    x1, y1 = pts[:, 0, 0].max(), pts[:, 0, 1].max()
    crop = np.zeros((int(y1 - y0) + 1, int(x1 - x0) + 1), dtype=np.uint8)
    _draw_polygon(crop, pts - np.array([x0, y0], dtype=np.int32), 1)
    return int(crop.sum())


def is_ignore_label(label: str) -> bool:
    """ReasonSeg: a shape whose label contains ``"ignore"`` marks a region to ignore (255)."""
    return "ignore" in label.lower()


def rasterize_reasonseg(shapes: Iterable[Mapping[str, Any]], height: int, width: int) -> np.ndarray:
    """ReasonSeg label map ``uint8 (H, W)``: 0 background, 1 target, 255 ignore.

    Shapes are drawn from the largest to the smallest (pixel count, ties in file order), each
    overwriting what is under it, so a small ignore region inside a target stays ignored and
    vice versa. ``"flag"`` shapes are skipped; polygons with < 3 vertices are skipped.
    """
    drawn: list[tuple[int, int, np.ndarray, int]] = []
    for index, shape in enumerate(shapes):
        label = str(shape.get("label", ""))
        points = shape.get("points") or []
        if label.lower() == "flag" or len(points) < 3:
            continue
        pts = _polygon_int(points)
        value = 255 if is_ignore_label(label) else 1
        drawn.append((-_polygon_area(pts), index, pts, value))
    drawn.sort(key=lambda item: (item[0], item[1]))
    labels = np.zeros((height, width), dtype=np.uint8)
    for _, _, pts, value in drawn:
        _draw_polygon(labels, pts, value)
    return labels


def _annotation(example: Mapping[str, Any]) -> dict[str, Any]:
    raw = example.get("annotation")
    if not raw:
        raise ValueError(f"example {example.get('id')!r} has no 'annotation'")
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def read_mask(value: Any) -> np.ndarray:
    """A ground-truth mask given as a decoded PIL image, a path or a ``{"path", "bytes"}``
    dataset value, as ``bool (H, W)`` (:func:`mask_from_image`: EXIF orientation, then the one
    GT rule). Files opened here are closed."""
    with _opened(value) as img:
        return mask_from_image(img)


def load_mask(example: Mapping[str, Any]) -> np.ndarray:
    """The example's ground-truth target mask, ``np.ndarray`` bool ``(H, W)``.

    * foreground: the GT file through :func:`mask_from_image` (EXIF orientation applied like
      the image, then the one GT rule, ``grey > 128``);
    * referring: the COCO segmentation decoded with pycocotools (union of its parts);
    * reasoning: the target polygons (label 1 of :func:`rasterize_reasonseg`); ignore regions
      are NOT part of the mask, see :func:`load_ignore`.
    """
    task = example.get("task")
    if task == "foreground":
        value = example.get("mask")
        if value is None:
            raise ValueError(f"foreground example {example.get('id')!r} has no 'mask'")
        return read_mask(value)
    if task == "referring":
        ann = _annotation(example)
        return decode_coco_segmentation(ann["segmentation"], int(ann["height"]), int(ann["width"]))
    if task == "reasoning":
        ann = _annotation(example)
        return rasterize_reasonseg(ann["shapes"], int(ann["height"]), int(ann["width"])) == 1
    raise ValueError(f"unknown task {task!r} in example {example.get('id')!r}")


def load_ignore(example: Mapping[str, Any]) -> np.ndarray | None:
    """Regions to ignore in evaluation, bool ``(H, W)``, or ``None``.

    Only ReasonSeg has them (label 255, shapes labelled ``"ignore"``); ``None`` for every other
    task and for ReasonSeg samples without an ignore shape. The standard protocol counts these
    pixels as background; an evaluator may exclude them instead.
    """
    if example.get("task") != "reasoning":
        return None
    ann = _annotation(example)
    shapes = ann["shapes"]
    if not any(is_ignore_label(str(s.get("label", ""))) for s in shapes):
        return None
    return rasterize_reasonseg(shapes, int(ann["height"]), int(ann["width"])) == 255


# --------------------------------------------------------------------------- building datasets


def segmentation_row(
    *,
    id: str,
    image: str | os.PathLike[str],
    source: str,
    task: str,
    split: str,
    query: str = "",
    query_type: str = "",
    mask: str | os.PathLike[str] | None = None,
    annotation: Mapping[str, Any] | str = "",
) -> dict[str, Any]:
    """One row of the shared schema (absolute paths as strings, annotation serialised).

    Paths are made absolute (not resolved: symlinks stay) so rows survive a change of the
    working directory.
    """
    if not isinstance(annotation, str):
        annotation = json.dumps(annotation, separators=(",", ":"))
    return {
        "id": id,
        "image": os.fspath(Path(image).absolute()),
        "source": source,
        "task": task,
        "query": query,
        "query_type": query_type,
        "split": split,
        "mask": None if mask is None else os.fspath(Path(mask).absolute()),
        "annotation": annotation,
    }


def build_segmentation_dataset(rows: Sequence[Mapping[str, Any]]) -> Any:
    """A :class:`datasets.Dataset` with the shared features; images/masks stay file paths.

    Raises :class:`DatasetError` if two rows share an ``id``.
    """
    import datasets

    seen: set[str] = set()
    for row in rows:
        if row["id"] in seen:
            raise DatasetError(f"duplicate example id {row['id']!r}", row["image"])
        seen.add(row["id"])
    columns = {name: [row[name] for row in rows] for name in SEGMENTATION_COLUMNS}
    return datasets.Dataset.from_dict(columns, features=segmentation_features())


def default_num_workers() -> int:
    """Threads used for file checks (PIL decodes outside the GIL)."""
    return max(1, min(8, os.cpu_count() or 1))


def list_files(folder: Path, extensions: Sequence[str]) -> list[Path]:
    """Files directly in ``folder`` with one of ``extensions`` (case-insensitive), sorted.

    Hidden files (``.DS_Store``, ``._name`` resource forks) are ignored.
    """
    exts = {e.lower() for e in extensions}
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in exts
    )
