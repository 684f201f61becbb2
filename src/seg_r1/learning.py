"""The learning-proof measures of a trained policy (used by :mod:`seg_r1.quickstart`): its greedy
held-out IoU, the same with shuffled images and with its own frequent answers as constants
(:func:`evaluate_policy`; one saved policy on a run's scenes: :func:`score_checkpoint`), the
GRPO reward at the start and end of a run (:func:`reward_window`), ``curves.png``
(:func:`write_curves`), the bars a run must clear (:func:`learning_bars`) and a table of runs
(:func:`seeds_table`). The constant baselines are in :mod:`seg_r1.baselines`; the held-out
curve during training is :class:`seg_r1.callbacks.HeldOutIoU`.

    python -m seg_r1.learning runs/learning_seeds/seed*/summary.json --out table.md
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from seg_r1.baselines import answers_iou, constant_text_iou, mean_iou
from seg_r1.callbacks import HELDOUT_IOU_KEY
from seg_r1.data import load_foreground_dataset, load_image, load_mask
from seg_r1.data.synthetic_trees import foreground_split_dirs
from seg_r1.inference import SegR1Pipeline
from seg_r1.metrics.iou import mask_iou
from seg_r1.policy import TRAINING_META, load_policy, read_training_meta

logger = logging.getLogger(__name__)


def load_scenes(
    data: Path, split: str, limit: int | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(images, masks)`` of a synthetic foreground tree's ``split`` (its first ``limit``
    scenes): RGB ``uint8`` and ``bool`` arrays."""

    dataset = load_foreground_dataset("synthetic", root=data, split=split)
    rows = [dataset[i] for i in range(min(len(dataset), limit or len(dataset)))]
    return [np.asarray(load_image(row)) for row in rows], [load_mask(row) for row in rows]


def evaluate_policy(
    model_dir: Path,
    images: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    segmenter: Any,
    batch_size: int,
    shuffled: bool = False,
    frame_size: int = 224,
    max_new_tokens: int = 96,
    own_answers: int = 8,
    task: str = "rl",
    samples: int = 0,
    temperature: float = 1.0,
    sample_seed: int = 0,
) -> dict[str, Any]:
    """Greedy answers of a trained policy on the held-out images through
    :class:`seg_r1.inference.SegR1Pipeline` (the prompt and grammar of ``task``: ``"rl"`` or
    ``"prerl"``; the frame of training).

    With ``shuffled``, also the IoU when the policy is shown image ``i + 1`` (rolled by one)
    and its answer is segmented on image ``i`` against ground truth ``i`` (``iou_shuffled``):
    a policy that reads the image drops far below its ``iou``; one that writes
    image-independent answers does not. And the best of its most frequent answers given as a
    constant to every image (``iou_best_own_answer``).

    With ``samples`` = k > 0, also the policy that training *samples* (GRPO optimises the
    reward of sampled answers, not of the greedy one): k answers a scene drawn at
    ``temperature`` (GRPO's rollout settings, torch seeded with ``sample_seed``), their mean
    IoU (``iou_sampled``: what the rollout IoU measures, on held-out scenes) and the mean over
    scenes of the best of the k (``iou_best_of_samples``); with ``shuffled`` too, the k answers
    about image ``i + 1`` segmented on image ``i`` (``iou_sampled_shuffled``)."""

    model, processor = load_policy(model_dir, device="cpu", dtype="float32")

    def predict(inputs: Sequence[np.ndarray], desc: str, sampled: bool = False) -> list[Any]:
        pipeline = SegR1Pipeline(
            model, processor, segmenter, frame_size=frame_size, task=task,
            max_new_tokens=max_new_tokens, batch_size=batch_size,
            temperature=temperature if sampled else None,
        )  # fmt: skip
        predictions = []
        for start in tqdm(range(0, len(inputs), batch_size), desc=desc, leave=False):
            predictions += pipeline.predict(inputs[start : start + batch_size])
        return predictions

    predictions = predict(images, f"eval {model_dir.name}")
    counts = Counter(p.completion for p in predictions)
    result = {
        "iou": mean_iou([p.mask for p in predictions], gts),
        "format_ok": float(np.mean([p.answer.format_ok for p in predictions])),
        "distinct_answers": len(counts),
        "example": predictions[0].completion,
    }
    if shuffled:
        # The policy answers about image i + 1; the answer is segmented on image i (the
        # segmenter must see the right image, or even a constant answer would score ~0).
        rolled = list(images[1:]) + list(images[:1])
        others = predict(rolled, f"eval {model_dir.name} (shuffled images)")
        result["iou_shuffled"] = answers_iou(
            [p.completion for p in others], images, gts, segmenter, frame_size, task
        )
        # The policy's own answers as constants, scored on the same held-out images (the
        # best one is picked ON them: a strict bar). Beating it means the policy chooses the
        # answer per image, not only a better answer *shape* than the box-only constant.
        common = [text for text, _ in counts.most_common(own_answers)]
        result["iou_best_own_answer"] = max(
            constant_text_iou(text, images, gts, segmenter, frame_size, task) for text in common
        )
    if samples > 0:
        torch.manual_seed(sample_seed)
        repeated = [image for image in images for _ in range(samples)]
        repeated_gts = [gt for gt in gts for _ in range(samples)]
        drawn = predict(repeated, f"sample {model_dir.name} x{samples}", sampled=True)
        ious = np.array([mask_iou(p.mask, gt) for p, gt in zip(drawn, repeated_gts)])
        ious = ious.reshape(len(images), samples)  # row i: the k answers about image i
        result["iou_sampled"] = float(ious.mean())
        result["iou_best_of_samples"] = float(ious.max(axis=1).mean())
        if shuffled:  # the k answers about image i + 1, segmented on image i
            about_next = [p.completion for p in drawn[samples:] + drawn[:samples]]
            result["iou_sampled_shuffled"] = answers_iou(
                about_next, repeated, repeated_gts, segmenter, frame_size, task
            )
        result.update(samples=samples, temperature=temperature)
    return result


def reward_window(trainer: Any, first: bool, fraction: float = 0.1) -> float:
    """Mean GRPO ``reward`` over the first (last) ``fraction`` of the logged steps (>= 1)."""
    rewards = [entry["reward"] for entry in trainer.state.log_history if "reward" in entry]
    if not rewards:
        return float("nan")
    k = max(1, round(fraction * len(rewards)))
    return float(np.mean(rewards[:k] if first else rewards[-k:]))


def write_curves(
    sft_log: Sequence[dict[str, Any]],
    grpo_log: Sequence[dict[str, Any]],
    path: Path,
    levels: dict[str, float] | None = None,
) -> None:
    """A PNG of the SFT loss (left), the GRPO rollout reward (middle) and GRPO IoUs (right):
    the rollouts' IoU per logged step, the greedy held-out IoU every N steps (``heldout/iou``
    of :class:`HeldOutIoU`), and ``levels`` (name -> held-out IoU: the SFT policy, the
    constants) as horizontal lines.
    ``*_log``: the stages' ``trainer.state.log_history`` (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(log: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
        rows = [e for e in log if key in e and "step" in e]
        return [e["step"] for e in rows], [float(e[key]) for e in rows]

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4))
    left.plot(*series(sft_log, "loss"))
    left.set(title="SFT warm-up", xlabel="step", ylabel="token loss")
    steps, reward = series(grpo_log, "reward")
    middle.plot(steps, reward, alpha=0.35, color="tab:orange", label="per step")
    if reward:
        k = max(1, len(reward) // 20)  # a moving average over ~5% of the run reads the trend
        smooth = np.convolve(reward, np.ones(k) / k, mode="valid")
        middle.plot(steps[k - 1 :], smooth, color="tab:orange", label=f"{k}-step mean")
    middle.set(title="GRPO rollout reward (format + segmentation, max 2)", xlabel="step")
    middle.legend(fontsize=7)
    steps_iou, iou = series(grpo_log, "segmentation/iou")
    if iou:
        k = max(1, len(iou) // 20)
        smooth = np.convolve(iou, np.ones(k) / k, mode="valid")
        right.plot(
            steps_iou[k - 1 :], smooth, color="tab:blue", label=f"rollout IoU ({k}-step mean)"
        )
    held_steps, held = series(grpo_log, HELDOUT_IOU_KEY)
    if held:
        right.plot(held_steps, held, "o-", color="black", label="held-out IoU (greedy)")
    styles = iter([("tab:green", "--"), ("grey", ":"), ("tab:red", "-."), ("tab:purple", "--")])
    for name, value in (levels or {}).items():
        color, style = next(styles, ("grey", ":"))
        right.axhline(value, linestyle=style, color=color, linewidth=1, label=name)
    right.set(title="GRPO: IoU (classical segmenter)", xlabel="step", ylim=(0, 1))
    right.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


#: The learning-proof bars on the held-out split (issue "Learning proof, part 2"): name ->
#: (the two summary keys subtracted, the least difference). GRPO must carry the learning
#: (``iou_grpo - iou_sft``), beat the strongest constant answer we know, and depend on the
#: image (its IoU falls when it answers about another image). Time is reported, not a bar here.
LEARNING_BARS: dict[str, tuple[str, str, float]] = {
    "grpo_gain": ("iou_grpo", "iou_sft", 0.15),
    "above_known_constant": ("iou_grpo", "iou_constant_known", 0.10),
    "shuffled_drop": ("iou_grpo", "iou_shuffled", 0.30),
}
#: The wall-clock bar of the quickstart on an idle 2-core machine (seconds; reported).
SECONDS_BAR = 900.0


def learning_bars(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each of :data:`LEARNING_BARS` on a quickstart ``summary``: ``{"value": difference,
    "bar": least difference, "ok": bool}``, plus ``seconds`` against :data:`SECONDS_BAR`."""
    out = {}
    for name, (minuend, subtrahend, bar) in LEARNING_BARS.items():
        value = float(summary[minuend]) - float(summary[subtrahend])
        out[name] = {"value": round(value, 4), "bar": bar, "ok": value >= bar}
    seconds = float(summary["seconds"])
    out["seconds"] = {"value": seconds, "bar": SECONDS_BAR, "ok": seconds <= SECONDS_BAR}
    return out


#: What the figures of a quickstart ``summary.json`` mean (its ``notes``).
SUMMARY_NOTES = (
    "IoU = mean per-image IoU on the held-out split (classical GrabCut segmenter, greedy "
    "decoding). reward_first/last = mean GRPO reward (format + segmentation, max 2) over "
    "the first/last 10% of logged steps. iou_constant = the best single constant answer "
    "(box + points) fitted on the training split; iou_constant_box = the best box alone; "
    "iou_constant_known = the best of every constant answer we know (the fitted ones and "
    "KNOWN_CONSTANT_ANSWERS), picked on the held-out split. "
    "iou_shuffled = the GRPO policy's IoU when it answers about the next held-out image "
    "and its answer is segmented on this one. "
    "iou_best_own_answer = the best of the GRPO policy's 8 most frequent held-out "
    "answers given as a constant answer to every held-out image."
)


def log_summary(summary: dict[str, Any]) -> None:
    """Log a quickstart ``summary`` as a table: the held-out IoUs, the reward, the bars."""
    rows = [
        ("constant answer (train fit)", summary["iou_constant"], "-"),
        ("constant box (train fit)", summary["iou_constant_box"], "-"),
        ("known constant (held-out)", summary["iou_constant_known"], "-"),
        ("SFT policy", summary["iou_sft"], summary["format_ok_sft"]),
        ("GRPO policy", summary["iou_grpo"], summary["format_ok_grpo"]),
        ("GRPO policy, shuffled images", summary["iou_shuffled"], "-"),
        ("best own answer as constant", summary["iou_best_own_answer"], "-"),
    ]
    logger.info("%-28s %10s %10s", f"held-out (n={summary['n_test']})", "IoU", "format ok")
    for name, iou, fmt in rows:
        logger.info("%-28s %10s %10s", name, f"{iou:.4f}", fmt if fmt == "-" else f"{fmt:.2f}")
    logger.info(
        "GRPO reward %.3f -> %.3f over %d steps; %.0f s in all",
        summary["reward_first"],
        summary["reward_last"],
        summary["steps"],
        summary["seconds"],
    )
    for name, bar in summary["bars"].items():
        mark = "ok" if bar["ok"] else "MISSED"
        logger.info("bar %-22s %9.3f (bar %g): %s", name, bar["value"], bar["bar"], mark)


#: Columns of :func:`seeds_table`: summary keys, then the bars' differences.
SEED_COLUMNS = ("seed", "iou_sft", "iou_grpo", "iou_constant_known", "iou_shuffled", "seconds")


def seeds_table(summaries: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of quickstart summaries (one row each, e.g. seeds 0-2): the IoUs, the
    seconds, each bar's difference with a check mark or a cross, and the steps/s of both
    stages."""
    names = list(LEARNING_BARS) + ["seconds"]
    head = [*SEED_COLUMNS[:-1], *(f"{n} (bar)" for n in names), "SFT steps/s", "GRPO steps/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for summary in summaries:
        bars = learning_bars(summary)
        cells = [str(summary["seed"])]
        cells += [f"{float(summary[key]):.3f}" for key in SEED_COLUMNS[1:-1]]
        for name in names:
            entry = bars[name]
            value = f"{entry['value']:.0f}" if name == "seconds" else f"{entry['value']:+.3f}"
            mark = "ok" if entry["ok"] else "MISSED"
            cells.append(
                f"{value} ({'<=' if name == 'seconds' else '>='} {entry['bar']:g}, {mark})"
            )
        for key in ("sft_steps_per_second", "grpo_steps_per_second"):
            rate = summary.get(key)
            cells.append("-" if rate is None else f"{float(rate):.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def score_checkpoint(
    policy: Path,
    data: Path,
    frame_size: int,
    classical_iterations: int,
    batch_size: int,
    max_new_tokens: int,
    own_answers: int,
    samples: int = 0,
    sample_seed: int = 0,
) -> dict[str, Any]:
    """:func:`evaluate_policy` (``shuffled`` too; ``samples`` sampled answers a scene at
    temperature 1, torch seeded with ``sample_seed``) of one saved policy on the held-out split of a
    synthetic tree: greedy, the classical segmenter, with the frame and GrabCut iterations the
    checkpoint recorded in its ``seg_r1.json`` -- ``frame_size`` and ``classical_iterations``
    where it records none (an SFT checkpoint records no segmenter). Returns the figures with
    the settings used (each logged with where it came from).

    Raises:
        FileNotFoundError: ``policy`` is not a saved policy, or ``data`` has no held-out scenes.
    """
    from seg_r1.segmenters import build_segmenter

    if not (policy / "config.json").is_file():
        raise FileNotFoundError(f"{policy}: no config.json, not a saved policy")
    facts = read_training_meta(policy)
    settings = {"frame_size": frame_size, "classical_iterations": classical_iterations}
    for key in settings:
        recorded = facts.get(key)
        if recorded is not None:
            settings[key] = int(recorded)
        source = TRAINING_META if recorded is not None else "the quickstart's"
        logger.info("scoring %s: %s %d (%s)", policy, key, settings[key], source)
    test_images = foreground_split_dirs(data, "test")[0]
    if not test_images.is_dir():
        raise FileNotFoundError(f"{test_images}: no held-out scenes")
    images, gts = load_scenes(data, "test")
    segmenter = build_segmenter("classical", iterations=settings["classical_iterations"])
    result = evaluate_policy(
        policy, images, gts, segmenter, batch_size, True, frame_size=settings["frame_size"],
        max_new_tokens=max_new_tokens, own_answers=own_answers,
        task="prerl" if facts.get("answer_mode") == "points" else "rl",
        samples=samples, sample_seed=sample_seed,
    )  # fmt: skip
    return {"policy": str(policy), "data": str(data), "n": len(images), **settings, **result}


def main(argv: list[str] | None = None) -> str:
    """Print (and with ``--out`` write) :func:`seeds_table` of quickstart summaries."""
    parser = argparse.ArgumentParser(description="A table of quickstart summary.json files.")
    parser.add_argument("summaries", nargs="+", help="summary.json files, one row each")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    table = seeds_table([json.loads(Path(path).read_text()) for path in args.summaries])
    if args.out:
        Path(args.out).write_text(table)
    sys.stdout.write(table)
    return table


if __name__ == "__main__":
    main()
