"""The input edge: the ONLY reader of images, ground-truth masks, polygons and RLE.

Every image, mask and annotation the package reads goes through here -- paths, decoded PIL
images, arrays and dataset column values (``{"path", "bytes"}``) alike:

* images: :func:`load_image` (a row or any image value -> PIL RGB, EXIF orientation applied),
  :func:`image_array` (-> ``uint8 (H, W, 3)`` RGB; arrays are taken as RGB);
* ground truth: :func:`read_mask` / :func:`ground_truth` (any mask value -> ``bool (H, W)``,
  binarised by the package's one rule :func:`seg_r1.metrics.binarize_gt`: ``grey > 128``, 0/1
  masks ``> 0.5``), :func:`load_mask` / :func:`load_ignore` (a row of the schema of
  :mod:`seg_r1.data.schema`: the GT file, the COCO segmentation, the ReasonSeg polygons);
* COCO RLE: :func:`decode_coco_segmentation`, :func:`encode_rle` / :func:`decode_rle`;
* file checks for the loaders: :func:`inspect_image`, :func:`inspect_mask` (raise
  :class:`BadFile` with an :class:`~seg_r1.data.schema.Issue` kind).

Conventions: masks are ``np.ndarray`` of dtype ``bool`` and shape ``(H, W)`` in the pixel grid
of the image returned by :func:`load_image` (after EXIF orientation).
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pycocotools import mask as mask_utils

from seg_r1.metrics import binarize_gt

logger = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------- column values


def image_array(value: Any) -> np.ndarray:
    """An image column value as ``uint8 (H, W, 3)`` RGB.

    Arrays are taken as RGB (``(H, W)`` grey is replicated, a 4th alpha channel dropped);
    PIL images, paths and ``{"path", "bytes"}`` dicts go through :func:`load_image` (RGB,
    EXIF orientation applied).

    Raises:
        ValueError: an array of another dtype or shape.
    """
    if isinstance(value, np.ndarray):
        if value.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8, got {value.dtype}")
        if value.ndim == 2:
            return np.repeat(value[:, :, None], 3, axis=2)
        if value.ndim == 3 and value.shape[2] in (3, 4):
            return value[:, :, :3]
        raise ValueError(f"image arrays must be (H, W, 3), got {value.shape}")
    return np.asarray(load_image(value))


def ground_truth(value: Any, row: Mapping[str, Any] | None = None) -> np.ndarray:
    """A ground-truth column value as ``bool (H, W)`` (True = foreground).

    Accepts a ``bool``/integer/float array (``(H, W)`` or ``(H, W, 1)``), a PIL image (any
    mode; EXIF orientation applied), a path or a ``{"path", "bytes"}`` dict; all of them are
    binarised by the package's one rule, :func:`seg_r1.metrics.binarize_gt` (``> 128`` on the
    0-255 scale, ``> 0.5`` on the 0/1 scale). With ``value`` ``None`` and a
    referring/reasoning ``row``, the mask is decoded from the row's annotation by
    :func:`load_mask`.

    Raises:
        ValueError: no ground truth, or not a 2-D mask.
    """
    if value is None:
        if row is not None and row.get("task") in ("referring", "reasoning"):
            return load_mask(row)
        raise ValueError("sample has no ground-truth mask (the 'mask' column is None)")
    if isinstance(value, (str, os.PathLike, Mapping, Image.Image)):
        return read_mask(value)
    grey = np.asarray(value)
    if grey.ndim == 3 and grey.shape[2] == 1:
        grey = grey[:, :, 0]
    if grey.ndim != 2:
        raise ValueError(f"ground-truth masks must be 2-D, got shape {grey.shape}")
    return binarize_gt(grey)


# --------------------------------------------------------------------------- COCO RLE


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """A bool mask as COCO compressed RLE ``{"size": [H, W], "counts": str}``."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_rle`: ``bool (H, W)``."""
    coded = {"size": list(rle["size"]), "counts": str(rle["counts"]).encode("ascii")}
    return mask_utils.decode(coded).astype(bool)
