"""The evaluation runner behind ``eval/*.py``: ordering, batching, sharding, resume, records,
metrics and reports. The scripts only load their dataset and name their outputs.

Work directory layout (one per evaluation run)::

    <work_dir>/
        run.json                 settings that decide the outputs (checked on resume)
        records/part-<rank>.jsonl  per-sample records, appended and fsynced chunk by chunk
        masks/<id>.png           predicted masks, 0/255 (foreground; ``save_masks``)
        predictions.jsonl        all records merged, in evaluation order (rewritten at the end)

**Order and chunks.** Samples are sorted by ``(image path, id)`` (so the expressions of one
image sit together and share one segmenter encoding) and cut into fixed *chunks* of
``batch_size`` consecutive samples. A chunk is the unit of work: one batched ``generate`` call,
one ``segment_batch`` call. Because chunk boundaries depend only on the sample list and the
batch size, every sample is always generated in the same batch (same padding) whether the run
is single-process, sharded, or resumed -- so results are *bit-identical* across these (on the
same kind of device, with the same library versions and thread count).

**Sharding.** Pending chunks are dealt round-robin to the workers: one process per GPU with
``gpu_ids``, or ``num_workers`` CPU processes (each with ``cpu_count // num_workers`` torch
threads unless ``num_threads`` is given). Workers are forked from a fork server that imported
torch/transformers once (never from this process, whose CUDA/OpenMP state is not fork-safe).
With one worker everything runs in the calling process. The parent shows one tqdm bar
(images/s) fed by the workers through a queue; workers stop when the parent is gone.

**Resume.** Each worker appends its records to its own JSONL file; after each chunk the lines
are flushed and fsynced (a foreground mask PNG is written, atomically, *before* its record).
On restart: a torn last line (the process was killed mid-write) is cut off, every record is
read (first one per id wins), and a chunk is skipped only when all its samples have records;
otherwise the whole chunk is recomputed (same composition, same outputs) and only the missing
records are appended. ``run.json`` holds the settings that change outputs (model, frame,
prompts, segmenter, batch size, ...); resuming with different settings raises (use
``overwrite=True`` or another work directory). A lock file refuses two runs on one directory.

**Records** (one JSON line per sample) keep everything needed to recompute the metrics
without the model: the raw completion, the parsed prompts, the predicted mask (COCO RLE, and
the PNG path for foreground), the ground truth as the metrics saw it (``gt_rle``: read once per
sample, by the one GT rule :func:`seg_r1.metrics.binarize_gt`), and the per-sample
``intersection`` / ``union`` / ``iou``.
Metrics are computed from the merged records in evaluation order, so a re-run, a resumed run
and a sharded run give identical numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing as mp
import os
import queue as queue_module
import re
import shutil
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seg_r1.answer import parse_answer
from seg_r1.metrics import IoUAccumulator, SODMetrics, intersection_union, iou_from_counts
from seg_r1.segmenter import ANSWER_RULES, DEFAULT_EVAL_ANSWER_RULE, check_answer_rule

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
RECORDS_DIR = "records"
MASKS_DIR = "masks"
PREDICTIONS_FILE = "predictions.jsonl"
LOCK_FILE = ".lock"
TASKS: tuple[str, ...] = ("foreground", "referring", "reasoning")
IGNORE_MODES: tuple[str, ...] = ("background", "exclude")
#: Best and worst cases shown by the visual report (each).
DEFAULT_REPORT_CASES = 4


class EvalError(RuntimeError):
    """An evaluation cannot run or finish as asked (the message says how to fix it)."""


# --------------------------------------------------------------------------- configuration


@dataclass
class EvalConfig:
    """Settings of one evaluation run (the eval scripts build it from their arguments).

    Everything but ``device`` / ``sam2_device`` is part of :meth:`fingerprint` and must stay
    the same when a run is resumed (of the devices, only the device *type* must).
    """

    model_path: str
    task: str
    frame_size: int
    batch_size: int = 8
    max_new_tokens: int = 1024
    repetition_penalty: float = 1.0
    dtype: str = "auto"
    attn_implementation: str | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    segmenter: str = "sam2"
    sam2_config: str | None = None
    sam2_checkpoint: str | None = None
    sam2_dtype: str = "float32"
    bgr_compat: bool = False
    answer_rule: str = DEFAULT_EVAL_ANSWER_RULE
    ignore_mode: str = "background"
    save_masks: bool = False
    seed: int = 0
    device: str = "auto"
    sam2_device: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.ignore_mode not in IGNORE_MODES:
            raise ValueError(f"ignore_mode must be one of {IGNORE_MODES}, got {self.ignore_mode!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        check_answer_rule(self.answer_rule)

    def fingerprint(self) -> dict[str, Any]:
        """The settings that decide the outputs (compared on resume)."""
        skip = {"device", "sam2_device"}
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        out["model_path"] = str(Path(self.model_path).expanduser().absolute())
        out["device_type"] = _device_type(self.device)
        return out


def _device_type(device: str | None) -> str:
    from seg_r1.inference import resolve_device

    return resolve_device(device).type


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Sample:
    """One evaluation example: its position in the run, its id, metrics group and data row."""

    index: int
    id: str
    group: str
    row: dict[str, Any] = field(repr=False, hash=False, compare=False)

    @property
    def image_path(self) -> str:
        return str(self.row["image"]["path"])


def default_group(row: Mapping[str, Any]) -> str:
    """Metrics group of a row: ``"<source>_<split>"`` (e.g. ``"refcoco+_testA"``)."""
    return f"{row['source']}_{row['split']}"


def plain_rows(dataset: Any) -> list[dict[str, Any]]:
    """A :mod:`seg_r1.data` dataset as plain dicts with undecoded ``image``/``mask`` paths."""
    import datasets

    for column in ("image", "mask"):
        if column in dataset.column_names:
            dataset = dataset.cast_column(column, datasets.Image(decode=False))
    rows = dataset.to_list()
    for row in rows:
        if not row.get("image") or not row["image"].get("path"):
            raise EvalError(f"example {row.get('id')!r} has no image file path")
    return rows


def order_samples(
    rows: Sequence[Mapping[str, Any]],
    group_fn: Callable[[Mapping[str, Any]], str] = default_group,
    limit: int | None = None,
) -> list[Sample]:
    """Samples sorted by ``(image path, id)``; ``limit`` keeps the first ``limit`` of them.

    Raises:
        EvalError: duplicate ids.
    """
    ordered = sorted(rows, key=lambda r: (str(r["image"]["path"]), str(r["id"])))
    if limit is not None:
        ordered = ordered[:limit]
    ids = [str(r["id"]) for r in ordered]
    if len(set(ids)) != len(ids):
        raise EvalError("the dataset has duplicate example ids; every id must be unique")
    return [Sample(i, str(r["id"]), group_fn(r), dict(r)) for i, r in enumerate(ordered)]


def make_chunks(samples: Sequence[Sample], batch_size: int) -> list[list[Sample]]:
    """Consecutive fixed-size chunks (the last may be shorter)."""
    return [list(samples[i : i + batch_size]) for i in range(0, len(samples), batch_size)]


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def mask_relpath(sample_id: str) -> str:
    """``masks/<id>.png`` with every path component made file-system safe."""
    parts = [_UNSAFE.sub("_", p) for p in sample_id.split("/") if p]
    parts = [("_" + p if set(p) <= {"."} else p) for p in parts] or ["_"]
    return "/".join([MASKS_DIR, *parts[:-1], parts[-1] + ".png"])


# --------------------------------------------------------------------------- records on disk


def _json_line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def repair_jsonl(path: Path) -> int:
    """Cut a torn last line (no trailing newline) off ``path``; return the bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # Walk back to the last newline.
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            data = f.read(end - start)
            cut = data.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        else:
            keep = 0
        f.truncate(keep)
    logger.warning("%s: removed a torn last line (%d bytes) left by an interrupted run", path,
                   size - keep)  # fmt: skip
    return size - keep


def read_records(records_dir: Path) -> dict[str, dict[str, Any]]:
    """Every record under ``records_dir`` by id (first occurrence wins; torn lines repaired).

    Raises:
        EvalError: a line that is not JSON in the middle of a file.
    """
    out: dict[str, dict[str, Any]] = {}
    if not records_dir.is_dir():
        return out
    for path in sorted(records_dir.glob("*.jsonl")):
        repair_jsonl(path)
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise EvalError(
                        f"{path}:{number} is not valid JSON ({exc}); delete the file (its samples "
                        "will be recomputed) or start over with --overwrite"
                    ) from exc
                out.setdefault(str(record["id"]), record)
    return out


@contextlib.contextmanager
def work_dir_lock(work_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``work_dir`` (released when the process exits, even killed)."""
    import fcntl

    work_dir.mkdir(parents=True, exist_ok=True)
    with open(work_dir / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise EvalError(
                f"another evaluation is running in {work_dir}; wait for it or use another "
                "output folder"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_run_file(work_dir: Path, config: EvalConfig, overwrite: bool) -> None:
    """Write ``run.json``, or check that an existing one matches ``config`` (resume)."""
    path = work_dir / RUN_FILE
    current = config.fingerprint()
    if overwrite:
        for name in (RECORDS_DIR, MASKS_DIR):
            shutil.rmtree(work_dir / name, ignore_errors=True)
        for name in (RUN_FILE, PREDICTIONS_FILE):
            (work_dir / name).unlink(missing_ok=True)
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        diff = {
            k: (previous.get(k), current.get(k))
            for k in sorted(set(previous) | set(current))
            if previous.get(k) != current.get(k)
        }
        if diff:
            details = "; ".join(f"{k}: was {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise EvalError(
                f"{work_dir} holds results of a run with other settings ({details}). Resume "
                "with the same settings, pass --overwrite to start over, or use another output."
            )
        return
    path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- per-sample work


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """A bool mask as COCO compressed RLE ``{"size": [H, W], "counts": str}``."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_rle`: ``bool (H, W)``."""
    from pycocotools import mask as mask_utils

    coded = {"size": list(rle["size"]), "counts": str(rle["counts"]).encode("ascii")}
    return mask_utils.decode(coded).astype(bool)


def _write_png_atomic(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(tmp, format="PNG")
    os.replace(tmp, path)


def process_chunk(
    pipeline: Any, chunk: Sequence[Sample], config: EvalConfig, work_dir: Path
) -> list[dict[str, Any]]:
    """Predict one chunk and return its records (see the module doc for the fields).

    Raises:
        EvalError: a ground truth whose size differs from its image.
    """
    from seg_r1.data import load_ignore, load_image, load_mask

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
            _write_png_atomic(work_dir / rel, pred.mask)
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
    from seg_r1.inference import build_pipeline

    return build_pipeline(
        config.model_path,
        task=config.task,
        frame_size=config.frame_size,
        segmenter=config.segmenter,
        device=device,
        sam2_device=sam2_device,
        dtype=config.dtype,
        attn_implementation=config.attn_implementation,
        sam2_config=config.sam2_config,
        sam2_checkpoint=config.sam2_checkpoint,
        sam2_dtype=config.sam2_dtype,
        bgr_compat=config.bgr_compat,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        repetition_penalty=config.repetition_penalty,
        min_pixels=config.min_pixels,
        max_pixels=config.max_pixels,
        answer_rule=config.answer_rule,
    )


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
            f.write("".join(_json_line(r) for r in records))
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
    logging.basicConfig(level=log_level, format=f"[worker {rank}] %(levelname)s %(message)s")
    try:
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        quiet_hf_progress()
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
    "seg_r1.segmenter",
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


# --------------------------------------------------------------------------- metrics


def iou_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """gIoU (mean per-sample IoU), cIoU (sum of intersections / sum of unions), counts and
    answer-format rates of ``records`` (in their order)."""
    acc = IoUAccumulator()
    for record in records:
        acc.add(record["intersection"], record["union"])
    result = dict(acc.result())
    n = len(records)
    result["n"] = n
    result["format_ok_rate"] = sum(r["answer"]["format_ok"] for r in records) / max(n, 1)
    result["answer_ok_rate"] = sum(r["answer"]["ok"] for r in records) / max(n, 1)
    return result


def grouped_iou_summary(
    records: Sequence[Mapping[str, Any]], groups: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """:func:`iou_summary` per ``group`` (in ``groups`` order, default first appearance)."""
    by_group: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_group.setdefault(record["group"], []).append(record)
    order = list(groups) if groups is not None else list(by_group)
    return {g: iou_summary(by_group[g]) for g in order if g in by_group}


def foreground_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """COD/SOD metrics of the records' predicted masks against their ground truth, in
    evaluation order, plus :func:`iou_summary`'s numbers.

    Both masks come from the records (``mask_rle``, ``gt_rle``): the ground truth was read
    ONCE per sample, by the one GT rule (:func:`seg_r1.metrics.binarize_gt`, ``> 128``), when
    the sample was evaluated, so IoU and the SOD metrics see the same binary GT. A binary
    prediction is the same map to the metrics as its 0/255 PNG (``masks/<id>.png``), so the
    numbers equal the toolbox's run on the written PNGs and the GT files.
    """
    sod = SODMetrics()
    for record in records:
        if "gt_rle" not in record:
            raise EvalError(
                f"record {record['id']} has no ground truth (written by an older version); "
                "re-run with --overwrite"
            )
        sod.update(decode_rle(record["mask_rle"]), decode_rle(record["gt_rle"]))
    result: dict[str, Any] = dict(sod.result())
    result.update(iou_summary(records))
    return result


# --------------------------------------------------------------------------- reports


def write_json(path: str | Path, data: Any) -> Path:
    """Pretty JSON with sorted keys, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_jsonl(path: str | Path, records: Sequence[Mapping[str, Any]]) -> Path:
    """One JSON object per line, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(_json_line(r) for r in records))
    os.replace(tmp, path)
    return path


#: Samples a complete run evaluates on the standard splits (SPEC §10): every RefCOCO/+/g
#: expression of the ``unc`` / ``umd`` splits, every ReasonSeg sample once (first query).
EXPECTED_SAMPLES: dict[tuple[str, str], int] = {
    ("refcoco", "val"): 10834,
    ("refcoco", "testA"): 5657,
    ("refcoco", "testB"): 5095,
    ("refcoco+", "val"): 10758,
    ("refcoco+", "testA"): 5726,
    ("refcoco+", "testB"): 4889,
    ("refcocog", "val"): 4896,
    ("refcocog", "test"): 9602,
    ("ReasonSeg", "val"): 200,
    ("ReasonSeg", "test"): 779,
}


def coverage(
    n_evaluated: int,
    skipped: Mapping[str, int] | None = None,
    expected: int | None = None,
) -> dict[str, Any]:
    """What a split's run covered: ``n_evaluated``, ``n_skipped`` with ``skipped`` by reason
    (from the loader's :attr:`seg_r1.data.LoadReport.skipped_samples`, plus ``limit`` for
    samples left out by ``--limit``), ``n_expected`` (a standard split's size, else ``None``)
    and ``complete`` -- nothing skipped and, where a size is known, exactly that many
    evaluated."""
    skipped = {k: int(v) for k, v in sorted((skipped or {}).items()) if v}
    n_skipped = sum(skipped.values())
    complete = n_skipped == 0 and (expected is None or n_evaluated == expected)
    return {
        "n_evaluated": int(n_evaluated),
        "n_skipped": n_skipped,
        "skipped": skipped,
        "n_expected": expected,
        "complete": bool(complete),
    }


def coverage_warning(name: str, cov: Mapping[str, Any]) -> str | None:
    """A loud one-line warning for an incomplete split (``None`` when complete)."""
    if cov["complete"]:
        return None
    text = f"INCOMPLETE {name}: evaluated {cov['n_evaluated']:,}"
    if cov["n_expected"] is not None:
        text += f" of the standard {cov['n_expected']:,} samples"
    if cov["n_skipped"]:
        detail = ", ".join(f"{k} {v}" for k, v in cov["skipped"].items())
        text += f"; skipped {cov['n_skipped']:,} ({detail})"
    return text + " -- not comparable with published numbers"


def split_coverage(
    records: Sequence[Mapping[str, Any]],
    dataset: Any,
    reports: Mapping[str, Any],
    expected: Mapping[str, int | None],
    group_fn: Callable[[Mapping[str, Any]], str] = default_group,
) -> dict[str, dict[str, Any]]:
    """:func:`coverage` per group: ``reports`` maps a group to its loader's
    :class:`~seg_r1.data.LoadReport`, ``expected`` to its standard size (or ``None``).
    Samples of ``dataset`` without a record (``--limit``) count as skipped for ``limit``."""
    in_dataset: dict[str, int] = {}
    for row in plain_rows(dataset):
        group = group_fn(row)
        in_dataset[group] = in_dataset.get(group, 0) + 1
    evaluated: dict[str, int] = {}
    for record in records:
        evaluated[record["group"]] = evaluated.get(record["group"], 0) + 1
    out = {}
    for group in dict.fromkeys([*reports, *in_dataset, *expected]):
        report = reports.get(group)
        skipped = dict(report.skipped_samples) if report is not None else {}
        left_out = in_dataset.get(group, 0) - evaluated.get(group, 0)
        if left_out:
            skipped["limit"] = left_out
        out[group] = coverage(evaluated.get(group, 0), skipped, expected.get(group))
    return out


def warn_incomplete(coverages: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Log and return the :func:`coverage_warning` of every incomplete group."""
    lines = []
    for name, cov in coverages.items():
        line = coverage_warning(name, cov)
        if line is not None:
            logger.warning("%s", line)
            lines.append(line)
    return lines


def iou_table(results: Mapping[str, Mapping[str, Any]], title: str = "split") -> str:
    """Markdown table of :func:`grouped_iou_summary` (gIoU/cIoU in percent, 2 decimals; ``n``
    shows ``evaluated / expected`` where a standard size is known)."""
    lines = [
        f"| {title} | n | gIoU | cIoU | format ok |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        n = f"{r['n']}" if r.get("n_expected") is None else f"{r['n']} / {r['n_expected']}"
        lines.append(
            f"| {name} | {n} | {100 * r['gIoU']:.2f} | {100 * r['cIoU']:.2f} "
            f"| {100 * r['format_ok_rate']:.1f}% |"
        )
    return "\n".join(lines) + "\n"


def select_cases(
    records: Sequence[Mapping[str, Any]], k: int = DEFAULT_REPORT_CASES
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The ``k`` worst and ``k`` best records by IoU (ties by id); disjoint."""
    by_iou = sorted(records, key=lambda r: (r["iou"], r["id"]))
    worst = by_iou[:k]
    taken = {r["id"] for r in worst}
    best = [r for r in sorted(records, key=lambda r: (-r["iou"], r["id"])) if r["id"] not in taken]
    return worst, best[:k]


def write_case_report(
    path: str | Path,
    records: Sequence[Mapping[str, Any]],
    samples: Mapping[str, Mapping[str, Any]],
    frame_size: int,
    k: int = DEFAULT_REPORT_CASES,
    title: str = "",
) -> Path | None:
    """PNG grid of the worst and best cases (image + prompts | GT | prediction + prompts).

    ``samples`` maps id -> data row. Returns the path, or ``None`` when ``k`` is 0.
    """
    from seg_r1.data import load_image, load_mask
    from seg_r1.visualize import Case, case_grid, save_png

    if k <= 0 or not records:
        return None

    def case(record: Mapping[str, Any]) -> Case:
        row = samples[record["id"]]
        image = np.asarray(load_image(row))
        answer = parse_answer(record["completion"], frame_size)
        return Case(
            image=image,
            gt=load_mask(row),
            pred=decode_rle(record["mask_rle"]),
            answer=answer,
            title=f"{record['id']}  IoU {record['iou']:.3f}"
            + ("" if answer.ok else f"  ({answer.error or 'unusable answer'})"),
            query=str(record.get("query") or ""),
        )

    worst, best = select_cases(records, k)
    grid = case_grid(
        [(f"worst {len(worst)} by IoU", [case(r) for r in worst]),
         (f"best {len(best)} by IoU", [case(r) for r in best])],
        title=title,
    )  # fmt: skip
    return save_png(path, grid)


def samples_by_id(dataset: Any) -> dict[str, dict[str, Any]]:
    """id -> plain row (undecoded paths), for reports."""
    return {str(r["id"]): r for r in plain_rows(dataset)}


def write_iou_report(
    output: str | Path,
    records: Sequence[Mapping[str, Any]],
    groups: Sequence[str],
    dataset: Any,
    config: EvalConfig,
    header: Mapping[str, Any],
    title: str,
    report_cases: int = DEFAULT_REPORT_CASES,
    coverages: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The outputs of a referring / reasoning run; returns the markdown table.

    Writes ``output`` (JSON: ``header`` + per-group :func:`grouped_iou_summary` results, each
    with its :func:`coverage` when ``coverages`` has it, ``complete`` overall +
    :func:`config_summary` + the records' path), the same stem with ``.md`` (the table, then
    a warning line per incomplete group), and ``cases_<group>.png`` per group in the work
    folder (``output`` without suffix). ``title`` is formatted with ``group`` and ``frame``
    for each case grid.
    """
    output = Path(output)
    work_dir = output.with_suffix("")
    results = grouped_iou_summary(records, groups)
    coverages = dict(coverages or {})
    for group, cov in coverages.items():
        if group in results:
            results[group].update(cov)
        else:  # every sample of the split was skipped
            results[group] = dict(cov)
    summary = dict(header)
    summary["results"] = results
    summary["complete"] = all(cov["complete"] for cov in coverages.values())
    summary["config"] = config_summary(config) | dict(summary.get("config", {}))
    summary["predictions"] = str(work_dir / "predictions.jsonl")
    write_json(output, summary)
    warnings = warn_incomplete(coverages)
    table = iou_table({g: r for g, r in results.items() if "gIoU" in r})
    table += "".join(f"\n**{line}**\n" for line in warnings)
    output.with_suffix(".md").write_text(table, encoding="utf-8")
    rows = samples_by_id(dataset)
    for group in (g for g, r in results.items() if "gIoU" in r):
        write_case_report(
            work_dir / f"cases_{group}.png",
            [r for r in records if r["group"] == group],
            rows,
            config.frame_size,
            k=report_cases,
            title=title.format(group=group, frame=config.frame_size),
        )
    return table


# --------------------------------------------------------------------------- command line


def add_common_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    """Arguments shared by the three eval scripts (model, generation, segmenter, runner)."""
    from seg_r1.inference import (
        ATTN_IMPLEMENTATIONS,
        DEFAULT_FRAME_SIZE,
        DTYPES,
        EVAL_MAX_NEW_TOKENS,
    )
    from seg_r1.sam2_backend import DEFAULT_SAM2_CHECKPOINT, DEFAULT_SAM2_CONFIG

    model = parser.add_argument_group("policy")
    model.add_argument("--model_path", required=True, help="Seg-R1 checkpoint directory")
    model.add_argument("--batch_size", type=int, default=8, help="images per generate call")
    model.add_argument(
        "--frame_size",
        type=int,
        default=DEFAULT_FRAME_SIZE[task],
        help="square frame the image is resized to; answers' coordinates refer to it "
        f"(SPEC §2; default {DEFAULT_FRAME_SIZE[task]} for {task})",
    )
    model.add_argument(
        "--max_new_tokens",
        type=int,
        default=EVAL_MAX_NEW_TOKENS[task],
        help=f"generation budget (default {EVAL_MAX_NEW_TOKENS[task]}, the official script's)",
    )
    model.add_argument(
        "--repetition_penalty",
        type=float,
        default=1.0,
        help="1.0 = plain greedy decoding; Qwen2.5-VL's generation_config has 1.05",
    )
    model.add_argument("--dtype", default="auto", choices=DTYPES, help="policy dtype")
    model.add_argument("--attn_implementation", default=None, choices=ATTN_IMPLEMENTATIONS,
                       help="default: flash_attention_2 on GPU when installed, else sdpa")  # fmt: skip
    model.add_argument("--min_pixels", type=int, default=None,
                       help="processor pixel bounds (default: the checkpoint's)")  # fmt: skip
    model.add_argument("--max_pixels", type=int, default=None)

    seg = parser.add_argument_group("segmenter")
    seg.add_argument("--segmenter", default="sam2", choices=["sam2", "classical"],
                     help="sam2 (the real one) or classical (GrabCut; CPU tests only)")  # fmt: skip
    seg.add_argument("--sam2_config", default=DEFAULT_SAM2_CONFIG)
    seg.add_argument("--sam2_checkpoint", default=DEFAULT_SAM2_CHECKPOINT)
    seg.add_argument("--sam2_dtype", default="float32", choices=["float32", "bfloat16"])
    seg.add_argument(
        "--bgr_compat",
        action="store_true",
        help="reproduce the official code's defect: SAM2 sees R and B swapped (SPEC §3)",
    )

    proto = parser.add_argument_group("protocol")
    proto.add_argument(
        "--strict",
        action="store_true",
        help="any sample the loader would skip (missing or unreadable file, mismatched "
        "annotation) is an error instead of a counted skip",
    )
    proto.add_argument(
        "--answer_rule",
        default=DEFAULT_EVAL_ANSWER_RULE,
        choices=ANSWER_RULES,
        help="which imperfect answers still give a mask: 'fallback' (default, the official "
        "evaluation's: box-only mask when points/labels are unusable, points-only mask "
        "without a box -- numbers comparable with the paper's), 'well_formed' (strict: an "
        "inconsistent answer gives an empty mask; box-only answers are kept) or 'complete' "
        "(the training reward's rule)",
    )

    run = parser.add_argument_group("runner")
    run.add_argument("--device", default="auto", help="policy device: auto, cpu, cuda, cuda:1")
    run.add_argument("--sam2_device", default=None, help="segmenter device (default: --device)")
    run.add_argument("--gpu_ids", default=None, help="e.g. 0,1,2,3: one worker process per GPU")
    run.add_argument("--num_workers", type=int, default=1, help="CPU worker processes")
    run.add_argument("--num_threads", type=int, default=None,
                     help="torch CPU threads per process (default: torch's; workers: "
                     "cores // num_workers)")  # fmt: skip
    run.add_argument("--overwrite", action="store_true", help="discard earlier results")
    run.add_argument("--limit", type=int, default=None, help="only the first N samples")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--report_cases", type=int, default=DEFAULT_REPORT_CASES,
                     help="best and worst cases in the visual report (0: no report)")  # fmt: skip
    run.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    run.add_argument("--log_level", default="INFO")


def config_from_args(args: argparse.Namespace, task: str, **overrides: Any) -> EvalConfig:
    """Build the :class:`EvalConfig` of parsed :func:`add_common_arguments` arguments."""
    values = {
        "model_path": args.model_path,
        "task": task,
        "frame_size": args.frame_size,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "repetition_penalty": args.repetition_penalty,
        "dtype": args.dtype,
        "attn_implementation": args.attn_implementation,
        "min_pixels": args.min_pixels,
        "max_pixels": args.max_pixels,
        "segmenter": args.segmenter,
        "sam2_config": args.sam2_config if args.segmenter == "sam2" else None,
        "sam2_checkpoint": args.sam2_checkpoint if args.segmenter == "sam2" else None,
        "sam2_dtype": args.sam2_dtype,
        "bgr_compat": args.bgr_compat,
        "answer_rule": args.answer_rule,
        "seed": args.seed,
        "device": args.device,
        "sam2_device": args.sam2_device,
    }
    values.update(overrides)
    return EvalConfig(**values)


def run_from_args(
    args: argparse.Namespace, dataset: Any, config: EvalConfig, work_dir: Path, **kwargs: Any
) -> list[dict[str, Any]]:
    """:func:`run_evaluation` with the runner arguments of :func:`add_common_arguments`."""
    return run_evaluation(
        dataset,
        config,
        work_dir,
        num_workers=args.num_workers,
        gpu_ids=parse_gpu_ids(args.gpu_ids),
        overwrite=args.overwrite,
        limit=args.limit,
        progress=not args.no_progress,
        num_threads=args.num_threads,
        **kwargs,
    )


def quiet_hf_progress() -> None:
    """Hide transformers' weight-loading bars (they would break the evaluation's bar)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def setup_logging(level: str = "INFO") -> None:
    """Script logging: ``LEVEL message`` lines on stderr; noisy libraries kept at WARNING."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    for name in ("httpx", "urllib3", "PIL"):
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet_hf_progress()


def config_summary(config: EvalConfig) -> dict[str, Any]:
    """The settings written into result files (the fingerprint, without absolute paths)."""
    summary = asdict(config)
    summary.pop("device", None)
    summary.pop("sam2_device", None)
    return summary
