"""The samples of a run and its on-disk store: order and chunks, the per-sample records (JSONL,
appended and fsynced), their repair on resume, the run file, the lock, RLE masks, JSON files."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seg_r1.evaluation.config import (
    LOCK_FILE,
    MASKS_DIR,
    PREDICTIONS_FILE,
    RECORDS_DIR,
    RUN_FILE,
    EvalConfig,
    EvalError,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Sample:
    """One evaluation example: its position in the run, its id, metrics group and data row."""

    index: int
    id: str
    group: str
    row: dict[str, Any] = field(repr=False, hash=False, compare=False)

    @property
    def image_path(self) -> str:
        return str(self.row["image"]["path"])


def default_group(row: Mapping[str, Any]) -> str:
    """Metrics group of a row: ``"<source>_<split>"`` (e.g. ``"refcoco+_testA"``)."""
    return f"{row['source']}_{row['split']}"


def plain_rows(dataset: Any) -> list[dict[str, Any]]:
    """A :mod:`seg_r1.data` dataset as plain dicts with undecoded ``image``/``mask`` paths."""
    import datasets

    for column in ("image", "mask"):
        if column in dataset.column_names:
            dataset = dataset.cast_column(column, datasets.Image(decode=False))
    rows = dataset.to_list()
    for row in rows:
        if not row.get("image") or not row["image"].get("path"):
            raise EvalError(f"example {row.get('id')!r} has no image file path")
    return rows


def order_samples(
    rows: Sequence[Mapping[str, Any]],
    group_fn: Callable[[Mapping[str, Any]], str] = default_group,
    limit: int | None = None,
) -> list[Sample]:
    """Samples sorted by ``(image path, id)``; ``limit`` keeps the first ``limit`` of them.

    Raises:
        EvalError: duplicate ids.
    """
    ordered = sorted(rows, key=lambda r: (str(r["image"]["path"]), str(r["id"])))
    if limit is not None:
        ordered = ordered[:limit]
    ids = [str(r["id"]) for r in ordered]
    if len(set(ids)) != len(ids):
        raise EvalError("the dataset has duplicate example ids; every id must be unique")
    return [Sample(i, str(r["id"]), group_fn(r), dict(r)) for i, r in enumerate(ordered)]


def make_chunks(samples: Sequence[Sample], batch_size: int) -> list[list[Sample]]:
    """Consecutive fixed-size chunks (the last may be shorter)."""
    return [list(samples[i : i + batch_size]) for i in range(0, len(samples), batch_size)]


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def mask_relpath(sample_id: str) -> str:
    """``masks/<id>.png`` with every path component made file-system safe."""
    parts = [_UNSAFE.sub("_", p) for p in sample_id.split("/") if p]
    parts = [("_" + p if set(p) <= {"."} else p) for p in parts] or ["_"]
    return "/".join([MASKS_DIR, *parts[:-1], parts[-1] + ".png"])


# --------------------------------------------------------------------------- records on disk


def json_line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def repair_jsonl(path: Path) -> int:
    """Cut a torn last line (no trailing newline) off ``path``; return the bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # Walk back to the last newline.
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            data = f.read(end - start)
            cut = data.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        else:
            keep = 0
        f.truncate(keep)
    logger.warning("%s: removed a torn last line (%d bytes) left by an interrupted run", path,
                   size - keep)  # fmt: skip
    return size - keep


def read_records(records_dir: Path) -> dict[str, dict[str, Any]]:
    """Every record under ``records_dir`` by id (first occurrence wins; torn lines repaired).

    Raises:
        EvalError: a line that is not JSON in the middle of a file.
    """
    out: dict[str, dict[str, Any]] = {}
    if not records_dir.is_dir():
        return out
    for path in sorted(records_dir.glob("*.jsonl")):
        repair_jsonl(path)
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise EvalError(
                        f"{path}:{number} is not valid JSON ({exc}); delete the file (its samples "
                        "will be recomputed) or start over with --overwrite"
                    ) from exc
                out.setdefault(str(record["id"]), record)
    return out


@contextlib.contextmanager
def work_dir_lock(work_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``work_dir`` (released when the process exits, even killed)."""
    import fcntl

    work_dir.mkdir(parents=True, exist_ok=True)
    with open(work_dir / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise EvalError(
                f"another evaluation is running in {work_dir}; wait for it or use another "
                "output folder"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_run_file(work_dir: Path, config: EvalConfig, overwrite: bool) -> None:
    """Write ``run.json``, or check that an existing one matches ``config`` (resume)."""
    path = work_dir / RUN_FILE
    current = config.fingerprint()
    if overwrite:
        for name in (RECORDS_DIR, MASKS_DIR):
            shutil.rmtree(work_dir / name, ignore_errors=True)
        for name in (RUN_FILE, PREDICTIONS_FILE):
            (work_dir / name).unlink(missing_ok=True)
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        diff = {
            k: (previous.get(k), current.get(k))
            for k in sorted(set(previous) | set(current))
            if previous.get(k) != current.get(k)
        }
        if diff:
            details = "; ".join(f"{k}: was {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise EvalError(
                f"{work_dir} holds results of a run with other settings ({details}). Resume "
                "with the same settings, pass --overwrite to start over, or use another output."
            )
        return
    path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- per-sample work


def write_png_atomic(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(tmp, format="PNG")
    os.replace(tmp, path)


def write_json(path: str | Path, data: Any) -> Path:
    """Pretty JSON with sorted keys, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_jsonl(path: str | Path, records: Sequence[Mapping[str, Any]]) -> Path:
    """One JSON object per line, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(json_line(r) for r in records))
    os.replace(tmp, path)
    return path
