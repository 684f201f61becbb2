"""Two controls for a finished quickstart run: does its GRPO gain come from the *rewards*?

    python -m seg_r1.learning_controls runs/quickstart             # both controls, one run
    python -m seg_r1.learning_controls runs/learning_seeds/seed{0,1,2} --out controls.md
    python -m seg_r1.learning_controls runs/quickstart --samples 8  # + the sampled policies

GRPO's gain over the SFT policy (``iou_grpo - iou_sft`` in ``summary.json``) mixes what the
rewards teach with what any further training at GRPO's small learning rate gives a policy whose
SFT ended at a large one. Each control starts from the run's own SFT policy, trains as many
steps as its GRPO stage did, and is scored on the run's held-out scenes as the chain scores its
policies (:func:`seg_r1.learning.score_checkpoint`):

* ``sft_control`` -- more SFT (the run's SFT recipe and arguments) at the GRPO stage's logged
  learning rate, constant, no warm-up: what a lower learning rate alone gives;
* ``shifted_masks`` -- the run's GRPO recipe and arguments on a copy of its training split in
  which each image's ground truth is the *next* image's mask (symlinks, the last image taking
  the first mask): the same loop, rewards that do not describe the image. This is also what a
  reward attached to the wrong completion would look like.

GRPO carries learning of its own when it ends clearly above both. Each run folder gets
``controls.json`` (written after each control; a control already in it is not run again) and
its control policies in ``sft_control/`` and ``grpo_shifted_masks/``; a Markdown table with a
row per run is printed (and written with ``--out``). About 2 + 6 minutes a run on 2 cores.

GRPO optimises the reward of *sampled* answers; the chain scores greedy ones. ``--samples K``
also scores each policy of a run on K answers a held-out scene drawn as GRPO's rollouts are
(:func:`run_sampled`; ``"sampled"`` in ``controls.json``) and prints a second table of those:
what the training changed in the policy it sampled, beside what it changed in the greedy answer.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seg_r1.data.synthetic_trees import foreground_split_dirs
from seg_r1.learning import score_checkpoint
from seg_r1.logs import setup_logging
from seg_r1.quickstart import (
    CLASSICAL_ITERATIONS,
    FRAME_SIZE,
    MAX_NEW_TOKENS,
    OWN_ANSWERS,
    RUN_QUIET_LOGGERS,
    run_stage,
)

logger = logging.getLogger(__name__)

#: The controls, in the order they run: name -> the folder its policy is saved in.
CONTROLS = {"sft_control": "sft_control", "shifted_masks": "grpo_shifted_masks"}
#: What :func:`run_sampled` keeps of each policy's scores.
SAMPLED_KEYS = ("iou", "iou_sampled", "iou_best_of_samples", "iou_sampled_shuffled")


def logged_learning_rate(stage_dir: Path) -> float:
    """The largest learning rate a trained stage logged (``trainer_state.json``): its constant
    rate, or the peak of a schedule.

    Raises:
        FileNotFoundError: no ``trainer_state.json``. ValueError: no rate logged.
    """
    path = stage_dir / "trainer_state.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a finished training stage")
    log = json.loads(path.read_text())["log_history"]
    rates = [float(e["learning_rate"]) for e in log if e.get("learning_rate") is not None]
    if not rates:
        raise ValueError(f"{path}: no learning_rate logged")
    return max(rates)


def write_shifted_masks(data: Path, out: Path) -> int:
    """A training split at ``out`` whose image ``i`` (sorted by name) has image ``i + 1``'s mask
    (the last one the first's): symlinks to ``data``'s files, copies where links fail. Returns
    the number of images.

    Raises:
        FileNotFoundError: ``data`` has no synthetic training split, or an image has no mask.
    """
    image_dir, mask_dir = foreground_split_dirs(data, "train")
    images = sorted(image_dir.glob("*.jpg"))
    if len(images) < 2:
        raise FileNotFoundError(f"{image_dir}: fewer than 2 training images")
    masks = [mask_dir / f"{image.stem}.png" for image in images]
    for mask in masks:
        if not mask.is_file():
            raise FileNotFoundError(f"{mask}: the mask of a training image is missing")
    shutil.rmtree(out, ignore_errors=True)
    out_images, out_masks = foreground_split_dirs(out, "train")
    for folder in (out_images, out_masks):
        folder.mkdir(parents=True)
    for i, image in enumerate(images):
        pairs = ((image, out_images / image.name),
                 (masks[(i + 1) % len(images)], out_masks / masks[i].name))  # fmt: skip
        for source, link in pairs:
            try:
                link.symlink_to(source.resolve())
            except OSError:
                shutil.copyfile(source, link)
    return len(images)


def _read_run(run: Path) -> dict[str, Any]:
    path = run / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m seg_r1.quickstart --out {run}`")
    summary = json.loads(path.read_text())
    if "--data_root" in shlex.split(summary.get("grpo_args") or ""):
        raise ValueError(f"{path}: its GRPO arguments set --data_root; the controls need its data")
    return summary


def policy_dirs(run: Path, summary: dict[str, Any]) -> dict[str, Path]:
    """The folders of a run's policies: its SFT policy (its ``sft/``, or the ``--sft-from`` it
    reused), its GRPO policy and each control's (which may not exist yet)."""
    sft = Path(summary["sft_from"]) if summary.get("sft_from") else run / "sft"
    return {"sft": sft, "grpo": run / "grpo", **{n: run / d for n, d in CONTROLS.items()}}


def run_control(run: Path, name: str, batch_size: int = 16) -> dict[str, Any]:
    """Train and score control ``name`` (a key of :data:`CONTROLS`) of the finished quickstart
    run in ``run``; returns its scores with its settings and seconds."""
    if name not in CONTROLS:
        raise ValueError(f"unknown control {name!r}: one of {sorted(CONTROLS)}")
    summary = _read_run(run)
    sft_dir = policy_dirs(run, summary)["sft"]
    steps, seed, data = int(summary["steps"]), int(summary["seed"]), run / "data"
    policy = run / CONTROLS[name]
    tick = time.time()
    if name == "sft_control":
        rate = logged_learning_rate(run / "grpo")
        extra = [*shlex.split(summary.get("sft_args") or ""), "--learning_rate", f"{rate:g}",
                 "--lr_scheduler_type", "constant", "--warmup_steps", "0"]  # fmt: skip
        logger.info("%s: SFT from %s, %d steps at lr %g", run, sft_dir, steps, rate)
        run_stage("sft", sft_dir, data, policy, steps, seed, extra=extra)
        settings: dict[str, Any] = {"learning_rate": rate}
    else:  # shifted_masks
        shifted = run / "data_shifted_masks"
        n = write_shifted_masks(data, shifted)
        logger.info("%s: GRPO from %s, %d steps, masks shifted by one (%d images)",
                    run, sft_dir, steps, n)  # fmt: skip
        extra = shlex.split(summary.get("grpo_args") or "")
        run_stage("grpo", sft_dir, shifted, policy, steps, seed, extra=extra)
        settings = {"data": str(shifted)}
    seconds = time.time() - tick
    scores = score_checkpoint(policy, data, FRAME_SIZE, CLASSICAL_ITERATIONS, batch_size,
                              MAX_NEW_TOKENS, OWN_ANSWERS)  # fmt: skip
    return {"from": str(sft_dir), "steps": steps, **settings, "seconds": round(seconds, 1),
            "iou": round(scores["iou"], 4), "iou_shuffled": round(scores["iou_shuffled"], 4),
            "format_ok": scores["format_ok"], "distinct_answers": scores["distinct_answers"]}  # fmt: skip


def run_controls(run: Path, names: Sequence[str] = tuple(CONTROLS)) -> dict[str, Any]:
    """:func:`run_control` of each of ``names`` not yet in ``run/controls.json``; the file is
    rewritten after each. Returns its content."""
    path = run / "controls.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    for name in names:
        if name in done:
            logger.info("%s: %s already in %s, kept", run, name, path)
            continue
        done[name] = run_control(run, name)
        path.write_text(json.dumps(done, indent=2) + "\n")
    return done


def run_sampled(run: Path, samples: int, batch_size: int = 16) -> dict[str, Any]:
    """The sampled measure (:func:`seg_r1.learning.evaluate_policy`: ``samples`` answers a
    held-out scene at temperature 1, the run's seed) of each of the run's policies that exists:
    SFT, GRPO and the controls, in ``run/controls.json`` under ``"sampled"`` (written after each
    policy; those already scored with as many samples are kept). Returns the file's content."""
    path = run / "controls.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    sampled = done.get("sampled", {})
    entries = [entry for entry in sampled.values() if isinstance(entry, dict)]
    if sampled.get("samples") != samples or any(set(SAMPLED_KEYS) - set(e) for e in entries):
        sampled = {"samples": samples}  # another K, or figures of an older version: redone
    summary = _read_run(run)
    for name, policy in policy_dirs(run, summary).items():
        if name in sampled or not (policy / "config.json").is_file():
            continue
        scores = score_checkpoint(policy, run / "data", FRAME_SIZE, CLASSICAL_ITERATIONS,
                                  batch_size, MAX_NEW_TOKENS, OWN_ANSWERS, samples,
                                  int(summary["seed"]))  # fmt: skip
        sampled[name] = {key: round(scores[key], 4) for key in SAMPLED_KEYS}
        done["sampled"] = sampled
        path.write_text(json.dumps(done, indent=2) + "\n")
    return done


def _ious(summary: dict[str, Any], controls: dict[str, Any], sampled: bool) -> list[Any]:
    """SFT, GRPO, GRPO on shuffled images and control IoUs of a run (``None`` where not
    measured): greedy, or with ``sampled`` those of the sampled answers."""
    if sampled:
        got = controls.get("sampled", {})
        ious = [got[n]["iou_sampled"] if n in got else None for n in ("sft", "grpo")]
        ious.append(got["grpo"].get("iou_sampled_shuffled") if "grpo" in got else None)
        return ious + [got[n]["iou_sampled"] if n in got else None for n in CONTROLS]
    ious = [summary["iou_sft"], summary["iou_grpo"], summary.get("iou_shuffled")]
    return ious + [controls[n]["iou"] if n in controls else None for n in CONTROLS]


def controls_table(
    runs: Sequence[tuple[Path, dict[str, Any], dict[str, Any]]], sampled: bool = False
) -> str:
    """A Markdown table of ``(run folder, summary, controls)``: the SFT, GRPO and control IoUs,
    GRPO's on shuffled images (its answer about image i + 1 segmented on image i: low when the
    answers depend on the image) and GRPO's margin over the SFT policy and over each control;
    greedy answers, or with ``sampled`` the sampled ones (:func:`run_sampled`)."""
    prefix = "iou_sampled_" if sampled else "iou_"
    names = ("sft", "grpo", "grpo_shuffled", *CONTROLS)
    head = ["run", "seed", *(prefix + n for n in names),
            "grpo − sft", "grpo − sft_control", "grpo − shifted_masks"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, summary, controls in runs:
        sft, grpo, shuffled, *rest = _ious(summary, controls, sampled)
        others = [sft, *rest]
        cells = [str(run), str(summary["seed"])]
        cells += ["-" if v is None else f"{float(v):.3f}" for v in (sft, grpo, shuffled, *rest)]
        cells += ["-" if None in (iou, grpo) else f"{grpo - iou:+.3f}" for iou in others]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="finished quickstart run folders")
    parser.add_argument("--only", choices=sorted(CONTROLS), default=None, help="one control")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    parser.add_argument("--samples", type=int, default=0, metavar="K", help="also score every "
                        "policy of each run on K answers a scene sampled as GRPO samples them, "
                        "in a second table (about 1 minute a policy for K = 8)")  # fmt: skip
    args = parser.parse_args(argv)
    setup_logging(fmt="%(message)s", quiet=RUN_QUIET_LOGGERS)
    names = [args.only] if args.only else list(CONTROLS)
    rows = []
    for run in args.runs:
        summary = _read_run(run)  # a run that is not a finished quickstart fails before any work
        controls = run_controls(run, names)
        if args.samples > 0:
            controls = run_sampled(run, args.samples)
        rows.append((run, summary, controls))
    table = controls_table(rows)
    if args.samples > 0:
        table += f"\n{args.samples} sampled answers a scene (temperature 1):\n\n"
        table += controls_table(rows, sampled=True)
    if args.out:
        args.out.write_text(table)
    sys.stdout.write(table)
    return table


if __name__ == "__main__":
    main()
