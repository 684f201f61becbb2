"""The evaluation behind ``eval/*.py``: ordering, batching, sharding, resume, records,
metrics and reports. The scripts only load their dataset and name their outputs.

===========  ==============================================================================
module       what
===========  ==============================================================================
``config``   :class:`EvalConfig` (the settings that decide the outputs), errors, file names
``records``  samples, order, chunks, the on-disk store (records, run file, lock, RLE)
``runner``   per-sample work, workers, resume: :func:`run_evaluation`
``reports``  metrics from the records, coverage, tables, case grids, the result files
``cli``      the arguments and logging shared by the three scripts
===========  ==============================================================================

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

from seg_r1.evaluation.cli import (
    RunArguments,
    eval_config,
    eval_parser,
    parse_eval_args,
    run_from_args,
    setup_logging,
)
from seg_r1.evaluation.config import (
    DEFAULT_REPORT_CASES,
    IGNORE_MODES,
    TASKS,
    EvalConfig,
    EvalError,
    config_summary,
)
from seg_r1.evaluation.records import (
    Sample,
    check_run_file,
    default_group,
    make_chunks,
    mask_relpath,
    order_samples,
    plain_rows,
    read_records,
    repair_jsonl,
    write_json,
    write_jsonl,
)
from seg_r1.evaluation.reports import (
    EXPECTED_SAMPLES,
    coverage,
    coverage_warning,
    foreground_summary,
    grouped_iou_summary,
    iou_summary,
    iou_table,
    samples_by_id,
    select_cases,
    split_coverage,
    warn_incomplete,
    write_case_report,
    write_foreground_report,
    write_iou_report,
)
from seg_r1.evaluation.runner import (
    parse_gpu_ids,
    process_chunk,
    run_chunks,
    run_evaluation,
    torch_threads,
)

__all__ = [
    "DEFAULT_REPORT_CASES",
    "EXPECTED_SAMPLES",
    "IGNORE_MODES",
    "TASKS",
    "EvalConfig",
    "EvalError",
    "Sample",
    "RunArguments",
    "check_run_file",
    "eval_config",
    "eval_parser",
    "config_summary",
    "coverage",
    "coverage_warning",
    "default_group",
    "foreground_summary",
    "grouped_iou_summary",
    "iou_summary",
    "iou_table",
    "make_chunks",
    "mask_relpath",
    "order_samples",
    "parse_gpu_ids",
    "parse_eval_args",
    "plain_rows",
    "process_chunk",
    "read_records",
    "repair_jsonl",
    "run_chunks",
    "run_evaluation",
    "run_from_args",
    "samples_by_id",
    "select_cases",
    "setup_logging",
    "split_coverage",
    "torch_threads",
    "warn_incomplete",
    "write_case_report",
    "write_foreground_report",
    "write_iou_report",
    "write_json",
    "write_jsonl",
]
