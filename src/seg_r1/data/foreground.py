"""Foreground (camouflaged / salient / dichotomous) datasets: image folder + GT mask folder.

Each loader pairs every image with the ground-truth mask of the same stem (``name.jpg`` ->
``name.png``; other mask suffixes are accepted, PNG first) and returns a dataset with the
shared schema of :mod:`seg_r1.data.io` (``task="foreground"``, ``query=""``,
``query_type=""``, ``mask`` = the GT file by path). Nothing is copied or re-encoded.

Layouts (relative to ``root``, default ``datasets/``), first match wins; the first entry is
the official archive's layout, the others are common re-packagings:

============  ==========================================================================
name          train / test folders (image folder -> GT folder)
============  ==========================================================================
DIS5K         ``DIS5K/DIS-TR/im`` -> ``gt`` (also ``DIS5K-TR``, and ``DIS5K/DIS5K/...``);
              val ``DIS-VD``; test = ``DIS-TE1`` .. ``DIS-TE4`` together
COD10K        ``COD10K-v3/Train/Image`` -> ``Train/GT_Object``; ``Test/...`` likewise;
              ``*NonCAM*`` images are excluded (not camouflaged; SPEC §5: 3,040 train)
CAMO          ``CAMO-V.1.0-CVIU2019/Images/Train`` | ``Images/Test`` -> flat ``GT``
              (or ``GT/Train`` | ``GT/Test`` if already split); the image folders decide
DUTS          ``DUTS/DUTS-TR/DUTS-TR-Image`` -> ``DUTS-TR-Mask``; ``DUTS-TE`` likewise
DUT-OMRON     ``DUT-OMRON/DUT-OMRON-image`` -> ``pixelwiseGT-new-PNG`` (test only)
HKU-IS        ``HKU-IS/imgs`` -> ``gt`` (test only: the whole set, as SOD papers evaluate)
ECSSD         ``ECSSD/images`` -> ``ground_truth_mask`` (test only)
synthetic     ``<root>/Train/Image`` -> ``Train/GT_Object`` (``Test`` likewise), written by
              :mod:`seg_r1.data.synthetic`; ``<root>/synthetic/...`` also works
============  ==========================================================================

Problems (missing GT, GT without image, unreadable/truncated image, size mismatch,
non-binary GT) are logged with the file name and skipped, or raise :class:`DatasetError`
with ``strict=True``. The user's files are only read.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg_r1.data.io import BadFile, inspect_image, inspect_mask
from seg_r1.data.schema import (
    IMAGE_EXTENSIONS,
    MASK_EXTENSIONS,
    DatasetError,
    LoadReport,
    check_all,
    check_level,
    finish_rows,
    list_files,
    segmentation_row,
)

logger = logging.getLogger(__name__)

FOREGROUND_DATASETS: tuple[str, ...] = (
    "DIS5K",
    "COD10K",
    "CAMO",
    "DUTS",
    "DUT-OMRON",
    "HKU-IS",
    "ECSSD",
    "synthetic",
)


@dataclass(frozen=True)
class _Candidate:
    """One possible (image folder, GT folder) layout, relative to the dataset folder.

    ``siblings``: other image folders whose images own GT files in the same (flat) GT folder,
    so those GT files are not reported as "GT without image" (CAMO's flat ``GT``).
    """

    image: str
    gt: str
    siblings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Subset:
    name: str
    candidates: tuple[_Candidate, ...]


@dataclass(frozen=True)
class _Spec:
    folders: tuple[str, ...]
    splits: dict[str, tuple[_Subset, ...]]
    exclude: tuple[str, ...] = ()


def _one(name: str, *candidates: _Candidate) -> tuple[_Subset, ...]:
    return (_Subset(name, tuple(candidates)),)


def _dis(prefixes: Sequence[str]) -> tuple[_Candidate, ...]:
    return tuple(_Candidate(f"{p}/im", f"{p}/gt") for p in prefixes)


_SPECS: dict[str, _Spec] = {
    "DIS5K": _Spec(
        folders=("DIS5K/DIS5K", "DIS5K"),
        splits={
            "train": (_Subset("DIS-TR", _dis(["DIS-TR", "DIS5K-TR"])),),
            "val": (_Subset("DIS-VD", _dis(["DIS-VD", "DIS5K-VD"])),),
            "test": tuple(
                _Subset(f"DIS-TE{i}", _dis([f"DIS-TE{i}", f"DIS5K-TE{i}"])) for i in range(1, 5)
            ),
        },
    ),
    "COD10K": _Spec(
        folders=("COD10K-v3", "COD10K"),
        splits={
            "train": _one("train", _Candidate("Train/Image", "Train/GT_Object")),
            "test": _one("test", _Candidate("Test/Image", "Test/GT_Object")),
        },
        # Non-camouflaged images ship with COD10K but are not part of the COD task.
        exclude=("*NonCAM*",),
    ),
    "CAMO": _Spec(
        folders=("CAMO-V.1.0-CVIU2019", "CAMO"),
        splits={
            "train": _one(
                "train",
                _Candidate("Images/Train", "GT/Train"),
                _Candidate("Images/Train", "GT", siblings=("Images/Test",)),
            ),
            "test": _one(
                "test",
                _Candidate("Images/Test", "GT/Test"),
                _Candidate("Images/Test", "GT", siblings=("Images/Train",)),
            ),
        },
    ),
    "DUTS": _Spec(
        folders=("DUTS",),
        splits={
            "train": _one("train", _Candidate("DUTS-TR/DUTS-TR-Image", "DUTS-TR/DUTS-TR-Mask")),
            "test": _one("test", _Candidate("DUTS-TE/DUTS-TE-Image", "DUTS-TE/DUTS-TE-Mask")),
        },
    ),
    "DUT-OMRON": _Spec(
        folders=("DUT-OMRON",),
        splits={
            "test": _one(
                "test",
                _Candidate("DUT-OMRON-image", "pixelwiseGT-new-PNG"),
                _Candidate("DUT-OMRON-image/DUT-OMRON-image", "pixelwiseGT-new-PNG"),
                _Candidate("DUT-OMRON-image", "DUT-OMRON-gt-pixelwise/pixelwiseGT-new-PNG"),
                _Candidate("Imgs", "GT"),
            )
        },
    ),
    "HKU-IS": _Spec(
        folders=("HKU-IS",),
        splits={"test": _one("test", _Candidate("imgs", "gt"), _Candidate("Imgs", "GT"))},
    ),
    "ECSSD": _Spec(
        folders=("ECSSD",),
        splits={
            "test": _one(
                "test",
                _Candidate("images", "ground_truth_mask"),
                _Candidate("Imgs", "GT"),
            )
        },
    ),
    "synthetic": _Spec(
        folders=("synthetic", "."),
        splits={
            "train": _one("train", _Candidate("Train/Image", "Train/GT_Object")),
            "test": _one("test", _Candidate("Test/Image", "Test/GT_Object")),
        },
    ),
}


def _canonical_name(name: str) -> str:
    by_key = {n.lower().replace("-", "").replace("_", ""): n for n in FOREGROUND_DATASETS}
    key = name.lower().replace("-", "").replace("_", "")
    aliases = {"cod10kv3": "COD10K", "camov1.0cviu2019": "CAMO", "dutomron": "DUT-OMRON"}
    key_name = by_key.get(key) or aliases.get(key)
    if key_name is None:
        raise ValueError(f"unknown foreground dataset {name!r}; choose from {FOREGROUND_DATASETS}")
    return key_name


@dataclass(frozen=True)
class _Resolved:
    name: str
    image_dir: Path
    gt_dir: Path
    siblings: tuple[Path, ...]


def _resolve_subset(dataset_dirs: Sequence[Path], subset: _Subset) -> _Resolved | Path:
    """The first candidate whose two folders exist, else the first missing folder."""
    first_missing: Path | None = None
    for base in dataset_dirs:
        for cand in subset.candidates:
            image_dir, gt_dir = base / cand.image, base / cand.gt
            if image_dir.is_dir() and gt_dir.is_dir():
                siblings = tuple(base / s for s in cand.siblings if (base / s).is_dir())
                return _Resolved(subset.name, image_dir, gt_dir, siblings)
            if first_missing is None:
                first_missing = image_dir if not image_dir.is_dir() else gt_dir
    assert first_missing is not None
    return first_missing


def _resolve(
    name: str,
    root: Path,
    split: str,
    image_dir: str | os.PathLike[str] | None,
    gt_dir: str | os.PathLike[str] | None,
    report: LoadReport,
) -> list[_Resolved]:
    spec = _SPECS[name]
    if image_dir is not None and gt_dir is not None:
        resolved = [_Resolved(split, Path(image_dir), Path(gt_dir), ())]
    else:
        if split not in spec.splits:
            raise DatasetError(
                f"{name} has no {split!r} split (available: {sorted(spec.splits)}); pass "
                "image_dir= and gt_dir= to read other folders",
                root,
            )
        dataset_dirs = [root / f for f in spec.folders if (root / f).is_dir()]
        if not dataset_dirs:
            tried = ", ".join(str(root / f) for f in spec.folders if f != ".")
            raise DatasetError(
                f"{name} not found: no folder {tried}. Download it (see datasets/README.md) "
                f"or pass root= / image_dir= and gt_dir=",
                root / spec.folders[0],
            )
        resolved = []
        missing: list[Path] = []
        for subset in spec.splits[split]:
            found = _resolve_subset(dataset_dirs, subset)
            if isinstance(found, Path):
                missing.append(found)
            else:
                resolved.append(found)
        if not resolved:
            raise DatasetError(
                f"{name} {split}: missing folder {missing[0]} (expected layout: see "
                "datasets/README.md, or pass image_dir= and gt_dir=)",
                missing[0],
            )
        for folder in missing:  # e.g. DIS-TE3 absent while TE1, TE2 and TE4 are there
            report.skip("missing_folder", folder, "missing folder")
        if image_dir is not None or gt_dir is not None:
            first = resolved[0]
            resolved = [
                _Resolved(
                    split,
                    Path(image_dir) if image_dir is not None else first.image_dir,
                    Path(gt_dir) if gt_dir is not None else first.gt_dir,
                    (),
                )
            ]
    for sub in resolved:
        for folder in (sub.image_dir, sub.gt_dir):
            if not folder.is_dir():
                raise DatasetError(f"{name} {split}: missing folder {folder}", folder)
    return resolved


def _read_image_list(path: str | os.PathLike[str]) -> set[str]:
    """Stems listed in a text file (one name per line, with or without suffix or folder)."""
    stems: set[str] = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            stems.add(Path(line).stem)
    return stems


@dataclass(frozen=True)
class _Pair:
    subset: str
    image: Path
    gt: Path


def _pair_folder(
    sub: _Resolved,
    exclude: Sequence[str],
    keep_stems: set[str] | None,
    report: LoadReport,
) -> tuple[list[_Pair], int]:
    """Pair images with GT files by stem; report images without GT and GT without image."""
    images = list_files(sub.image_dir, IMAGE_EXTENSIONS)
    gts = list_files(sub.gt_dir, MASK_EXTENSIONS)
    if sub.image_dir.resolve() == sub.gt_dir.resolve():
        raise DatasetError("image and GT folders are the same folder", sub.image_dir)
    rank = {ext: i for i, ext in enumerate(MASK_EXTENSIONS)}
    gt_by_stem: dict[str, Path] = {}
    for gt in sorted(gts, key=lambda p: (p.stem, rank[p.suffix.lower()])):
        gt_by_stem.setdefault(gt.stem, gt)

    owned = {p.stem for p in images}  # stems whose GT is accounted for (even when not kept)
    for sibling in sub.siblings:
        owned.update(p.stem for p in list_files(sibling, IMAGE_EXTENSIONS))

    pairs: list[_Pair] = []
    excluded = 0
    seen: dict[str, Path] = {}
    for image in images:
        if any(fnmatch.fnmatchcase(image.name, pattern) for pattern in exclude):
            excluded += 1
            continue
        if keep_stems is not None and image.stem not in keep_stems:
            continue
        if image.stem in seen:
            report.skip(
                "duplicate_image", image, f"another image has the same name ({seen[image.stem]})"
            )
            continue
        seen[image.stem] = image
        gt = gt_by_stem.get(image.stem)
        if gt is None:
            report.skip("missing_gt", image, f"no ground truth {image.stem}.png in {sub.gt_dir}")
            continue
        pairs.append(_Pair(sub.name, image, gt))
    for stem, gt in gt_by_stem.items():
        if stem not in owned:
            report.skip("gt_without_image", gt, f"no image {stem}.* in {sub.image_dir}")
    return pairs, excluded


def _check_pair(pair: _Pair, check: str) -> tuple[_Pair, BadFile | None, Path, bool]:
    try:
        size = inspect_image(pair.image, check)
    except BadFile as bad:
        return pair, bad, pair.image, False
    try:
        empty = inspect_mask(pair.gt, size, check)
    except BadFile as bad:
        if bad.kind == "size_mismatch":
            bad = BadFile(bad.kind, f"{bad.message}; image {pair.image}")
        return pair, bad, pair.gt, False
    return pair, None, pair.gt, empty


def check_pairs(
    pairs: Sequence[_Pair], check: str, report: LoadReport, num_workers: int | None = None
) -> list[_Pair]:
    """Run the file checks on every pair (threaded), record problems, keep the good pairs."""
    if check == "none":
        return list(pairs)
    kept: list[_Pair] = []
    results = check_all(
        pairs, lambda p: _check_pair(p, check), f"checking {report.name}", num_workers
    )
    for pair, bad, path, empty in results:
        if bad is not None:
            report.skip(bad.kind, path, bad.message)
            continue
        if empty:
            report.warn("empty_gt", path, "ground truth is empty (no foreground pixel)")
        kept.append(pair)
    return kept


def load_foreground_folder(
    image_dir: str | os.PathLike[str],
    gt_dir: str | os.PathLike[str],
    source: str = "custom",
    split: str = "test",
    exclude: Sequence[str] = (),
    image_list: str | os.PathLike[str] | None = None,
    strict: bool = False,
    check: str = "fast",
    num_workers: int | None = None,
    report: LoadReport | None = None,
) -> Any:
    """Any image folder + GT folder as a foreground dataset (ids ``"<source>/<split>/<stem>"``).

    ``exclude``: ``fnmatch`` patterns on image file names to leave out (not counted as skips).
    ``image_list``: a text file of names; only those images are read. ``check``: ``"none"``
    (pair by name only), ``"fast"`` (image headers + end markers, every GT decoded: sizes,
    binariness), ``"full"`` (also decode every image).

    A GT file without an image is reported, except when the GT folder is shared by split
    folders: if ``gt_dir`` lies outside ``image_dir``'s parent (CAMO: ``Images/Test`` with a
    flat ``GT``), GT files whose image is in a sibling of ``image_dir`` (``Images/Train``)
    belong to that other split and are not reported.
    """
    local = LoadReport(name=f"{source} {split}", strict=strict)
    image_dir, gt_dir = Path(image_dir), Path(gt_dir)
    for folder in (image_dir, gt_dir):
        if not folder.is_dir():
            raise DatasetError(f"{local.name}: missing folder {folder}", folder)
    parent = image_dir.resolve().parent
    siblings: tuple[Path, ...] = ()
    if not gt_dir.resolve().is_relative_to(parent):
        siblings = tuple(
            p for p in sorted(parent.iterdir()) if p.is_dir() and p.resolve() != image_dir.resolve()
        )
    subsets = [_Resolved(split, image_dir, gt_dir, siblings)]
    return _load(subsets, source, split, exclude, image_list, check, num_workers, local, report)


def _load(
    subsets: Sequence[_Resolved],
    source: str,
    split: str,
    exclude: Sequence[str],
    image_list: str | os.PathLike[str] | None,
    check: str,
    num_workers: int | None,
    local: LoadReport,
    report: LoadReport | None,
) -> Any:
    check_level(check)
    keep = _read_image_list(image_list) if image_list is not None else None
    pairs: list[_Pair] = []
    excluded = 0
    for sub in subsets:
        sub_pairs, sub_excluded = _pair_folder(sub, exclude, keep, local)
        pairs.extend(sub_pairs)
        excluded += sub_excluded
    if excluded:
        logger.info("%s: left out %d images matching %s", local.name, excluded, list(exclude))
    kept = check_pairs(pairs, check, local, num_workers)
    multi = len(subsets) > 1
    rows = [
        segmentation_row(
            id=f"{source}/{pair.subset if multi else split}/{pair.image.stem}",
            image=pair.image,
            source=source,
            task="foreground",
            split=split,
            mask=pair.gt,
        )
        for pair in kept
    ]
    return finish_rows(rows, local, report)


def load_foreground_dataset(
    name: str,
    root: str | os.PathLike[str] = "datasets",
    split: str = "train",
    image_dir: str | os.PathLike[str] | None = None,
    gt_dir: str | os.PathLike[str] | None = None,
    strict: bool = False,
    check: str = "fast",
    exclude: Sequence[str] | None = None,
    image_list: str | os.PathLike[str] | None = None,
    num_workers: int | None = None,
    report: LoadReport | None = None,
) -> Any:
    """One foreground dataset split as a :class:`datasets.Dataset` (schema: module doc).

    Args:
        name: one of :data:`FOREGROUND_DATASETS` (case and dashes are forgiven).
        root: the ``datasets/`` folder holding the dataset folders (for ``"synthetic"``: the
            generator's ``--out`` folder).
        split: ``"train"`` | ``"test"`` (DIS5K also ``"val"``); test-only sets (DUT-OMRON,
            HKU-IS, ECSSD) have ``"test"`` only.
        image_dir, gt_dir: explicit folders overriding the layout (one or both).
        strict: raise :class:`DatasetError` on the first problem instead of skipping.
        check: ``"none"`` | ``"fast"`` | ``"full"``, see :func:`load_foreground_folder`.
        exclude: file-name patterns to leave out; ``None`` = the dataset's default
            (COD10K: ``("*NonCAM*",)``; others none). Pass ``()`` to keep NonCAM images.
        image_list: optional text file restricting the images (one name per line).
        report: optional :class:`LoadReport` receiving the counts.

    Raises:
        DatasetError: the dataset folder (or a needed sub-folder) is missing, or (strict) any
            file problem.
    """
    name = _canonical_name(name)
    local = LoadReport(name=f"{name} {split}", strict=strict)
    subsets = _resolve(name, Path(root), split, image_dir, gt_dir, local)
    patterns = _SPECS[name].exclude if exclude is None else tuple(exclude)
    return _load(subsets, name, split, patterns, image_list, check, num_workers, local, report)
