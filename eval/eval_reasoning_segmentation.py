"""Reasoning segmentation (ReasonSeg): gIoU and cIoU per split.

Launch (from the repository root; the seed's arguments plus ours)::

    python eval/eval_reasoning_segmentation.py \
        --data_root datasets \
        --split test,val \
        --output_file eval/log/reasonseg_results.json \
        --model_path /path/to/seg-r1/weights

Protocol (SPEC §7): every ReasonSeg sample exactly once (the official loader draws samples
with replacement), with its first query (``--queries all``: one sample per query text).
Prompts: ``<sentence> Identify and segment it.`` for sentence queries, ``Identify and segment
<class name, lower-case>.`` for short ones; frame 1024; greedy decoding. Pixels labelled
"ignore" (255) count as background (``--ignore_mode background``, the standard) or are left
out of both intersection and union (``--ignore_mode exclude``).

CPU run on tiny checkpoints and synthetic data (see eval/README.md)::

    python utils/make_synthetic_dataset.py --task reasoning --out runs/syn_rs --n 8 --split val
    python eval/eval_reasoning_segmentation.py --data_root runs/syn_rs --split val \
        --output_file runs/eval_rs/results.json --model_path runs/tiny/policy \
        --device cpu --segmenter classical --max_new_tokens 64

Outputs: ``--output_file`` (JSON: per split gIoU, cIoU, n; fractions in [0, 1]), the same
stem with ``.md`` (table, percent) and a work folder of the same stem with the per-sample
records (``predictions.jsonl``) and ``cases_<split>.png``. Re-running resumes.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import datasets

from seg_r1.data import LoadReport, load_reasonseg_dataset
from seg_r1.evaluation import (
    EXPECTED_SAMPLES,
    IGNORE_MODES,
    eval_config,
    eval_parser,
    parse_eval_args,
    run_from_args,
    setup_logging,
    split_coverage,
    write_iou_report,
)

logger = logging.getLogger("eval_reasoning")


def split_of(row: dict) -> str:
    """The metrics group of a ReasonSeg row: its split."""
    return row["split"]


def parse_args(argv: list[str] | None = None) -> tuple:
    """``(pipeline, run, data)``: :class:`PipelineConfig`, :class:`RunArguments`, data args."""
    parser = eval_parser(__doc__)
    data = parser.add_argument_group("data")
    data.add_argument("--data_root", default="datasets", help="folder holding ReasonSeg/")
    data.add_argument("--split", default="test,val", help="comma list of ReasonSeg splits")
    data.add_argument("--output_file", required=True, help="results JSON")
    data.add_argument(
        "--ignore_mode",
        default="background",
        choices=IGNORE_MODES,
        help="label-255 pixels: count as background (standard) or exclude from I and U",
    )
    data.add_argument(
        "--queries",
        default="first",
        choices=["first", "all"],
        help="first = one sample per image (standard); all = one per query text",
    )
    return parse_eval_args(parser, argv)


def main(argv: list[str] | None = None) -> int:
    pipeline, run, args = parse_args(argv)
    setup_logging(run.log_level)
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    if not splits:
        raise SystemExit("--split is empty; e.g. --split test,val")
    reports = {s: LoadReport(name=f"ReasonSeg {s}", strict=run.strict) for s in splits}
    parts = [
        load_reasonseg_dataset(
            s, root=args.data_root, queries=args.queries, strict=run.strict, report=reports[s]
        )
        for s in splits
    ]
    dataset = datasets.concatenate_datasets(parts)
    output = Path(args.output_file)
    work_dir = output.with_suffix("")
    config = eval_config(pipeline, run, "reasoning", ignore_mode=args.ignore_mode)
    records = run_from_args(run, dataset, config, work_dir, group_fn=split_of)
    # The standard sizes count one sample per image (the first query).
    expected = {
        s: EXPECTED_SAMPLES.get(("ReasonSeg", s)) if args.queries == "first" else None
        for s in splits
    }
    coverages = split_coverage(records, dataset, reports, expected, group_fn=split_of)
    header = {
        "task": "reasoning",
        "protocol": f"every sample once ({args.queries} query); ignore pixels: "
        f"{args.ignore_mode}; gIoU = mean IoU, cIoU = sum I / sum U",
        "config": {"queries": args.queries},
    }
    table = write_iou_report(
        output, records, splits, dataset, config, header,
        title="ReasonSeg {group}: reasoning segmentation (frame {frame})",
        report_cases=run.report_cases, coverages=coverages,
    )  # fmt: skip
    print(table)
    logger.info("results: %s", output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
