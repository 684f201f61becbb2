"""Referring segmentation (RefCOCO / RefCOCO+ / RefCOCOg): gIoU and cIoU per split.

Launch (from the repository root; the seed's arguments plus ours)::

    python eval/eval_referring_segmentation.py \
        --data_root datasets \
        --image_root datasets/Refer_Segm/coco_2014/train2014 \
        --split all \
        --output_file eval/log/refseg_results.json \
        --model_path /path/to/seg-r1/weights

``--split all`` = refcoco and refcoco+ (``unc``) val/testA/testB and refcocog (``umd``)
val/test; or a comma list such as ``refcoco_val,refcoco+_testA,refcocog_test``.

Protocol (SPEC §7): EVERY referring expression is one sample (the official script draws one
random expression per image, unseeded -- not reproducible, so not offered). Prompt
``Identify and segment <expression>`` with the evaluation system prompt, frame 1024, greedy
decoding. gIoU = mean per-expression IoU, cIoU = sum of intersections / sum of unions.

CPU run on tiny checkpoints and synthetic data (see eval/README.md)::

    python utils/make_synthetic_dataset.py --task referring --out runs/syn_ref --n 8 --split val
    python eval/eval_referring_segmentation.py --data_root runs/syn_ref --split refcoco_val \
        --output_file runs/eval_ref/results.json --model_path runs/tiny/policy \
        --device cpu --segmenter classical --max_new_tokens 64

Outputs: ``--output_file`` (JSON: per split gIoU, cIoU, n; fractions in [0, 1]), the same
stem with ``.md`` (table, percent) and a work folder of the same stem holding the per-sample
records (``predictions.jsonl``) and ``cases_<split>.png`` (worst/best expressions by IoU).
Re-running the same command resumes an interrupted run.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import datasets

from seg_r1.data import EVAL_SPLITS, REFER_DATASETS, LoadReport, load_refer_dataset
from seg_r1.evaluation import (
    EXPECTED_SAMPLES,
    eval_config,
    eval_parser,
    parse_eval_args,
    run_from_args,
    setup_logging,
    split_coverage,
    write_iou_report,
)

logger = logging.getLogger("eval_referring")


def parse_splits(text: str) -> list[tuple[str, str]]:
    """``"all"`` or ``"refcoco_val,refcoco+_testA"`` -> ``[(dataset, split), ...]``."""
    if text == "all":
        return [(name, split) for name, splits in EVAL_SPLITS.items() for split in splits]
    out = []
    for item in (part.strip() for part in text.split(",")):
        name, _, split = item.rpartition("_")
        if name not in REFER_DATASETS or not split:
            raise SystemExit(
                f"--split: {item!r} is not <dataset>_<split> with dataset in {REFER_DATASETS} "
                "(e.g. refcoco_val, refcoco+_testA, refcocog_test) or 'all'"
            )
        out.append((name, split))
    return out


def parse_args(argv: list[str] | None = None) -> tuple:
    """``(pipeline, run, data)``: :class:`PipelineConfig`, :class:`RunArguments`, data args."""
    parser = eval_parser(__doc__)
    data = parser.add_argument_group("data")
    data.add_argument("--data_root", default="datasets", help="folder holding Refer_Segm/")
    data.add_argument("--image_root", default=None, help="COCO train2014 images folder")
    data.add_argument("--split", default="all", help="'all' or e.g. refcoco_val,refcocog_test")
    data.add_argument("--output_file", required=True, help="results JSON")
    return parse_eval_args(parser, argv)


def main(argv: list[str] | None = None) -> int:
    pipeline, run, args = parse_args(argv)
    setup_logging(run.log_level)
    splits = parse_splits(args.split)
    groups = [f"{name}_{split}" for name, split in splits]
    reports = {group: LoadReport(name=group, strict=run.strict) for group in groups}
    parts = [
        load_refer_dataset(
            name,
            split,
            root=args.data_root,
            image_root=args.image_root,
            strict=run.strict,
            report=reports[group],
        )
        for (name, split), group in zip(splits, groups)
    ]
    dataset = datasets.concatenate_datasets(parts)
    output = Path(args.output_file)
    work_dir = output.with_suffix("")
    config = eval_config(pipeline, run, "referring")
    records = run_from_args(run, dataset, config, work_dir)
    expected = {g: EXPECTED_SAMPLES.get(s) for g, s in zip(groups, splits)}
    coverages = split_coverage(records, dataset, reports, expected)
    header = {
        "task": "referring",
        "protocol": "every referring expression; gIoU = mean IoU, cIoU = sum I / sum U",
    }
    table = write_iou_report(
        output, records, groups, dataset, config, header,
        title="{group}: referring segmentation (frame {frame})",
        report_cases=run.report_cases, coverages=coverages,
    )  # fmt: skip
    print(table)
    logger.info("results: %s", output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
