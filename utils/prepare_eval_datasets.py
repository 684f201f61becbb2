"""Write the foreground evaluation list: one ``{"image_path", "ground_truth"}`` per line.

Launch (from the repository root)::

    python utils/prepare_eval_datasets.py \
        --image_dir datasets/COD10K-v3/Test/Image \
        --gt_dir datasets/COD10K-v3/Test/GT_Object \
        --output_file eval/cod10k_test.jsonl \
        --root_dir .

Each image ``name.<ext>`` is paired with ``<gt_dir>/name.png``; paths are written relative
to ``--root_dir``. Images without GT, GT without image, unreadable/truncated images, size
mismatches and non-binary masks are reported and skipped (``--strict``: error). COD10K's
``*NonCAM*`` images are left out by default (``--exclude`` replaces the patterns;
``--exclude ''`` keeps everything). Only the output file is written.
"""

from __future__ import annotations

import argparse
import sys

from seg_r1.logs import setup_logging

try:
    from seg_r1.data import DatasetError, write_eval_jsonl
except ImportError as exc:  # the package is not installed in this interpreter
    sys.exit(f"{exc}: run `bash setup.sh` and activate its environment (or set PYTHON)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image_dir", required=True, help="folder of images")
    parser.add_argument("--gt_dir", required=True, help="folder of ground-truth masks (.png)")
    parser.add_argument("--output_file", required=True, help="JSONL file to write")
    parser.add_argument("--root_dir", default=".", help="paths are written relative to it")
    parser.add_argument(
        "--exclude",
        nargs="*",
        default=["*NonCAM*"],
        help="image name patterns to leave out (default: COD10K's NonCAM images)",
    )
    parser.add_argument(
        "--check", default="fast", choices=["none", "fast", "full"], help="file checks"
    )
    parser.add_argument("--strict", action="store_true", help="fail on any skipped input")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    try:
        count = write_eval_jsonl(
            args.image_dir,
            args.gt_dir,
            args.output_file,
            root_dir=args.root_dir,
            exclude=[p for p in args.exclude if p],
            strict=args.strict,
            check=args.check,
        )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {count} pairs to {args.output_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
