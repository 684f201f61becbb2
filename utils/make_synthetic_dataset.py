"""Generate a synthetic segmentation dataset with exact masks, in a real dataset layout.

Launch (from the repository root)::

    python utils/make_synthetic_dataset.py --out datasets/synthetic --n 200 --seed 0 \
        --task foreground --size 256 --split train

``--task foreground`` writes COD10K-like ``<out>/Train/Image/*.jpg`` + ``GT_Object/*.png``
(``--split test``: ``Test/``), read back with
``seg_r1.data.load_foreground_dataset("synthetic", root=<out>, split=...)``.
``--task referring`` writes REFER-like ``<out>/Refer_Segm/<--dataset>/refs(unc).p`` +
``instances.json`` + COCO-named images (``--split`` is the REFER split name, e.g. ``val``,
``testA``; other splits already in the files are kept), read with
``load_refer_dataset(<--dataset>, <--split>, root=<out>)``. ``--task reasoning`` writes
ReasonSeg-like ``<out>/ReasonSeg/<split>/*.jpg|json``. The same seed gives byte-identical
files. The folder must be empty or hold only earlier synthetic output.
"""

from __future__ import annotations

import argparse
import sys
import time

from seg_r1.logs import setup_logging

try:
    from seg_r1.data import DatasetError
    from seg_r1.data.synthetic_trees import (
        write_foreground_dataset,
        write_reasoning_dataset,
        write_referring_dataset,
    )
except ImportError as exc:  # the package is not installed in this interpreter
    sys.exit(f"{exc}: run `bash setup.sh` and activate its environment (or set PYTHON)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, default=100, help="number of images")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--task", default="foreground", choices=["foreground", "referring", "reasoning"]
    )
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument(
        "--split",
        default="train",
        help="foreground: train | test; referring: REFER split (val, testA, ...); "
        "reasoning: ReasonSeg split folder",
    )
    parser.add_argument("--dataset", default="refcoco", help="referring: REFER dataset name")
    parser.add_argument(
        "--camouflage_ratio", type=float, default=0.5, help="foreground: share of COD scenes"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    start = time.perf_counter()
    try:
        if args.task == "foreground":
            write_foreground_dataset(
                args.out, args.n, args.seed, args.size, args.split, args.camouflage_ratio
            )
            what = f"{args.n} foreground scenes"
        elif args.task == "referring":
            count = write_referring_dataset(
                args.out, args.n, args.seed, args.size, args.split, args.dataset
            )
            what = f"{args.n} referring scenes ({count} expressions)"
        else:
            write_reasoning_dataset(args.out, args.n, args.seed, args.size, args.split)
            what = f"{args.n} reasoning samples"
    except (DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    print(f"wrote {what} to {args.out} in {elapsed:.1f} s ({args.n / max(elapsed, 1e-9):.0f}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
