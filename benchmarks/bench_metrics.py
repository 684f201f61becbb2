"""
    python benchmarks/bench_metrics.py --num_pairs 200 --size 512 --num_workers 2 --repeats 3

Benchmark seg_r1.metrics against pysodmetrics 1.6.2 on the same synthetic pairs, in one run.

The pairs are seeded blob-like maps (a smooth GT object covering 5-40% of the image and a smooth
uint8 prediction correlated with it, like a saliency map). For every pair each metric runs with
ours and with pysodmetrics, interleaved so that machine load hits both alike (``--repeats R``:
each call R times, the fastest kept); ms/pair is reported as mean and median over pairs. Ours is
timed per metric (each call prepares its own inputs, like the toolbox's ``step``) and as the
shared suite (``SODMetrics.score``: one ``sod_scores`` call), which is compared with the sum of
the toolbox's five ``step`` calls. While timing, every per-image value
and every aggregated key is checked against the toolbox (|diff| <= 1e-6; the script exits 1
otherwise).

Memory: tracemalloc peak of scoring one pair (Python + numpy + OpenCV-returned arrays) and the
peak RSS (``VmHWM``, i.e. ru_maxrss of the process image) of a fresh process that imports one
implementation and scores ``--memory_pairs`` pairs, with its growth during the scoring.

``--threads`` sets OpenCV's thread count (default 1: a single-threaded comparison, the toolbox
being single-threaded numpy/scipy); ``--num_workers N`` also times both with N worker processes.
There is no GPU path: the suite's cost is dominated by the exact distance transform, which has no
exact torch counterpart worth its transfer cost at these sizes.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import statistics
import sys
import time
import tracemalloc
import warnings

import cv2
import numpy as np

METRICS = ("S-measure", "wF-measure", "E-measure", "F-measure", "MAE")
KEYS = ("Smeasure", "wFmeasure", "MAE", "adpEm", "meanEm", "maxEm", "adpFm", "meanFm", "maxFm")
TOL = 1e-6

_PAIRS: list[tuple[np.ndarray, np.ndarray]] = []  # inherited by forked workers


def make_pairs(num_pairs: int, size: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded (pred uint8, gt uint8 {0, 255}) pairs of shape (size, size)."""
    rng = np.random.default_rng(seed)

    def smooth_field() -> np.ndarray:
        coarse = rng.standard_normal((size // 16 + 1, size // 16 + 1))
        field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        return cv2.GaussianBlur(field, (0, 0), size / 64)

    pairs = []
    for _ in range(num_pairs):
        field = smooth_field()
        gt = np.where(field > np.quantile(field, rng.uniform(0.6, 0.95)), 255, 0).astype(np.uint8)
        pred = field + rng.uniform(0.1, 0.6) * smooth_field()
        pred = (pred - pred.min()) / (pred.max() - pred.min())
        pairs.append(((255 * pred).astype(np.uint8), gt))
    return pairs


# ------------------------------------------------------------------------------ the two sides


_THEIR_CLASSES = {
    "S-measure": "Smeasure",
    "wF-measure": "WeightedFmeasure",
    "E-measure": "Emeasure",
    "F-measure": "Fmeasure",
    "MAE": "MAE",
}


def _theirs(*names: str) -> dict:
    """Fresh pysodmetrics objects for ``names`` (default: the five metrics)."""
    import py_sod_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Fmeasure's deprecation notice
        return {name: getattr(py_sod_metrics, _THEIR_CLASSES[name])() for name in names or METRICS}


def _theirs_last(metrics) -> dict[str, float]:
    """The per-image values the toolbox appended for the last pair."""
    em_curve = metrics["E-measure"].changeable_ems[-1]
    fm_curve = metrics["F-measure"].changeable_fms[-1]
    return {
        "Smeasure": float(metrics["S-measure"].sms[-1]),
        "wFmeasure": float(metrics["wF-measure"].weighted_fms[-1]),
        "MAE": float(metrics["MAE"].maes[-1]),
        "adpEm": float(metrics["E-measure"].adaptive_ems[-1]),
        "meanEm": float(em_curve.mean()),
        "maxEm": float(em_curve.max()),
        "adpFm": float(metrics["F-measure"].adaptive_fms[-1]),
        "meanFm": float(fm_curve.mean()),
        "maxFm": float(fm_curve.max()),
    }


def _theirs_result(metrics) -> dict[str, float]:
    em = metrics["E-measure"].get_results()["em"]
    fm = metrics["F-measure"].get_results()["fm"]
    return {
        "Smeasure": float(metrics["S-measure"].get_results()["sm"]),
        "wFmeasure": float(metrics["wF-measure"].get_results()["wfm"]),
        "MAE": float(metrics["MAE"].get_results()["mae"]),
        "adpEm": float(em["adp"]),
        "meanEm": float(em["curve"].mean()),
        "maxEm": float(em["curve"].max()),
        "adpFm": float(fm["adp"]),
        "meanFm": float(fm["curve"].mean()),
        "maxFm": float(fm["curve"].max()),
    }


def _ours():
    from seg_r1.metrics import e_measure, f_measure, mae, s_measure, weighted_f_measure

    return {
        "S-measure": s_measure,
        "wF-measure": weighted_f_measure,
        "E-measure": e_measure,
        "F-measure": f_measure,
        "MAE": mae,
    }


# ----------------------------------------------------------------------------------- timing


def time_single_process(
    pairs, repeats: int = 1
) -> tuple[dict[str, list[float]], dict[str, list[float]], float]:
    """Per-pair seconds {metric: [...]} for ours and theirs, plus the worst |diff| seen.

    With ``repeats > 1`` each call is timed that many times and the fastest kept (timeit's rule:
    the minimum is the run least disturbed by other processes).
    """
    from seg_r1.metrics import SODMetrics

    ours_fns, theirs_acc, ours_acc = _ours(), _theirs(), SODMetrics()
    ours_t = {name: [] for name in (*METRICS, "suite")}
    theirs_t = {name: [] for name in METRICS}
    worst = dict.fromkeys(KEYS, 0.0)
    clock = time.perf_counter
    for pred, gt in pairs:
        for name in METRICS:
            best_ours = best_theirs = math.inf
            for repeat in range(repeats):
                start = clock()
                ours_fns[name](pred, gt)
                best_ours = min(best_ours, clock() - start)
                # The accumulating toolbox object steps once; repeats time a fresh one.
                target = theirs_acc[name] if repeat == 0 else _theirs(name)[name]
                start = clock()
                target.step(pred, gt)
                best_theirs = min(best_theirs, clock() - start)
            ours_t[name].append(best_ours)
            theirs_t[name].append(best_theirs)
        best_suite = math.inf
        for _ in range(repeats):
            start = clock()
            scores = ours_acc.score(pred, gt)
            best_suite = min(best_suite, clock() - start)
        ours_t["suite"].append(best_suite)
        ours_acc.add(scores)
        per_image = scores.as_dict()
        for key, value in _theirs_last(theirs_acc).items():
            if not math.isnan(value):  # the toolbox's empty-block NaN (see seg_r1.metrics.sod)
                worst[key] = max(worst[key], abs(per_image[key] - value))
    ours_result, theirs_result = ours_acc.result(), _theirs_result(theirs_acc)
    for key in KEYS:
        if not math.isnan(theirs_result[key]):
            worst[key] = max(worst[key], abs(ours_result[key] - theirs_result[key]))
    return ours_t, theirs_t, max(worst.values())


def _score_ours(index: int) -> dict[str, float]:
    from seg_r1.metrics import sod_scores

    return sod_scores(*_PAIRS[index]).as_dict()


def _score_theirs(index: int) -> dict[str, float]:
    metrics = _theirs()
    pred, gt = _PAIRS[index]
    for metric in metrics.values():
        metric.step(pred, gt)
    return _theirs_last(metrics)


def _worker_init(threads: int) -> None:
    cv2.setNumThreads(threads)


def time_workers(num_workers: int, threads: int) -> tuple[float, float, float]:
    """Wall seconds per pair (ours, theirs) with a fork pool, and the worst per-image |diff|."""
    context = multiprocessing.get_context("fork")
    indices = range(len(_PAIRS))
    with context.Pool(num_workers, initializer=_worker_init, initargs=(threads,)) as pool:
        pool.map(_score_ours, range(num_workers))  # warm up the workers' imports
        pool.map(_score_theirs, range(num_workers))
        start = time.perf_counter()
        ours = pool.map(_score_ours, indices, chunksize=4)
        ours_s = (time.perf_counter() - start) / len(_PAIRS)
        start = time.perf_counter()
        theirs = pool.map(_score_theirs, indices, chunksize=4)
        theirs_s = (time.perf_counter() - start) / len(_PAIRS)
    worst = max(
        abs(a[k] - b[k]) for a, b in zip(ours, theirs) for k in KEYS if not math.isnan(b[k])
    )
    return ours_s, theirs_s, worst


# ----------------------------------------------------------------------------------- memory


def tracemalloc_peak(pairs, side: str) -> float:
    """Max over pairs of the tracemalloc peak (MiB) while scoring one pair with one side."""
    from seg_r1.metrics import sod_scores

    peak = 0
    for pred, gt in pairs:
        tracemalloc.start()
        if side == "ours":
            sod_scores(pred, gt)
        else:
            for metric in _theirs().values():
                metric.step(pred, gt)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return peak / 2**20


def _peak_rss_mib() -> float:
    """Peak RSS of this process image (MiB): ``VmHWM`` of /proc/self/status on Linux.

    ``ru_maxrss`` is not used for the child: Linux carries the parent's high-water mark across
    fork + exec into it, so a child started by a big parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_child(side: str, num_pairs: int, size: int, seed: int, threads: int, queue) -> None:
    cv2.setNumThreads(threads)
    pairs = make_pairs(num_pairs, size, seed)
    if side == "ours":
        from seg_r1.metrics import SODMetrics

        baseline = _peak_rss_mib()
        metrics = SODMetrics()
        for pair in pairs:
            metrics.update(*pair)
    else:
        metrics = _theirs()
        baseline = _peak_rss_mib()
        for pred, gt in pairs:
            for metric in metrics.values():
                metric.step(pred, gt)
    queue.put((_peak_rss_mib(), _peak_rss_mib() - baseline))


def peak_rss(side: str, num_pairs: int, size: int, seed: int, threads: int) -> tuple[float, float]:
    """(peak RSS, its growth while scoring) in MiB of a fresh spawned process that imports one
    side, generates ``num_pairs`` pairs and scores them."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_rss_child, args=(side, num_pairs, size, seed, threads, queue))
    process.start()
    value = queue.get(timeout=600)
    process.join()
    return value


# ------------------------------------------------------------------------------------- main


def _ms(values: list[float]) -> tuple[float, float]:
    return 1e3 * sum(values) / len(values), 1e3 * statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="seg_r1.metrics vs pysodmetrics")
    parser.add_argument("--num_pairs", type=int, default=200, help="synthetic pairs")
    parser.add_argument("--size", type=int, default=512, help="pairs are size x size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic pairs")
    parser.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads")
    parser.add_argument("--num_workers", type=int, default=0, help="also time N processes")
    parser.add_argument("--memory_pairs", type=int, default=20, help="pairs per RSS process")
    parser.add_argument(
        "--repeats", type=int, default=1, help="time each call this often, keep the fastest"
    )
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)
    import py_sod_metrics  # noqa: F401  (fail before the work if the oracle is missing)

    _PAIRS[:] = make_pairs(args.num_pairs, args.size, args.seed)
    print(
        f"{args.num_pairs} pairs of {args.size}x{args.size}, seed {args.seed}, "
        f"cv2 threads {args.threads}, best of {args.repeats} per call, "
        f"numpy {np.__version__}, opencv {cv2.__version__}"
    )
    time_single_process(_PAIRS[:3])  # warm-up: imports, first-call allocations
    ours_t, theirs_t, worst = time_single_process(_PAIRS, args.repeats)

    print("\n| metric | ours ms/pair (mean / median) | pysodmetrics ms/pair | speed-up |")
    print("|---|---|---|---|")
    for name in METRICS:
        (om, omed), (tm, tmed) = _ms(ours_t[name]), _ms(theirs_t[name])
        print(f"| {name} | {om:.2f} / {omed:.2f} | {tm:.2f} / {tmed:.2f} | {tm / om:.1f}x |")
    theirs_total = [sum(v) for v in zip(*(theirs_t[name] for name in METRICS))]
    (om, omed), (tm, tmed) = _ms(ours_t["suite"]), _ms(theirs_total)
    print(f"| whole suite (ours shared) | {om:.2f} / {omed:.2f} | {tm:.2f} / {tmed:.2f} | ", end="")
    print(f"{tm / om:.1f}x |")
    print(f"\noverall ratio (pysodmetrics / ours, whole suite, mean): {tm / om:.2f}x")
    print(f"max |ours - pysodmetrics| over per-image values and aggregated keys: {worst:.2e}")

    if args.num_workers > 0:
        ours_s, theirs_s, worst_workers = time_workers(args.num_workers, args.threads)
        worst = max(worst, worst_workers)
        print(
            f"\n{args.num_workers} workers: ours {1e3 * ours_s:.2f} ms/pair, pysodmetrics "
            f"{1e3 * theirs_s:.2f} ms/pair (wall), ratio {theirs_s / ours_s:.2f}x, "
            f"ours vs 1 process {1e3 * sum(ours_t['suite']) / len(_PAIRS) / (1e3 * ours_s):.2f}x"
        )

    mem_pairs = _PAIRS[: min(10, len(_PAIRS))]
    print(
        f"\ntracemalloc peak per pair: ours {tracemalloc_peak(mem_pairs, 'ours'):.1f} MiB, "
        f"pysodmetrics {tracemalloc_peak(mem_pairs, 'theirs'):.1f} MiB"
    )
    rss = {
        side: peak_rss(side, args.memory_pairs, args.size, args.seed, args.threads)
        for side in ("ours", "theirs")
    }
    print(
        f"peak RSS (VmHWM) of a fresh process scoring {args.memory_pairs} pairs: "
        f"ours {rss['ours'][0]:.0f} MiB (+{rss['ours'][1]:.1f} while scoring), "
        f"pysodmetrics {rss['theirs'][0]:.0f} MiB (+{rss['theirs'][1]:.1f} while scoring)"
    )
    if worst > TOL:
        print(f"RESULTS DIFFER by {worst:.2e} > {TOL}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
