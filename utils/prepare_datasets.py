"""Build the training-stage manifests from the raw dataset folders.

Launch (from the repository root)::

    bash utils/prepare_datasets.sh                       # datasets/ -> datasets/manifests/
    python utils/prepare_datasets.py --root datasets --out datasets/manifests \
        --stages prerl,rl,sod --check fast [--strict]

Stages (SPEC §5): ``prerl`` = DIS5K train (DIS-TR), ``rl`` = COD10K train without NonCAM +
CAMO train, ``sod`` = DUTS-TR. Writes ``<out>/<stage>.jsonl`` (one example per line, paths
relative to ``--root``) and ``<out>/summary.json``, and prints the counts per source.
Absent datasets are reported and skipped (``--strict``: exit with an error instead, as for
any unreadable file). The dataset folders are only read: nothing in them is converted,
moved or deleted. Training reads the manifests through ``seg_r1.data.stage_manifest``.
"""

from __future__ import annotations

import argparse
import sys

from seg_r1.logs import setup_logging

try:
    from seg_r1.data import STAGES, DatasetError, prepare_stage_manifests
except ImportError as exc:  # the package is not installed in this interpreter
    sys.exit(f"{exc}: run `bash setup.sh` and activate its environment (or set PYTHON)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="datasets", help="folder holding the datasets")
    parser.add_argument("--out", default=None, help="output folder (default: <root>/manifests)")
    parser.add_argument(
        "--stages", default=",".join(STAGES), help=f"comma-separated subset of {list(STAGES)}"
    )
    parser.add_argument(
        "--check",
        default="fast",
        choices=["none", "fast", "full"],
        help="file checks: none (pair by name), fast (headers + every GT), full (decode all)",
    )
    parser.add_argument("--strict", action="store_true", help="fail on any skipped input")
    parser.add_argument("--num_workers", type=int, default=None, help="threads for file checks")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        print(f"unknown stage(s) {unknown}; choose from {list(STAGES)}", file=sys.stderr)
        return 2
    try:
        summary = prepare_stage_manifests(
            root=args.root,
            out=args.out,
            stages=stages,
            strict=args.strict,
            check=args.check,
            num_workers=args.num_workers,
        )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    written = 0
    for stage, info in summary.items():
        if "manifest" in info:
            written += 1
            print(f"{stage:6s} {info['total']:7d} examples -> {info['manifest']}")
        else:
            print(f"{stage:6s} not written: {info['error']}")
        for source, count in info["sources"].items():
            skipped = info["skipped"].get(source) or {}
            detail = f" (skipped: {skipped})" if skipped else ""
            print(f"       {source:10s} {count:7d}{detail}")
        for source, reason in info["absent"].items():
            print(f"       {source:10s}  absent, skipped: {reason}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
