"""On-disk manifests: prepared once, loaded fast; training-stage data; the eval JSONL.

**Manifest** (our format): JSONL, one example of the shared schema per line::

    {"id": "COD10K/train/COD10K-CAM-1-Aquatic-1-BatFish-1", "source": "COD10K",
     "task": "foreground", "split": "train", "query": "", "query_type": "",
     "image": "COD10K-v3/Train/Image/COD10K-CAM-1-Aquatic-1-BatFish-1.jpg",
     "mask": "COD10K-v3/Train/GT_Object/COD10K-CAM-1-Aquatic-1-BatFish-1.png",
     "annotation": ""}

``image`` / ``mask`` are relative (POSIX) to the dataset ``root`` when inside it, absolute
otherwise. Manifests of the training stages live in ``<root>/manifests/<stage>.jsonl``
(written by ``bash utils/prepare_datasets.sh``) with a ``summary.json`` of counts.

**Stages** (SPEC §5, :data:`STAGES`): ``prerl`` = DIS5K train (DIS-TR); ``rl`` = COD10K
train without NonCAM + CAMO train; ``sod`` = DUTS-TR.

**Eval JSONL** (the seed's format, read by the foreground evaluation): one
``{"image_path": ..., "ground_truth": ...}`` per line, paths relative to a root folder; the
GT is the image's name with its extension swapped for ``.png`` (other mask suffixes are
accepted when no ``.png`` exists).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seg_r1.data.foreground import load_foreground_dataset, load_foreground_folder
from seg_r1.data.schema import (
    SEGMENTATION_COLUMNS,
    DatasetError,
    LoadReport,
    finish_rows,
    segmentation_row,
)

logger = logging.getLogger(__name__)

#: Training stage -> ((foreground dataset, split), ...) (SPEC §5).
STAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "prerl": (("DIS5K", "train"),),
    "rl": (("COD10K", "train"), ("CAMO", "train")),
    "sod": (("DUTS", "train"),),
}
MANIFEST_DIRNAME = "manifests"


def _portable(path: str, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX) when inside it, else absolute."""
    absolute = Path(path).absolute()
    try:
        return absolute.relative_to(root.absolute()).as_posix()
    except ValueError:
        return str(absolute)


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    """Write atomically (temp file + rename) so a failed run leaves no half manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def write_manifest(
    dataset: Any, path: str | os.PathLike[str], root: str | os.PathLike[str] = "datasets"
) -> int:
    """Write a segmentation dataset as a JSONL manifest (paths relative to ``root``).

    Returns the number of lines written. Only file paths are written, never image bytes.
    """
    import datasets

    root = Path(root)
    plain = dataset.cast_column("image", datasets.Image(decode=False)).cast_column(
        "mask", datasets.Image(decode=False)
    )
    lines = []
    for row in plain:
        record = {k: row[k] for k in SEGMENTATION_COLUMNS}
        for key in ("image", "mask"):
            value = record[key]
            if value is not None:
                if not value.get("path"):
                    raise DatasetError(f"example {row['id']!r}: {key} has no file path", path)
                value = _portable(value["path"], root)
            record[key] = value
        lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    _write_lines(Path(path), lines)
    return len(lines)


def read_manifest(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    strict: bool = False,
    report: LoadReport | None = None,
) -> Any:
    """A manifest written by :func:`write_manifest` as a :class:`datasets.Dataset`.

    ``root`` defaults to the manifest folder's parent (manifests live in
    ``<root>/manifests/``). Lines whose image or mask file is gone are skipped with a warning
    (``strict``: :class:`DatasetError`); files are only checked for existence here, the full
    checks ran when the manifest was prepared.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError("manifest not found", path)
    root = Path(root) if root is not None else path.parent.parent
    local = LoadReport(name=f"manifest {path.name}", strict=strict)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
            row = {k: record.get(k, "") for k in SEGMENTATION_COLUMNS}
            row["mask"] = record.get("mask")
        except (ValueError, AttributeError) as exc:
            local.skip("bad_json", where, f"not a manifest record ({exc})")
            continue
        missing_key = [k for k in ("id", "image", "source", "task") if not row[k]]
        if missing_key:
            local.skip("bad_record", where, f"missing {missing_key}")
            continue
        row["image"] = str(root / row["image"])
        if row["mask"] is not None:
            row["mask"] = str(root / row["mask"])
        if not Path(row["image"]).is_file():
            local.skip("missing_image", row["image"], f"image listed in {where} not found")
            continue
        if row["mask"] is not None and not Path(row["mask"]).is_file():
            local.skip("missing_gt", row["mask"], f"mask listed in {where} not found")
            continue
        rows.append(segmentation_row(**row))
    return finish_rows(rows, local, report)


def _collect_stage(
    stage: str,
    root: str | os.PathLike[str],
    strict: bool,
    check: str,
    num_workers: int | None,
    report: LoadReport | None,
) -> tuple[list[Any], dict[str, Any]]:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose from {sorted(STAGES)}")
    parts = []
    summary: dict[str, Any] = {"total": 0, "sources": {}, "skipped": {}, "absent": {}}
    for name, split in STAGES[stage]:
        source_report = LoadReport(name=f"{name} {split}", strict=strict)
        try:
            ds = load_foreground_dataset(
                name,
                root=root,
                split=split,
                strict=strict,
                check=check,
                num_workers=num_workers,
                report=source_report,
            )
        except DatasetError as exc:
            if strict:
                raise
            logger.warning("%s: %s %s absent, skipped: %s", stage, name, split, exc)
            summary["absent"][name] = str(exc)
            continue
        parts.append(ds)
        summary["sources"][name] = len(ds)
        summary["skipped"][name] = source_report.counts()
        if report is not None:
            report.merge(source_report)
    summary["total"] = sum(len(p) for p in parts)
    return parts, summary


def _no_source_error(stage: str, root: str | os.PathLike[str]) -> DatasetError:
    return DatasetError(
        f"stage {stage!r}: none of its datasets {[n for n, _ in STAGES[stage]]} were found "
        f"under {root} (see datasets/README.md)",
        root,
    )


def build_stage(
    stage: str,
    root: str | os.PathLike[str] = "datasets",
    strict: bool = False,
    check: str = "fast",
    num_workers: int | None = None,
    report: LoadReport | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Read a stage's sources from their raw folders (no manifest).

    Returns ``(dataset, summary)`` with ``summary = {"total", "sources": {name: count},
    "skipped": {name: {kind: count}}, "absent": {name: message}}``. An absent source is
    logged and left out; ``strict`` makes it (and any skipped file) an error. Raises
    :class:`DatasetError` when no source of the stage is present.
    """
    import datasets

    parts, summary = _collect_stage(stage, root, strict, check, num_workers, report)
    if not parts:
        raise _no_source_error(stage, root)
    dataset = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return dataset, summary


def stage_manifest(
    stage: str,
    root: str | os.PathLike[str] = "datasets",
    manifest_dir: str | os.PathLike[str] | None = None,
    strict: bool = False,
    check: str = "fast",
    rebuild: bool = False,
) -> Any:
    """The training data of ``stage`` (``"prerl"`` | ``"rl"`` | ``"sod"``) as a dataset.

    Reads ``<manifest_dir or root/manifests>/<stage>.jsonl`` when it exists (fast), else (or
    with ``rebuild=True``) reads the raw folders with :func:`build_stage` without writing
    anything. Prepare the manifests once with ``bash utils/prepare_datasets.sh``.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose from {sorted(STAGES)}")
    folder = Path(manifest_dir) if manifest_dir is not None else Path(root) / MANIFEST_DIRNAME
    path = folder / f"{stage}.jsonl"
    if path.is_file() and not rebuild:
        logger.info("stage %s: reading manifest %s", stage, path)
        return read_manifest(path, root=root, strict=strict)
    logger.info("stage %s: no manifest at %s, reading the dataset folders", stage, path)
    dataset, _ = build_stage(stage, root=root, strict=strict, check=check)
    return dataset


def prepare_stage_manifests(
    root: str | os.PathLike[str] = "datasets",
    out: str | os.PathLike[str] | None = None,
    stages: Sequence[str] | None = None,
    strict: bool = False,
    check: str = "fast",
    num_workers: int | None = None,
) -> dict[str, Any]:
    """Build ``<out>/<stage>.jsonl`` for each stage and ``<out>/summary.json``.

    ``out`` defaults to ``<root>/manifests``. A stage none of whose sources exist is reported
    in the summary (``"error"``) and gets no file (``strict``: :class:`DatasetError`).
    Returns the summary ``{stage: {"total", "sources", "skipped", "absent", "manifest"}}``.
    """
    import datasets

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist (see datasets/README.md)", root)
    out = Path(out) if out is not None else root / MANIFEST_DIRNAME
    result: dict[str, Any] = {}
    for stage in stages or list(STAGES):
        parts, summary = _collect_stage(stage, root, strict, check, num_workers, None)
        result[stage] = summary
        if not parts:
            error = _no_source_error(stage, root)
            if strict:
                raise error
            logger.warning("stage %s: no manifest written: %s", stage, error)
            summary["error"] = str(error)
            stale = out / f"{stage}.jsonl"
            if stale.is_file():  # our own output of an earlier run: it no longer holds
                stale.unlink()
                logger.warning("stage %s: removed the stale manifest %s", stage, stale)
            continue
        dataset = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
        path = out / f"{stage}.jsonl"
        write_manifest(dataset, path, root)
        summary["manifest"] = str(path)
        logger.info("stage %s: %d examples -> %s", stage, len(dataset), path)
    _write_lines(out / "summary.json", [json.dumps(result, indent=2, sort_keys=True)])
    return result


def write_eval_jsonl(
    image_dir: str | os.PathLike[str],
    gt_dir: str | os.PathLike[str],
    output_file: str | os.PathLike[str],
    root_dir: str | os.PathLike[str] = ".",
    exclude: Sequence[str] = ("*NonCAM*",),
    strict: bool = False,
    check: str = "fast",
    report: LoadReport | None = None,
) -> int:
    """Write the seed's eval list: ``{"image_path", "ground_truth"}`` per line.

    Pairs ``image_dir``/``name.<ext>`` with ``gt_dir``/``name.png`` (skips and reports what
    does not pair or fails the checks, like the dataset loaders); paths are relative to
    ``root_dir`` (``..`` segments when outside it). ``exclude``: name patterns to leave out,
    by default COD10K's NonCAM images. Returns the number of lines written.
    """
    import datasets

    source = Path(image_dir).name or "custom"
    ds = load_foreground_folder(
        image_dir,
        gt_dir,
        source=source,
        exclude=exclude,
        strict=strict,
        check=check,
        report=report,
    )
    plain = ds.cast_column("image", datasets.Image(decode=False)).cast_column(
        "mask", datasets.Image(decode=False)
    )
    lines = [
        json.dumps(
            {
                "image_path": Path(os.path.relpath(r["image"]["path"], root_dir)).as_posix(),
                "ground_truth": Path(os.path.relpath(r["mask"]["path"], root_dir)).as_posix(),
            }
        )
        for r in plain
    ]
    _write_lines(Path(output_file), lines)
    return len(lines)


def load_eval_jsonl(
    path: str | os.PathLike[str],
    root_dir: str | os.PathLike[str] = ".",
    source: str | None = None,
    split: str = "test",
    strict: bool = False,
    report: LoadReport | None = None,
) -> Any:
    """The seed's eval JSONL as a foreground dataset (ids ``"<source>/<split>/<stem>"``).

    ``source`` defaults to the file's stem (``cod10k_test.jsonl`` -> ``"cod10k_test"``).
    Lines whose files are missing are skipped with a warning (``strict``: error).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError("eval list not found", path)
    source = source or path.stem
    local = LoadReport(name=f"eval list {path.name}", strict=strict)
    rows = []
    seen: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
            image = Path(root_dir) / record["image_path"]
            gt = Path(root_dir) / record["ground_truth"]
        except (ValueError, KeyError, TypeError) as exc:
            local.skip("bad_json", where, f"expected image_path and ground_truth ({exc})")
            continue
        if not image.is_file():
            local.skip("missing_image", image, f"image listed in {where} not found")
            continue
        if not gt.is_file():
            local.skip("missing_gt", gt, f"ground truth listed in {where} not found")
            continue
        stem = image.stem
        seen[stem] = seen.get(stem, 0) + 1
        suffix = "" if seen[stem] == 1 else f"#{seen[stem]}"  # same name in two folders
        rows.append(
            segmentation_row(
                id=f"{source}/{split}/{stem}{suffix}",
                image=image,
                source=source,
                task="foreground",
                split=split,
                mask=gt,
            )
        )
    return finish_rows(rows, local, report)
