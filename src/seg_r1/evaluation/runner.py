"""Running an evaluation: the per-sample work of a chunk, the workers (one per GPU or CPU
processes from a fork server), resume and the merged records (:func:`run_evaluation`)."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue as queue_module
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seg_r1.data import load_ignore, load_image, load_mask
from seg_r1.data.io import encode_rle
from seg_r1.evaluation.config import (
    PREDICTIONS_FILE,
    RECORDS_DIR,
    EvalConfig,
    EvalError,
)
from seg_r1.evaluation.records import (
    Sample,
    check_run_file,
    default_group,
    json_line,
    make_chunks,
    mask_relpath,
    order_samples,
    plain_rows,
    read_records,
    work_dir_lock,
    write_jsonl,
    write_png_atomic,
)
from seg_r1.inference import build_pipeline
from seg_r1.logs import setup_logging
from seg_r1.metrics import intersection_union, iou_from_counts

logger = logging.getLogger(__name__)


def process_chunk(
    pipeline: Any, chunk: Sequence[Sample], config: EvalConfig, work_dir: Path
) -> list[dict[str, Any]]:
    """Predict one chunk and return its records (see the module doc for the fields).

    Raises:
        EvalError: a ground truth whose size differs from its image.
    """

    images: dict[str, Image.Image] = {}
    for sample in chunk:
        if sample.image_path not in images:
            images[sample.image_path] = load_image(sample.row)
    keys = [s.image_path for s in chunk]
    queries = [str(s.row.get("query") or "") for s in chunk]
    query_types = [str(s.row.get("query_type") or "") for s in chunk]
    predictions = pipeline.predict([images[k] for k in keys], queries, query_types, keys)
    records = []
    for sample, query, query_type, pred in zip(chunk, queries, query_types, predictions):
        gt = load_mask(sample.row)
        if gt.shape != pred.mask.shape:
            raise EvalError(
                f"{sample.id}: ground truth is {gt.shape[1]}x{gt.shape[0]} but its image "
                f"{sample.image_path} is {pred.mask.shape[1]}x{pred.mask.shape[0]} (W x H)"
            )
        ignore = load_ignore(sample.row) if config.ignore_mode == "exclude" else None
        inter, union = intersection_union(pred.mask, gt, ignore=ignore)
        answer = pred.answer
        record: dict[str, Any] = {
            "id": sample.id,
            "index": sample.index,
            "group": sample.group,
            "image": sample.image_path,
            "height": int(gt.shape[0]),
            "width": int(gt.shape[1]),
            "query": query,
            "query_type": query_type,
            "completion": pred.completion,
            "answer": {
                "ok": bool(answer.ok),
                "usable": bool(pred.usable),
                "format_ok": bool(answer.format_ok),
                "error": answer.error,
                "boxes": answer.boxes.tolist(),
                "points": answer.points.tolist(),
                "labels": answer.labels.tolist(),
            },
            "intersection": inter,
            "union": union,
            "iou": iou_from_counts(inter, union),
            "pred_area": int(pred.mask.sum()),
            "gt_area": int(gt.sum()),
            "mask_rle": encode_rle(pred.mask),
            "gt_rle": encode_rle(gt),
        }
        if config.save_masks:
            rel = mask_relpath(sample.id)
            write_png_atomic(work_dir / rel, pred.mask)
            record["mask_png"] = rel
        records.append(record)
    return records


# --------------------------------------------------------------------------- workers


def _seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _build_pipeline(config: EvalConfig, device: str, sam2_device: str | None) -> Any:
    """The run's pipeline on this worker's devices (:func:`seg_r1.inference.build_pipeline`)."""
    return build_pipeline(replace(config, device=device), config.task, sam2_device=sam2_device)


def run_chunks(
    rank: int,
    pipeline: Any,
    chunks: Sequence[Sequence[Sample]],
    done: set[str],
    config: EvalConfig,
    work_dir: Path,
    on_progress: Callable[[int], None],
    parent_pid: int | None = None,
) -> None:
    """Worker body: predict ``chunks`` and append the records of samples not in ``done``
    to ``records/part-<rank>.jsonl``."""
    _seed_everything(config.seed)
    path = work_dir / RECORDS_DIR / f"part-{rank:03d}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for chunk in chunks:
            if parent_pid is not None and not _alive(parent_pid):
                raise EvalError(f"worker {rank}: the parent process is gone; stopping")
            records = [
                r for r in process_chunk(pipeline, chunk, config, work_dir) if r["id"] not in done
            ]
            f.write("".join(json_line(r) for r in records))
            f.flush()
            os.fsync(f.fileno())
            on_progress(len(records))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still exists (workers stop when their parent was killed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _spawned_worker(
    rank: int,
    chunks: list[list[Sample]],
    done: set[str],
    config: EvalConfig,
    work_dir: str,
    device: str,
    sam2_device: str | None,
    messages: Any,
    parent_pid: int,
    num_threads: int | None,
    log_level: int,
) -> None:
    """Entry point of a worker process (spawned; reports through ``messages``)."""
    setup_logging(
        log_level, fmt=f"[worker {rank}] %(levelname)s %(message)s", hide_hf_progress=True
    )
    try:
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        pipeline = _build_pipeline(config, device, sam2_device)
        run_chunks(
            rank,
            pipeline,
            chunks,
            done,
            config,
            Path(work_dir),
            lambda n: messages.put(("progress", rank, n)),
            parent_pid,
        )
    except BaseException:
        messages.put(("error", rank, traceback.format_exc()))
        raise
    messages.put(("done", rank, None))


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Set torch's CPU thread count inside the block (``None``: leave it), then restore it."""
    import torch

    if num_threads is None:
        yield
        return
    if num_threads < 1:
        raise EvalError(f"--num_threads must be >= 1, got {num_threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def parse_gpu_ids(text: str | None) -> list[int]:
    """``"0,1,3"`` -> ``[0, 1, 3]``; ``None``/``""`` -> ``[]``.

    Raises:
        EvalError: malformed ids, or ids CUDA does not have.
    """
    if not text:
        return []
    try:
        ids = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError as exc:
        raise EvalError(f"--gpu_ids must be comma-separated integers, got {text!r}") from exc
    import torch

    if not torch.cuda.is_available():
        raise EvalError(f"--gpu_ids {text} given but CUDA is not available (use --device cpu)")
    count = torch.cuda.device_count()
    bad = [i for i in ids if i < 0 or i >= count]
    if bad or len(set(ids)) != len(ids):
        raise EvalError(f"--gpu_ids {text}: this machine has GPUs 0..{count - 1}, each once")
    return ids


#: Imported once by the fork server, so that forked workers start without re-importing them
#: (transformers imports the Qwen2.5-VL classes lazily, ~5 s on a busy CPU; names missing
#: from another transformers version are skipped by the fork server).
_PRELOAD = (
    "torch",
    "transformers",
    "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl",
    "transformers.models.qwen2_5_vl.processing_qwen2_5_vl",
    "transformers.models.qwen2_vl.image_processing_qwen2_vl",
    "transformers.models.qwen2_vl.video_processing_qwen2_vl",
    "transformers.models.qwen2.tokenization_qwen2",
    "seg_r1.evaluation",
    "seg_r1.inference",
    "seg_r1.segmenters",
    "seg_r1.data",
)


def _worker_context() -> Any:
    """Worker processes come from a fork server that has imported torch/transformers/seg_r1
    once (no CUDA or OpenMP state is ever created in it, so forking from it is safe, unlike
    forking this process); platforms without fork servers spawn fresh interpreters."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(_PRELOAD))
        return ctx
    return mp.get_context("spawn")


def _run_parallel(
    assignments: list[tuple[list[list[Sample]], str, str | None]],
    done: set[str],
    config: EvalConfig,
    work_dir: Path,
    bar: Any,
    num_threads: int | None,
) -> None:
    ctx = _worker_context()
    messages = ctx.Queue()
    procs = []
    for rank, (chunks, device, sam2_device) in enumerate(assignments):
        chunk_ids = {s.id for c in chunks for s in c}
        proc = ctx.Process(
            target=_spawned_worker,
            args=(rank, chunks, done & chunk_ids, config, str(work_dir), device, sam2_device,
                  messages, os.getpid(), num_threads, logging.getLogger().level),
            name=f"seg-r1-eval-{rank}",
        )  # fmt: skip
        proc.start()
        procs.append(proc)
    finished: set[int] = set()
    errors: dict[int, str] = {}
    try:
        while len(finished) < len(procs):
            try:
                kind, rank, payload = messages.get(timeout=1.0)
            except queue_module.Empty:
                for rank, proc in enumerate(procs):
                    if rank not in finished and not proc.is_alive():
                        finished.add(rank)
                        if proc.exitcode != 0:
                            errors.setdefault(rank, f"exited with code {proc.exitcode}")
                continue
            if kind == "progress":
                bar.update(payload)
            elif kind == "done":
                finished.add(rank)
            else:
                errors[rank] = payload
                finished.add(rank)
        for proc in procs:
            proc.join()
    except BaseException:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join()
        raise
    if errors:
        detail = "\n".join(f"worker {r}: {msg}" for r, msg in sorted(errors.items()))
        raise EvalError(
            f"{len(errors)} worker(s) failed; finished samples are kept, re-run the same "
            f"command to resume.\n{detail}"
        )


def run_evaluation(
    dataset: Any,
    config: EvalConfig,
    work_dir: str | Path,
    num_workers: int = 1,
    gpu_ids: Sequence[int] = (),
    overwrite: bool = False,
    group_fn: Callable[[Mapping[str, Any]], str] = default_group,
    limit: int | None = None,
    progress: bool = True,
    num_threads: int | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every sample of ``dataset`` (a :mod:`seg_r1.data` dataset), resumably.

    Args:
        dataset: rows of the shared schema (``id``, ``image``, ``query``, ...).
        config: model / segmenter / protocol settings.
        work_dir: where records, masks and ``run.json`` live (see the module doc).
        num_workers: CPU worker processes (ignored when ``gpu_ids`` is given).
        gpu_ids: one worker process per listed GPU.
        overwrite: delete the previous results in ``work_dir`` first.
        group_fn: metrics group of a row (default ``"<source>_<split>"``).
        limit: evaluate only the first ``limit`` samples of the ordered list.
        progress: show the tqdm bar.
        num_threads: torch CPU threads per process (default: this process keeps torch's
            setting; CPU workers get ``cpu_count // num_workers`` each). On a busy machine
            1 thread is often much faster than oversubscribed cores for small models.

    Returns:
        One record per sample, in evaluation order; also written to
        ``<work_dir>/predictions.jsonl``.

    Raises:
        EvalError: settings differ from the run being resumed, a worker failed, or samples
            are missing at the end.
    """
    from tqdm.auto import tqdm

    work_dir = Path(work_dir)
    samples = order_samples(plain_rows(dataset), group_fn, limit)
    if not samples:
        raise EvalError("nothing to evaluate: the dataset is empty")
    if config.save_masks:
        paths = [mask_relpath(s.id) for s in samples]
        if len(set(paths)) != len(paths):
            raise EvalError("two sample ids map to the same mask file name")
    with work_dir_lock(work_dir):
        check_run_file(work_dir, config, overwrite)
        existing = read_records(work_dir / RECORDS_DIR)
        done = {s.id for s in samples if s.id in existing}
        chunks = make_chunks(samples, config.batch_size)
        pending = [c for c in chunks if any(s.id not in done for s in c)]
        todo = sum(s.id not in done for c in pending for s in c)
        logger.info(
            "%s: %d samples in %d chunks; %d already done, %d to run",
            work_dir,
            len(samples),
            len(chunks),
            len(done),
            todo,
        )
        if pending:
            if gpu_ids:
                devices = [(f"cuda:{g}", config.sam2_device or f"cuda:{g}") for g in gpu_ids]
            else:
                if num_workers < 1:
                    raise EvalError(f"--num_workers must be >= 1, got {num_workers}")
                devices = [(config.device, config.sam2_device)] * num_workers
            world = min(len(devices), len(pending))
            start = time.perf_counter()
            with tqdm(total=todo, unit="img", desc=config.task, disable=not progress,
                      dynamic_ncols=True) as bar:  # fmt: skip
                if world == 1:
                    with torch_threads(num_threads):
                        pipeline = _build_pipeline(config, *devices[0])
                        bar.reset()  # the rate counts from here, not from model loading
                        run_chunks(0, pipeline, pending, done, config, work_dir, bar.update)
                else:
                    assignments = [
                        (pending[rank::world], devices[rank][0], devices[rank][1])
                        for rank in range(world)
                    ]
                    threads = num_threads
                    if threads is None and not gpu_ids:
                        threads = max(1, (os.cpu_count() or 1) // world)
                    _run_parallel(assignments, done, config, work_dir, bar, threads)
            elapsed = time.perf_counter() - start
            logger.info("%d samples in %.1f s (%.2f img/s)", todo, elapsed,
                        todo / max(elapsed, 1e-9))  # fmt: skip
        records = read_records(work_dir / RECORDS_DIR)
        missing = [s.id for s in samples if s.id not in records]
        if missing:
            raise EvalError(
                f"{len(missing)} samples have no record (e.g. {missing[:3]}); re-run to resume"
            )
        merged = [records[s.id] for s in samples]
        for sample, record in zip(samples, merged):
            record["index"], record["group"] = sample.index, sample.group
        write_jsonl(work_dir / PREDICTIONS_FILE, merged)
    return merged
