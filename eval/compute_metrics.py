"""
    python eval/compute_metrics.py --pred_dir runs/preds/COD10K --gt_dir datasets/COD10K-v3/Test/GT_Object --output runs/metrics/COD10K.json --num_workers 2

Score a folder of predicted maps against a folder of GT masks with the COD/SOD suite.

Files are matched by stem and read as uint8 grey; predictions of another size are resized to the
GT's (``cv2.resize`` to the GT's (W, H), bilinear). Missing predictions, extra predictions and
files that do not decode are reported by name; any of them makes the run fail (exit 1, no JSON
written) unless ``--allow_missing``, which scores the readable pairs only. The JSON holds
``Smeasure, wFmeasure, MAE, adpEm, meanEm, maxEm, adpFm, meanFm, maxFm`` plus counts and the
offending names; the markdown table (the field's column order) goes to stdout. The metrics live in
``seg_r1.metrics``; this script only parses arguments and reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from seg_r1.logs import setup_logging
from seg_r1.metrics import SOD_KEYS, format_sod_table
from seg_r1.metrics.folders import evaluate_folders

logger = logging.getLogger("compute_metrics")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Score predicted maps with the COD/SOD suite.")
    parser.add_argument("--pred_dir", required=True, type=Path, help="predicted maps (uint8 grey)")
    parser.add_argument("--gt_dir", required=True, type=Path, help="GT masks (foreground > 128)")
    parser.add_argument("--output", type=Path, help="write the scores as JSON here")
    parser.add_argument(
        "--allow_missing",
        action="store_true",
        help="score the readable pairs even if predictions are missing/extra/unreadable",
    )
    parser.add_argument(
        "--num_workers", type=int, default=0, help="worker processes (0 = this process)"
    )
    parser.add_argument("--name", help="row name in the table (default: the prediction folder's)")
    args = parser.parse_args(argv)
    if args.num_workers < 0:
        parser.error("--num_workers must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    evaluation = evaluate_folders(args.pred_dir, args.gt_dir, num_workers=args.num_workers)
    match = evaluation.match
    problems = {
        "missing (GT without prediction)": match.missing,
        "extra (prediction without GT)": match.extra,
        "unreadable": evaluation.unreadable,
    }
    for kind, names in problems.items():
        if names:
            log = logger.warning if args.allow_missing else logger.error
            log("%d %s: %s", len(names), kind, ", ".join(names))
    if not evaluation.complete and not args.allow_missing:
        logger.error("not scoring an incomplete set; fix the files or pass --allow_missing")
        return 1
    if len(evaluation.metrics) == 0:
        logger.error("no readable (prediction, GT) pair in %s / %s", args.pred_dir, args.gt_dir)
        return 1

    scores = evaluation.metrics.result()
    report = {key: scores[key] for key in SOD_KEYS}
    report.update(
        num_images=len(evaluation.metrics),
        num_missing=len(match.missing),
        num_extra=len(match.extra),
        num_unreadable=len(evaluation.unreadable),
        missing=match.missing,
        extra=match.extra,
        unreadable=evaluation.unreadable,
        pred_dir=str(args.pred_dir),
        gt_dir=str(args.gt_dir),
    )
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        logger.info("wrote %s", args.output)
    name = args.name or args.pred_dir.resolve().name
    print(format_sod_table({name: scores}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
