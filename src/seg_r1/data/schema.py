"""The shared schema of every segmentation dataset, the skip reports of the loaders, and the
helpers that build a dataset from rows. Reading images and masks: :mod:`seg_r1.data.io`.

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

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

Task = Literal["foreground", "referring", "reasoning"]
Check = Literal["none", "fast", "full"]
CHECK_LEVELS: tuple[str, ...] = ("none", "fast", "full")

#: Image file suffixes the adapters pick up (lower-case; the match is case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Ground-truth suffixes tried in this order when pairing (the field's convention is PNG).
MASK_EXTENSIONS: tuple[str, ...] = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")

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


def finish_rows(
    rows: Sequence[Mapping[str, Any]], local: LoadReport, report: LoadReport | None
) -> Any:
    """The adapters' last step: count the kept rows, log the load's summary, fold it into the
    caller's ``report`` and build the dataset (:func:`build_segmentation_dataset`)."""
    local.kept = len(rows)
    finish_report(local, report)
    return build_segmentation_dataset(rows)


def check_all(
    items: Sequence[Any],
    check: Callable[[Any], Any],
    desc: str,
    num_workers: int | None = None,
) -> list[Any]:
    """The adapters' shared check step: ``check(item)`` for every item in a thread pool (file
    decoding releases the GIL), results in input order, with a progress bar on long loads.
    ``check`` returns what the adapter needs (e.g. a size, or a ``BadFile`` to skip)."""
    with ThreadPoolExecutor(max_workers=num_workers or default_num_workers()) as pool:
        return list(
            tqdm(pool.map(check, items), total=len(items), desc=desc, disable=None, leave=False)
        )


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
