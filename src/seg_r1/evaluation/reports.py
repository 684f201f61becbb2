"""What a run reports: gIoU/cIoU and the SOD suite from the records, what the run covered
(``n_evaluated``, skips by reason, the standard sizes), the markdown tables, the case grids
and the result files of each task."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seg_r1.answer import parse_answer
from seg_r1.data import load_image, load_mask
from seg_r1.data.io import decode_rle
from seg_r1.evaluation.config import (
    DEFAULT_REPORT_CASES,
    EvalConfig,
    EvalError,
    config_summary,
)
from seg_r1.evaluation.records import default_group, plain_rows, write_json
from seg_r1.metrics import IoUAccumulator, SODMetrics, format_sod_table
from seg_r1.visualize import Case, case_grid, save_png

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- metrics


def iou_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """gIoU (mean per-sample IoU), cIoU (sum of intersections / sum of unions), counts and
    answer-format rates of ``records`` (in their order)."""
    acc = IoUAccumulator()
    for record in records:
        acc.add(record["intersection"], record["union"])
    result = dict(acc.result())
    n = len(records)
    result["n"] = n
    result["format_ok_rate"] = sum(r["answer"]["format_ok"] for r in records) / max(n, 1)
    result["answer_ok_rate"] = sum(r["answer"]["ok"] for r in records) / max(n, 1)
    return result


def grouped_iou_summary(
    records: Sequence[Mapping[str, Any]], groups: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """:func:`iou_summary` per ``group`` (in ``groups`` order, default first appearance)."""
    by_group: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_group.setdefault(record["group"], []).append(record)
    order = list(groups) if groups is not None else list(by_group)
    return {g: iou_summary(by_group[g]) for g in order if g in by_group}


def foreground_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """COD/SOD metrics of the records' predicted masks against their ground truth, in
    evaluation order, plus :func:`iou_summary`'s numbers.

    Both masks come from the records (``mask_rle``, ``gt_rle``): the ground truth was read
    ONCE per sample, by the one GT rule (:func:`seg_r1.metrics.binarize_gt`, ``> 128``), when
    the sample was evaluated, so IoU and the SOD metrics see the same binary GT. A binary
    prediction is the same map to the metrics as its 0/255 PNG (``masks/<id>.png``), so the
    numbers equal the toolbox's run on the written PNGs and the GT files.
    """
    sod = SODMetrics()
    for record in records:
        if "gt_rle" not in record:
            raise EvalError(
                f"record {record['id']} has no ground truth (written by an older version); "
                "re-run with --overwrite"
            )
        sod.update(decode_rle(record["mask_rle"]), decode_rle(record["gt_rle"]))
    result: dict[str, Any] = dict(sod.result())
    result.update(iou_summary(records))
    return result


#: Samples a complete run evaluates on the standard splits (SPEC §10): every RefCOCO/+/g
#: expression of the ``unc`` / ``umd`` splits, every ReasonSeg sample once (first query).
EXPECTED_SAMPLES: dict[tuple[str, str], int] = {
    ("refcoco", "val"): 10834,
    ("refcoco", "testA"): 5657,
    ("refcoco", "testB"): 5095,
    ("refcoco+", "val"): 10758,
    ("refcoco+", "testA"): 5726,
    ("refcoco+", "testB"): 4889,
    ("refcocog", "val"): 4896,
    ("refcocog", "test"): 9602,
    ("ReasonSeg", "val"): 200,
    ("ReasonSeg", "test"): 779,
}


def coverage(
    n_evaluated: int,
    skipped: Mapping[str, int] | None = None,
    expected: int | None = None,
) -> dict[str, Any]:
    """What a split's run covered: ``n_evaluated``, ``n_skipped`` with ``skipped`` by reason
    (from the loader's :attr:`seg_r1.data.LoadReport.skipped_samples`, plus ``limit`` for
    samples left out by ``--limit``), ``n_expected`` (a standard split's size, else ``None``)
    and ``complete`` -- nothing skipped and, where a size is known, exactly that many
    evaluated."""
    skipped = {k: int(v) for k, v in sorted((skipped or {}).items()) if v}
    n_skipped = sum(skipped.values())
    complete = n_skipped == 0 and (expected is None or n_evaluated == expected)
    return {
        "n_evaluated": int(n_evaluated),
        "n_skipped": n_skipped,
        "skipped": skipped,
        "n_expected": expected,
        "complete": bool(complete),
    }


def coverage_warning(name: str, cov: Mapping[str, Any]) -> str | None:
    """A loud one-line warning for an incomplete split (``None`` when complete)."""
    if cov["complete"]:
        return None
    text = f"INCOMPLETE {name}: evaluated {cov['n_evaluated']:,}"
    if cov["n_expected"] is not None:
        text += f" of the standard {cov['n_expected']:,} samples"
    if cov["n_skipped"]:
        detail = ", ".join(f"{k} {v}" for k, v in cov["skipped"].items())
        text += f"; skipped {cov['n_skipped']:,} ({detail})"
    return text + " -- not comparable with published numbers"


def split_coverage(
    records: Sequence[Mapping[str, Any]],
    dataset: Any,
    reports: Mapping[str, Any],
    expected: Mapping[str, int | None],
    group_fn: Callable[[Mapping[str, Any]], str] = default_group,
) -> dict[str, dict[str, Any]]:
    """:func:`coverage` per group: ``reports`` maps a group to its loader's
    :class:`~seg_r1.data.LoadReport`, ``expected`` to its standard size (or ``None``).
    Samples of ``dataset`` without a record (``--limit``) count as skipped for ``limit``."""
    in_dataset: dict[str, int] = {}
    for row in plain_rows(dataset):
        group = group_fn(row)
        in_dataset[group] = in_dataset.get(group, 0) + 1
    evaluated: dict[str, int] = {}
    for record in records:
        evaluated[record["group"]] = evaluated.get(record["group"], 0) + 1
    out = {}
    for group in dict.fromkeys([*reports, *in_dataset, *expected]):
        report = reports.get(group)
        skipped = dict(report.skipped_samples) if report is not None else {}
        left_out = in_dataset.get(group, 0) - evaluated.get(group, 0)
        if left_out:
            skipped["limit"] = left_out
        out[group] = coverage(evaluated.get(group, 0), skipped, expected.get(group))
    return out


def warn_incomplete(coverages: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Log and return the :func:`coverage_warning` of every incomplete group."""
    lines = []
    for name, cov in coverages.items():
        line = coverage_warning(name, cov)
        if line is not None:
            logger.warning("%s", line)
            lines.append(line)
    return lines


def iou_table(results: Mapping[str, Mapping[str, Any]], title: str = "split") -> str:
    """Markdown table of :func:`grouped_iou_summary` (gIoU/cIoU in percent, 2 decimals; ``n``
    shows ``evaluated / expected`` where a standard size is known)."""
    lines = [
        f"| {title} | n | gIoU | cIoU | format ok |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        n = f"{r['n']}" if r.get("n_expected") is None else f"{r['n']} / {r['n_expected']}"
        lines.append(
            f"| {name} | {n} | {100 * r['gIoU']:.2f} | {100 * r['cIoU']:.2f} "
            f"| {100 * r['format_ok_rate']:.1f}% |"
        )
    return "\n".join(lines) + "\n"


def select_cases(
    records: Sequence[Mapping[str, Any]], k: int = DEFAULT_REPORT_CASES
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The ``k`` worst and ``k`` best records by IoU (ties by id); disjoint."""
    by_iou = sorted(records, key=lambda r: (r["iou"], r["id"]))
    worst = by_iou[:k]
    taken = {r["id"] for r in worst}
    best = [r for r in sorted(records, key=lambda r: (-r["iou"], r["id"])) if r["id"] not in taken]
    return worst, best[:k]


def write_case_report(
    path: str | Path,
    records: Sequence[Mapping[str, Any]],
    samples: Mapping[str, Mapping[str, Any]],
    frame_size: int,
    k: int = DEFAULT_REPORT_CASES,
    title: str = "",
    coordinates: str = "frame",
) -> Path | None:
    """PNG grid of the worst and best cases (image + prompts | GT | prediction + prompts).

    ``samples`` maps id -> data row. Returns the path, or ``None`` when ``k`` is 0.
    """

    if k <= 0 or not records:
        return None

    def case(record: Mapping[str, Any]) -> Case:
        row = samples[record["id"]]
        image = np.asarray(load_image(row))
        answer = parse_answer(record["completion"], frame_size, coordinates=coordinates)
        return Case(
            image=image,
            gt=load_mask(row),
            pred=decode_rle(record["mask_rle"]),
            answer=answer,
            title=f"{record['id']}  IoU {record['iou']:.3f}"
            + ("" if answer.ok else f"  ({answer.error or 'unusable answer'})"),
            query=str(record.get("query") or ""),
        )

    worst, best = select_cases(records, k)
    grid = case_grid(
        [(f"worst {len(worst)} by IoU", [case(r) for r in worst]),
         (f"best {len(best)} by IoU", [case(r) for r in best])],
        title=title,
    )  # fmt: skip
    return save_png(path, grid)


def samples_by_id(dataset: Any) -> dict[str, dict[str, Any]]:
    """id -> plain row (undecoded paths), for reports."""
    return {str(r["id"]): r for r in plain_rows(dataset)}


def write_iou_report(
    output: str | Path,
    records: Sequence[Mapping[str, Any]],
    groups: Sequence[str],
    dataset: Any,
    config: EvalConfig,
    header: Mapping[str, Any],
    title: str,
    report_cases: int = DEFAULT_REPORT_CASES,
    coverages: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The outputs of a referring / reasoning run; returns the markdown table.

    Writes ``output`` (JSON: ``header`` + per-group :func:`grouped_iou_summary` results, each
    with its :func:`coverage` when ``coverages`` has it, ``complete`` overall +
    :func:`config_summary` + the records' path), the same stem with ``.md`` (the table, then
    a warning line per incomplete group), and ``cases_<group>.png`` per group in the work
    folder (``output`` without suffix). ``title`` is formatted with ``group`` and ``frame``
    for each case grid.
    """
    output = Path(output)
    work_dir = output.with_suffix("")
    results = grouped_iou_summary(records, groups)
    coverages = dict(coverages or {})
    for group, cov in coverages.items():
        if group in results:
            results[group].update(cov)
        else:  # every sample of the split was skipped
            results[group] = dict(cov)
    summary = dict(header)
    summary["results"] = results
    summary["complete"] = all(cov["complete"] for cov in coverages.values())
    summary["config"] = config_summary(config) | dict(summary.get("config", {}))
    summary["predictions"] = str(work_dir / "predictions.jsonl")
    write_json(output, summary)
    warnings = warn_incomplete(coverages)
    table = iou_table({g: r for g, r in results.items() if "gIoU" in r})
    table += "".join(f"\n**{line}**\n" for line in warnings)
    output.with_suffix(".md").write_text(table, encoding="utf-8")
    rows = samples_by_id(dataset)
    for group in (g for g, r in results.items() if "gIoU" in r):
        write_case_report(
            work_dir / f"cases_{group}.png",
            [r for r in records if r["group"] == group],
            rows,
            config.frame_size,
            k=report_cases,
            title=title.format(group=group, frame=config.frame_size),
            coordinates=config.coordinates or "frame",
        )
    return table


def write_foreground_report(
    out: str | Path,
    name: str,
    records: Sequence[Mapping[str, Any]],
    dataset: Any,
    config: EvalConfig,
    load_report: Any,
    report_cases: int = DEFAULT_REPORT_CASES,
) -> str:
    """The outputs of a foreground (COD/SOD) run; returns the markdown text.

    Writes ``<out>/<name>_metrics.json`` (:func:`foreground_summary` + :func:`coverage` from
    the loader's ``load_report`` (:class:`seg_r1.data.LoadReport`), ``complete``,
    :func:`config_summary`, the masks' and records' paths), ``<name>_metrics.md`` (the SOD
    table, the IoU line, a warning per incomplete run) and ``<name>_cases.png``.
    """
    out = Path(out)
    work_dir = out / name
    metrics = foreground_summary(records)
    skipped = dict(load_report.skipped_samples)
    if len(records) < len(dataset):  # --limit
        skipped["limit"] = len(dataset) - len(records)
    cov = coverage(len(records), skipped)
    metrics.update(cov)
    warnings = warn_incomplete({name: cov})
    result = {
        "dataset": name,
        "task": "foreground",
        "complete": cov["complete"],
        "metrics": metrics,
        "config": config_summary(config),
        "masks": str(work_dir / "masks"),
        "predictions": str(work_dir / "predictions.jsonl"),
    }
    write_json(out / f"{name}_metrics.json", result)
    text = format_sod_table({name: metrics}) + "\n"
    text += (
        f"\ngIoU {100 * metrics['gIoU']:.2f}, cIoU {100 * metrics['cIoU']:.2f}, "
        f"n {metrics['n']}, format ok {100 * metrics['format_ok_rate']:.1f}%\n"
    )
    text += "".join(f"\n**{line}**\n" for line in warnings)
    (out / f"{name}_metrics.md").write_text(text, encoding="utf-8")
    grid = write_case_report(
        out / f"{name}_cases.png",
        records,
        samples_by_id(dataset),
        config.frame_size,
        k=report_cases,
        title=f"{name}: foreground segmentation (frame {config.frame_size})",
        coordinates=config.coordinates or "frame",
    )
    if grid is not None:
        logger.info("visual report: %s", grid)
    return text
