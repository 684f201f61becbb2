"""The learning-proof measures of a trained policy (used by :mod:`seg_r1.quickstart`): its greedy
held-out IoU, the same with shuffled images and with its own frequent answers as constants
(:func:`evaluate_policy`), the GRPO reward at the start and end of a run (:func:`reward_window`)
and ``curves.png`` (:func:`write_curves`). The constant baselines are in :mod:`seg_r1.baselines`;
the held-out curve during training is :class:`seg_r1.callbacks.HeldOutIoU`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from seg_r1.baselines import answers_iou, constant_text_iou, mean_iou
from seg_r1.callbacks import HELDOUT_IOU_KEY
from seg_r1.inference import SegR1Pipeline
from seg_r1.policy import load_policy


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
) -> dict[str, Any]:
    """Greedy answers of a trained policy on the held-out images through
    :class:`seg_r1.inference.SegR1Pipeline` (RL prompt, the frame of training).

    With ``shuffled``, also the IoU when the policy is shown image ``i + 1`` (rolled by one)
    and its answer is segmented on image ``i`` against ground truth ``i`` (``iou_shuffled``):
    a policy that reads the image drops far below its ``iou``; one that writes
    image-independent answers does not. And the best of its most frequent answers given as a
    constant to every image (``iou_best_own_answer``)."""

    model, processor = load_policy(model_dir, device="cpu", dtype="float32")
    pipeline = SegR1Pipeline(
        model,
        processor,
        segmenter,
        frame_size=frame_size,
        task="rl",
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )

    def predict(inputs: Sequence[np.ndarray], desc: str) -> list[Any]:
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
            [p.completion for p in others], images, gts, segmenter, frame_size
        )
        # The policy's own answers as constants, scored on the same held-out images (the
        # best one is picked ON them: a strict bar). Beating it means the policy chooses the
        # answer per image, not only a better answer *shape* than the box-only constant.
        common = [text for text, _ in counts.most_common(own_answers)]
        result["iou_best_own_answer"] = max(
            constant_text_iou(text, images, gts, segmenter, frame_size) for text in common
        )
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
