"""Supervised fine-tuning data in the FCoT schema.

FCoT (HF ``geshang/FCoT``, parquet with an ``image`` feature) and any local copy in the same
schema: each example has ``problem`` (the user text), ``image``, ``thinking`` (the reasoning)
and ``solution`` (the ``<bbox>``/``<points>``/``<labels>`` answer), and optionally
``system``. The training target is ``thinking + " " + solution`` (SPEC §2).

Accepted inputs for :func:`load_sft_dataset`:

* a parquet file, or a folder holding ``*.parquet`` files (searched recursively, e.g. the
  hub's ``data/train-*.parquet``); images embedded as bytes or given as paths;
* a ``.json`` file (a list of records, or an object with a ``"data"`` list) or a ``.jsonl``
  file, or a folder of them (top level only), with ``image`` (or ``images``: its first
  entry) a path: absolute, or relative to ``image_root`` if given, else to the JSON file's
  folder (then to its ``images/`` sub-folder).

Returned columns: ``id`` (str), ``problem``, ``image`` (``Image()``; files stay files),
``thinking``, ``solution``, ``system`` (``""`` when absent). Records with a missing field or
image are logged and skipped (``strict=True``: :class:`DatasetError`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from seg_r1.data.io import BadFile, inspect_image
from seg_r1.data.schema import (
    DatasetError,
    LoadReport,
    check_all,
    check_level,
    default_num_workers,
    finish_report,
)

logger = logging.getLogger(__name__)

SFT_REQUIRED: tuple[str, ...] = ("problem", "image", "thinking", "solution")
SFT_COLUMNS: tuple[str, ...] = ("id", "problem", "image", "thinking", "solution", "system")


def sft_features() -> Any:
    import datasets

    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "problem": datasets.Value("string"),
            "image": datasets.Image(),
            "thinking": datasets.Value("string"),
            "solution": datasets.Value("string"),
            "system": datasets.Value("string"),
        }
    )


def _records_from_json(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise ValueError("expected a list of records (or {'data': [...]})")
    return data


def _resolve_image(value: Any, json_dir: Path, image_root: Path | None) -> Path | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("path")
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    if path.is_absolute():
        return path
    bases = [image_root] if image_root is not None else [json_dir, json_dir / "images"]
    for base in bases:
        if (base / path).is_file():
            return base / path
    return bases[0] / path


def _load_json_inputs(
    files: list[Path], image_root: Path | None, check: str, local: LoadReport, workers: int
) -> Any:
    import datasets

    rows: list[dict[str, Any]] = []
    for file in files:
        try:
            records = _records_from_json(file)
        except (OSError, ValueError) as exc:
            local.skip("bad_json", file, f"cannot read SFT records ({exc})")
            continue
        for index, record in enumerate(records):
            where = f"{file} record {index}"
            if not isinstance(record, dict):
                local.skip("bad_record", where, "record is not an object")
                continue
            if "image" not in record and "images" in record:
                record = {**record, "image": record["images"]}
            missing = [k for k in SFT_REQUIRED if record.get(k) in (None, "", [])]
            if missing:
                local.skip("missing_field", where, f"missing field(s) {missing}")
                continue
            image = _resolve_image(record["image"], file.parent, image_root)
            if image is None:
                local.skip("bad_record", where, "'image' is not a path")
                continue
            rows.append(
                {
                    "id": str(record.get("id", f"{file.stem}/{index}")),
                    "problem": str(record["problem"]),
                    "image": str(image),
                    "thinking": str(record["thinking"]),
                    "solution": str(record["solution"]),
                    "system": str(record.get("system") or ""),
                }
            )

    def check_row(row: dict[str, Any]) -> BadFile | None:
        path = Path(row["image"])
        if not path.is_file():
            return BadFile("missing_image", "image file not found")
        try:
            inspect_image(path, check)
        except BadFile as bad:
            return bad
        return None

    problems = check_all(rows, check_row, f"checking {local.name}", workers)
    kept = []
    for row, bad in zip(rows, problems):
        if bad is not None:
            local.skip(bad.kind, row["image"], f"{bad.message} (record {row['id']})")
        else:
            kept.append(row)
    _check_unique([r["id"] for r in kept], files[0])
    columns = {c: [r[c] for r in kept] for c in SFT_COLUMNS}
    return datasets.Dataset.from_dict(columns, features=sft_features())


def _check_unique(ids: list[str], where: Path) -> None:
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DatasetError(f"duplicate SFT example id {dup!r}", where)


def _load_parquet_inputs(files: list[Path], image_root: Path | None, local: LoadReport) -> Any:
    import datasets
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables = [pq.read_table(f) for f in files]
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    missing = [c for c in SFT_REQUIRED if c not in table.column_names]
    if missing:
        raise DatasetError(f"SFT parquet lacks column(s) {missing}", files[0])
    bad = np.zeros(table.num_rows, dtype=bool)
    for name in SFT_REQUIRED:
        column = table.column(name)
        bad |= np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False), dtype=bool)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            empty = pc.fill_null(pc.equal(pc.utf8_length(column), 0), False)
            bad |= np.asarray(empty.to_numpy(zero_copy_only=False), dtype=bool)
    for i in np.flatnonzero(bad):
        local.skip(
            "missing_field", f"{files[0]} row {i}", "missing problem/image/thinking/solution"
        )
    if bad.any():
        table = table.filter(pa.array(~bad))
    # No cache files: the table is used in memory, the user's folder is never written to.
    ds = datasets.Dataset(table)
    image_type = ds.features["image"]
    if isinstance(image_type, datasets.Value) and image_type.dtype in ("string", "large_string"):
        base = image_root or files[0].parent
        ds = ds.map(
            lambda ex: {"image": str(base / ex["image"]) if ex["image"] else ex["image"]},
            keep_in_memory=True,
        )
    if not isinstance(ds.features["image"], datasets.Image):
        ds = ds.cast_column("image", datasets.Image())
    if "system" not in ds.column_names:
        ds = ds.add_column("system", [""] * len(ds))
    if "id" not in ds.column_names:
        ds = ds.add_column("id", [f"sft/{i}" for i in range(len(ds))])
    ds = ds.select_columns(list(SFT_COLUMNS))
    ds = ds.cast(sft_features())
    _check_unique(list(ds["id"]), files[0])
    return ds


def load_sft_dataset(
    path: str | os.PathLike[str],
    image_root: str | os.PathLike[str] | None = None,
    strict: bool = False,
    check: str = "fast",
    num_workers: int | None = None,
    report: LoadReport | None = None,
) -> Any:
    """An FCoT-schema SFT set as a :class:`datasets.Dataset` (inputs and columns: module doc)."""
    check_level(check)
    path = Path(path)
    root = Path(image_root) if image_root is not None else None
    local = LoadReport(name=f"SFT {path.name}", strict=strict)
    if path.is_dir():
        parquet = sorted(path.rglob("*.parquet"))
        jsons = sorted(
            p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".json", ".jsonl")
        )
    elif path.is_file():
        parquet = [path] if path.suffix.lower() == ".parquet" else []
        jsons = [path] if path.suffix.lower() in (".json", ".jsonl") else []
        if not parquet and not jsons:
            raise DatasetError("SFT data must be .parquet, .json or .jsonl", path)
    else:
        raise DatasetError("SFT data not found", path)
    if parquet and jsons:
        raise DatasetError("folder holds both parquet and JSON files; point at one of them", path)
    if parquet:
        ds = _load_parquet_inputs(parquet, root, local)
    elif jsons:
        workers = num_workers or default_num_workers()
        ds = _load_json_inputs(jsons, root, check, local, workers)
    else:
        raise DatasetError("no .parquet, .json or .jsonl file in the SFT folder", path)
    local.kept = len(ds)
    finish_report(local, report)
    return ds
