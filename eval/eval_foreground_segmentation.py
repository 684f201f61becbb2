"""Foreground (COD / SOD) evaluation: one mask PNG per image, the raw answers, the metrics.

Launch (from the repository root; the seed's arguments plus ours)::

    python eval/eval_foreground_segmentation.py \
        --model_path path/to/model \
        --batch_size 32 \
        --prompt_path eval/cod10k_test.jsonl --data_root . \
        --gpu_ids 0,1,2,3 \
        --vis_output_path eval/output/ \
        --dataset COD10K

``--prompt_path`` is the seed's list (``{"image_path", "ground_truth"}`` per line, written by
``utils/prepare_eval_datasets.py``) with paths relative to ``--data_root`` (default ``.``).
Without it the dataset is read from its real layout: ``--dataset COD10K --data_root datasets
--split test`` (any name of ``seg_r1.data.FOREGROUND_DATASETS``).

CPU run on the tiny checkpoints (``python -m seg_r1.tiny --out runs/tiny``) and synthetic data
(``python utils/make_synthetic_dataset.py --out runs/syn --n 16 --split test``)::

    python eval/eval_foreground_segmentation.py --model_path runs/tiny/policy \
        --dataset synthetic --data_root runs/syn --vis_output_path runs/eval_fg \
        --device cpu --segmenter classical --max_new_tokens 64 --num_workers 2

Outputs in ``--vis_output_path``: ``<dataset>/masks/...png`` (0/255, original resolution),
``<dataset>/predictions.jsonl`` (raw answer, parsed prompts, per-image I/U per line),
``<dataset>_metrics.json`` + ``<dataset>_metrics.md`` (Sα, Fβw, Fβ, Eφ, MAE, ... and gIoU/cIoU)
and ``<dataset>_cases.png`` (worst/best images by IoU). Interrupted runs resume when the same
command is run again. Frame 768 by default (SPEC §2).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from seg_r1.data import LoadReport, load_eval_jsonl, load_foreground_dataset
from seg_r1.evaluation import (
    eval_config,
    eval_parser,
    parse_eval_args,
    run_from_args,
    setup_logging,
    write_foreground_report,
)

logger = logging.getLogger("eval_foreground")


def parse_args(argv: list[str] | None = None) -> tuple:
    """``(pipeline, run, data)``: :class:`PipelineConfig`, :class:`RunArguments`, data args."""
    parser = eval_parser(__doc__)
    data = parser.add_argument_group("data")
    data.add_argument("--prompt_path", default=None, help="eval JSONL (image_path, ground_truth)")
    data.add_argument(
        "--data_root",
        default=None,
        help="root of the JSONL's relative paths (default .), or without --prompt_path the "
        "datasets folder (default datasets)",
    )
    data.add_argument("--dataset", default=None, help="dataset name (default: the JSONL's stem)")
    data.add_argument("--split", default="test", help="split when reading the real layout")
    data.add_argument("--vis_output_path", required=True, help="output folder")
    pipeline, run, args = parse_eval_args(parser, argv)
    if args.prompt_path is None and args.dataset is None:
        parser.error("give --prompt_path (an eval JSONL) or --dataset (read from --data_root)")
    return pipeline, run, args


def main(argv: list[str] | None = None) -> int:
    pipeline, run, args = parse_args(argv)
    setup_logging(run.log_level)
    if args.prompt_path is not None:
        name = args.dataset or Path(args.prompt_path).stem
        report = LoadReport(name=name, strict=run.strict)
        dataset = load_eval_jsonl(
            args.prompt_path,
            root_dir=args.data_root or ".",
            source=name,
            strict=run.strict,
            report=report,
        )
    else:
        name = args.dataset
        report = LoadReport(name=name, strict=run.strict)
        dataset = load_foreground_dataset(
            name,
            root=args.data_root or "datasets",
            split=args.split,
            strict=run.strict,
            report=report,
        )
    out = Path(args.vis_output_path)
    config = eval_config(pipeline, run, "foreground", save_masks=True)
    records = run_from_args(run, dataset, config, out / name)
    table = write_foreground_report(
        out, name, records, dataset, config, report, report_cases=run.report_cases
    )
    print(table)
    logger.info("metrics: %s", out / f"{name}_metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
