"""
    python benchmarks/bench_synthetic.py --n 100 --sizes 256 768 --repeats 3

Synthetic scene throughput (``seg_r1.data.synthetic``): scenes drawn per second, and scenes
written per second as a COD10K-layout tree (JPEG image + PNG mask each), for each size. The
baseline, measured in the same run, is the file writing alone: the same number of JPEG + PNG
files of the same size written with the same encoders from constant arrays, so the ratio
``write / files-only`` says how much the drawing adds to the I/O. CPU time of this process
(``time.process_time``, best of ``--repeats``) is reported beside wall time, so the figures hold
on a busy machine; peak RSS (``ru_maxrss``) at the end. Moved here from a unit test: speed is
measured, not asserted.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from seg_r1.data.synthetic import synthetic_scenes
from seg_r1.data.synthetic_trees import write_foreground_dataset


def _best(fn, repeats: int) -> tuple[float, float]:
    """(best CPU seconds, best wall seconds) of ``repeats`` calls of ``fn``."""
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(cpu), min(wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--n", type=int, default=100, help="scenes per measurement")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 768])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_foreground_dataset(Path(tmp) / "warm", n=2, seed=0, size=64)  # imports, caches
        print(
            f"{'size':>5} {'draw/s':>9} {'write/s':>9} {'files-only/s':>13} {'time write/files':>18}"
        )
        for size in args.sizes:
            draw = _best(
                lambda s=size: list(synthetic_scenes(args.n, seed=0, size=s)), args.repeats
            )
            write = _best(
                lambda s=size: write_foreground_dataset(Path(tmp) / "fg", n=args.n, seed=0, size=s),
                args.repeats,
            )
            image = np.full((size, size, 3), 127, np.uint8)
            mask = np.zeros((size, size), np.uint8)
            out = Path(tmp) / "files"
            out.mkdir(exist_ok=True)

            def files_only(image=image, mask=mask, out=out) -> None:
                for i in range(args.n):
                    cv2.imwrite(str(out / f"{i}.jpg"), image)
                    cv2.imwrite(str(out / f"{i}.png"), mask)

            files = _best(files_only, args.repeats)
            rates = [args.n / max(t[0], 1e-9) for t in (draw, write, files)]
            print(f"{size:>5} {rates[0]:>9.1f} {rates[1]:>9.1f} {rates[2]:>13.1f} "
                  f"{rates[2] / rates[1]:>17.2f}x   (CPU time; wall: draw {draw[1]:.2f} s, "
                  f"write {write[1]:.2f} s for {args.n})")  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
