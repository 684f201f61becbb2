"""From :mod:`seg_r1.data` datasets to what TRL's trainers read, and SFT trace synthesis.

Everything here is a *lazy* view (``Dataset.with_transform``): images are decoded, resized to
the training frame and wrapped in a chat only when the trainer fetches a row, so nothing is
re-encoded or copied to disk and a 7k-image set costs nothing to prepare.

GRPO rows (:func:`grpo_dataset`) -- the columns TRL 1.16's ``GRPOTrainer`` and
:mod:`seg_r1.rewards` read:

* ``prompt``: the conversation of SPEC §2 with an image *placeholder* (``{"type": "image"}``);
  TRL fills it from ``image`` (``prepare_multimodal_messages``). Foreground rows get the
  stage's prompt (``rl``/``sod``/``prerl``), referring and reasoning rows their task prompt;
* ``image``: the image resized to the square frame (PIL RGB, ``frame_size`` x ``frame_size``,
  aspect ratio ignored) -- what the policy sees and what the rewards segment;
* every column of the source (``mask``, ``task``, ``annotation``, ...) unchanged: the
  rewards resize the ground truth to the frame themselves.

SFT rows (:func:`sft_dataset_from_masks`, :func:`sft_dataset_from_fcot`) are TRL's
conversational *prompt-completion* format (``prompt``, ``completion``, ``image``), so the loss
covers the answer only (``completion_only_loss``, TRL's default for this format).

Synthesised traces (:func:`synthesize_trace`) turn a ground-truth mask in the frame into an
answer in the grammar: one box per object (connected component), foreground points at the
deepest interior pixels, background points inside the box but off the object, and a short
templated reasoning sentence (where the object is, how large it is). They give the SFT
warm-up of the CPU quickstart a target and are deterministic (no random numbers).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image

from seg_r1 import data
from seg_r1.answer import format_answer, parse_answer
from seg_r1.configs import DatasetSpec, SegR1DataArguments
from seg_r1.data import load_image, load_mask
from seg_r1.frame import resize_mask, resize_to_frame
from seg_r1.prompts import build_chat, build_sft_chat
from seg_r1.tasks import get_task

logger = logging.getLogger(__name__)

#: Largest connected components turned into boxes by :func:`synthesize_trace`.
MAX_TRACE_OBJECTS = 3
#: Components smaller than this share of the largest one are noise, not objects.
MIN_COMPONENT_SHARE = 0.05


# --------------------------------------------------------------------------- loading


def load_dataset_spec(spec: DatasetSpec, args: SegR1DataArguments) -> Any:
    """One ``datasets`` entry as a :class:`datasets.Dataset` of :mod:`seg_r1.data`'s schema."""

    if spec.kind == "foreground":
        return data.load_foreground_dataset(spec.name, root=args.data_root, split=spec.split)
    if spec.kind == "referring":
        return data.load_refer_dataset(
            spec.name, spec.split, root=args.data_root, image_root=args.refer_image_root
        )
    if spec.kind == "reasoning":
        # Training uses every query of a sample (one row each); evaluation uses the first.
        return data.load_reasonseg_dataset(
            spec.split, root=args.data_root, queries="all", empty_targets="skip"
        )
    if spec.kind == "stage":
        return data.stage_manifest(spec.name, root=args.data_root)
    raise ValueError(f"unknown dataset kind {spec.kind!r}")


def load_segmentation_data(args: SegR1DataArguments) -> Any:
    """Concatenate the ``datasets`` entries of ``args`` (first ``max_train_samples`` kept).

    Raises:
        seg_r1.data.DatasetError: a dataset folder is missing (the message names it).
        ValueError: the entries hold no example.
    """
    import datasets

    parts = []
    for spec in args.dataset_specs:
        part = load_dataset_spec(spec, args)
        logger.info("%s %s: %d examples", spec.name, spec.split, len(part))
        parts.append(part)
    dataset = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    if args.max_train_samples is not None:
        dataset = dataset.select(range(min(args.max_train_samples, len(dataset))))
    if len(dataset) == 0:
        raise ValueError(f"no training example in {args.datasets} under {args.data_root}")
    return dataset


# --------------------------------------------------------------------------- images


def frame_image(value: Any, frame_size: int) -> Image.Image:
    """An image column value (PIL, path, ``{"path", "bytes"}``) as an RGB PIL image of
    ``frame_size`` x ``frame_size`` pixels (SPEC §2: aspect ratio ignored)."""

    rgb = np.asarray(load_image(value))
    return Image.fromarray(resize_to_frame(rgb, frame_size))


def _rows(batch: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    n = len(next(iter(batch.values())))
    return [{key: values[i] for key, values in batch.items()} for i in range(n)]


def _columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    return {key: [row[key] for row in rows] for key in rows[0]}


# --------------------------------------------------------------------------- GRPO


def prompt_task(row: Mapping[str, Any], stage: str) -> str:
    """The :func:`seg_r1.prompts.build_chat` task of a row: the stage for foreground rows,
    ``referring`` / ``reasoning`` for the others."""
    task = row.get("task", "foreground")
    if task == "foreground":
        return stage
    if stage == "prerl":
        raise ValueError(
            f"the pre-RL stage trains on foreground data only (points-only prompt), got a "
            f"{task!r} example {row.get('id')!r}; drop it from `datasets` or use stage rl"
        )
    return task


def check_stage_tasks(dataset: Any, stage: str) -> None:
    """Raise :func:`prompt_task`'s error for the first row ``stage`` cannot prompt (pre-RL
    trains on foreground rows only): at the edge, not at the first batch."""
    if stage == "prerl":
        others = set(dataset["task"]) - {"foreground"}
        if others:
            prompt_task({"task": sorted(others)[0]}, stage)


@dataclass(frozen=True)
class GRPOTransform:
    """``with_transform`` function adding ``prompt`` and the frame-sized ``image``."""

    stage: str
    frame_size: int
    coordinates: str = "frame"

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
        rows = _rows(batch)
        for row in rows:
            row["prompt"] = build_chat(
                prompt_task(row, self.stage),
                query=row.get("query") or "",
                query_type=row.get("query_type") or "",
                coordinates=self.coordinates,
            )
            row["image"] = frame_image(row["image"], self.frame_size)
        return _columns(rows)


def grpo_dataset(dataset: Any, stage: str, frame_size: int, coordinates: str = "frame") -> Any:
    """A lazy GRPO view of a :mod:`seg_r1.data` dataset (columns: module doc); ``coordinates``
    is the answers' convention (the prompts tell a ``relative_1000`` policy so)."""
    check_stage_tasks(dataset, stage)
    return dataset.with_transform(GRPOTransform(stage, frame_size, coordinates))


# --------------------------------------------------------------------------- trace synthesis


@dataclass(frozen=True)
class Trace:
    """A synthesised answer: ``think`` text and prompts in frame pixels."""

    think: str
    boxes: np.ndarray
    points: np.ndarray
    labels: np.ndarray

    @property
    def answer(self) -> str:
        """The answer in the canonical grammar (:func:`seg_r1.answer.format_answer`), frame
        pixels."""
        return format_answer(self.boxes, self.points, self.labels, think=self.think)

    def answer_in(self, frame_size: int, coordinates: str, mode: str = "full") -> str:
        """The answer written in the ``coordinates`` convention of a ``frame_size`` frame, in
        the ``mode`` grammar: ``"full"`` (think + boxes + points + labels) or ``"points"``
        (pre-RL: points and labels only)."""
        full = mode == "full"
        return format_answer(
            self.boxes if full else (),
            self.points,
            self.labels,
            think=self.think if full else None,
            frame_size=frame_size,
            coordinates=coordinates,
        )


def _deepest(
    distance: np.ndarray, count: int, spacing: float, centre: tuple[float, float]
) -> list[tuple[int, int]]:
    """Up to ``count`` ``(x, y)`` pixels of largest ``distance``, at least ``spacing`` apart.

    Ties (pixels within 10 % of the best remaining distance -- a rectangle has a whole ridge of
    them) go to the pixel nearest ``centre`` ``(x, y)``, so the first point sits mid-object.
    """
    distance = distance.astype(np.float64).copy()
    h, w = distance.shape
    yy, xx = np.mgrid[:h, :w]
    to_centre = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2
    picked: list[tuple[int, int]] = []
    for _ in range(count):
        best = distance.max()
        if best <= 0:
            break
        near_best = distance >= 0.9 * best
        index = int(np.argmin(np.where(near_best, to_centre, np.inf)))
        y, x = divmod(index, w)
        picked.append((x, y))
        distance[(xx - x) ** 2 + (yy - y) ** 2 < spacing**2] = 0
    return picked


def _where(cx: float, cy: float, w: int, h: int) -> str:
    """One position word for a centroid: center, or the side it leans to most."""
    dx, dy = cx / w - 0.5, cy / h - 0.5
    if max(abs(dx), abs(dy)) < 1 / 6:
        return "center"
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "top" if dy < 0 else "bottom"


def _size_word(share: float) -> str:
    return "small" if share < 0.1 else "large"


def synthesize_trace(mask: np.ndarray, fg_points: int = 2, bg_points: int = 1) -> Trace:
    """An answer for a ground-truth mask ``bool (H, W)`` given in the frame.

    Per object (connected component, the :data:`MAX_TRACE_OBJECTS` largest, ignoring those
    under :data:`MIN_COMPONENT_SHARE` of the largest): the tight box ``[x1, y1, x2 + 1,
    y2 + 1]`` (continuous XYXY, SPEC §2), ``fg_points`` points at the deepest interior pixels
    (label 1) and ``bg_points`` points inside the box but farthest from the object (label 0;
    fewer when the object fills its box). Coordinates are integer frame pixels. An empty
    mask gives a whole-frame box and no points.
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    count, labels_img, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if count <= 1:
        return Trace(
            "No object is visible, so the whole image is the answer.",
            np.array([[0, 0, w, h]], dtype=np.float64),
            np.zeros((0, 2)),
            np.zeros((0,), dtype=np.int64),
        )
    order = [int(i) for i in np.argsort(-areas)[:MAX_TRACE_OBJECTS]]
    order = [i for i in order if areas[i] >= MIN_COMPONENT_SHARE * areas[order[0]]]
    boxes, points, labels, words = [], [], [], []
    for comp in order:
        x, y = stats[comp + 1, cv2.CC_STAT_LEFT], stats[comp + 1, cv2.CC_STAT_TOP]
        bw, bh = stats[comp + 1, cv2.CC_STAT_WIDTH], stats[comp + 1, cv2.CC_STAT_HEIGHT]
        boxes.append([x, y, x + bw, y + bh])
        obj = labels_img == comp + 1
        spacing = max(2.0, 0.25 * min(bw, bh))
        cy, cx = np.argwhere(obj).mean(axis=0)
        inside = cv2.distanceTransform(obj.astype(np.uint8), cv2.DIST_L2, 3)
        for px, py in _deepest(inside, fg_points, spacing, (cx, cy)):
            points.append([px, py])
            labels.append(1)
        if bg_points:
            in_box = np.zeros_like(obj)
            in_box[y : y + bh, x : x + bw] = True
            off = in_box & ~mask
            if off.any():
                outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
                for px, py in _deepest(np.where(off, outside, 0), bg_points, spacing, (cx, cy)):
                    points.append([px, py])
                    labels.append(0)
        size = _size_word(float(areas[comp]) / (h * w))
        words.append(f"a {size} object near the {_where(cx, cy, w, h)}")
    # The words are those of the tiny tokenizer's corpus (seg_r1.tiny), so a trace is short.
    think = (
        f"The object is {words[0]}."
        if len(words) == 1
        else f"There are {len(words)} objects: " + " and ".join(words) + "."
    )
    return Trace(
        think,
        np.asarray(boxes, dtype=np.float64),
        np.asarray(points, dtype=np.float64).reshape(-1, 2),
        np.asarray(labels, dtype=np.int64),
    )


# --------------------------------------------------------------------------- SFT


def coarse_trace(
    trace: Trace, grid: int, frame_size: int, margin: int = 0, min_core_half: int = 2
) -> Trace:
    """``trace`` with its boxes snapped to multiples of ``grid`` frame pixels (each side to the
    nearest; a collapsed side grows to one cell, inside the frame) and its points moved to the
    centres of their ``grid`` cells: an answer that says roughly where the object is, not
    exactly; then each box side moved out by ``margin`` pixels (inside the frame): a loose box;
    ``margin`` < 0 moves them in: a core box, each side ``min_core_half`` or more from its centre."""
    if grid <= 0 and margin == 0:
        return trace
    boxes, points = trace.boxes, trace.points
    if grid > 0:
        boxes = np.clip(np.round(boxes / grid) * grid, 0, frame_size)
        for lo, hi in ((0, 2), (1, 3)):
            flat = boxes[:, hi] <= boxes[:, lo]
            boxes[flat, hi] = np.minimum(boxes[flat, lo] + grid, frame_size)
            boxes[flat, lo] = boxes[flat, hi] - grid
        points = np.clip(np.floor(points / grid) * grid + grid // 2, 0, frame_size - 1)
    if margin != 0:
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        boxes = boxes + np.array([-margin, -margin, margin, margin])
        if margin < 0:  # a core box keeps a little width and height around its centre
            boxes[:, :2] = np.minimum(boxes[:, :2], np.floor(centres - min_core_half))
            boxes[:, 2:] = np.maximum(boxes[:, 2:], np.ceil(centres + min_core_half))
        boxes = np.clip(boxes, 0, frame_size)
    return Trace(trace.think, boxes, points, trace.labels)


def jitter_trace(trace: Trace, jitter: int, frame_size: int, rng: np.random.Generator) -> Trace:
    """``trace`` with each box side moved by a random whole number of frame pixels in
    ``[-jitter, jitter]`` (inside the frame, each box at least one pixel wide and tall); points,
    labels and think text kept. Drawn anew on every call: SFT on such answers learns a spread
    of boxes around the object, for RL to sharpen."""
    if jitter <= 0 or not len(trace.boxes):
        return trace
    boxes = trace.boxes + rng.integers(-jitter, jitter + 1, size=trace.boxes.shape)
    boxes = np.clip(boxes, 0, frame_size)
    for lo, hi in ((0, 2), (1, 3)):
        boxes[:, lo] = np.minimum(boxes[:, lo], frame_size - 1)
        boxes[:, hi] = np.maximum(boxes[:, hi], boxes[:, lo] + 1)
    return Trace(trace.think, boxes, trace.points, trace.labels)


def _assistant(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


#: Column of a ``trace_from="next"`` SFT view: the row whose mask the trace is synthesised from.
TRACE_ROW = "trace_row"
#: Where a synthesised trace's mask comes from: the row's own, or the next row's (a control).
TRACE_FROM = ("own", "next")


@dataclass(frozen=True)
class TraceSFTTransform:
    """``with_transform`` function: frame image, the ``stage``'s prompt (foreground rows; the
    others their task's), synthesised answer in that task's grammar (from the row's mask, or
    from the mask of row ``row[TRACE_ROW]`` of ``trace_rows`` when that is given: the whole
    answer, or with ``box_swap`` > 0 the boxes alone, on that share of reads)."""

    frame_size: int
    fg_points: int
    bg_points: int
    coordinates: str = "frame"
    trace_rows: Any = None
    stage: str = "rl"
    grid: int = 0
    jitter: int = 0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    box_swap: float = 0.0
    margin: int = 0

    def _trace(self, source: Mapping[str, Any]) -> Trace:
        gt = resize_mask(load_mask(source), self.frame_size)
        trace = synthesize_trace(gt, self.fg_points, self.bg_points)
        return coarse_trace(trace, self.grid, self.frame_size, self.margin)

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:

        out: dict[str, list[Any]] = {"prompt": [], "completion": [], "image": []}
        for row in _rows(batch):
            other = None if self.trace_rows is None else self.trace_rows[int(row[TRACE_ROW])]
            trace = self._trace(row if other is None or self.box_swap > 0 else other)
            if other is not None and self.box_swap > 0 and self.rng.random() < self.box_swap:
                boxes = self._trace(other).boxes
                trace = Trace(trace.think, boxes, trace.points, trace.labels)
            trace = jitter_trace(trace, self.jitter, self.frame_size, self.rng)
            task = prompt_task(row, self.stage)
            asked = {"query": row.get("query") or "", "query_type": row.get("query_type") or ""}
            out["prompt"].append(build_chat(task, coordinates=self.coordinates, **asked))
            mode = get_task(task).answer_mode
            answer = trace.answer_in(self.frame_size, self.coordinates, mode)
            out["completion"].append(_assistant(answer))
            out["image"].append(frame_image(row["image"], self.frame_size))
        return out


def sft_dataset_from_masks(
    dataset: Any,
    frame_size: int,
    fg_points: int = 2,
    bg_points: int = 1,
    coordinates: str = "frame",
    trace_from: str = "own",
    stage: str = "rl",
    grid: int = 0,
    jitter: int = 0,
    seed: int = 0,
    box_swap: float = 0.0,
    margin: int = 0,
) -> Any:
    """A lazy SFT view of a segmentation dataset: the prompt of GRPO stage ``stage`` (or the
    row's task prompt) and a trace synthesised from its mask (:func:`synthesize_trace`) in
    that task's grammar (``prerl``: points and labels only), in the frame, written in the
    ``coordinates`` convention; ``grid`` > 0 makes the answers coarse, ``margin`` > 0 their boxes
    loose and ``margin`` < 0 boxes on the object's core (:func:`coarse_trace`), ``jitter`` > 0
    moves box sides at random (seeded by ``seed``).

    ``trace_from="next"`` synthesises row ``i``'s trace from the mask of row ``i + 1`` (the
    last row's from the first): a control whose answers teach the grammar and the marginal
    box distribution but not where the object of THIS image is (for foreground sets, one
    object per image; the learning demo's RL-only run). ``box_swap`` = p > 0 takes the boxes
    of row ``i + 1`` on a share p of the reads of row ``i`` (drawn anew on each read, seeded by
    ``seed``), its points, labels and think text its own: SFT then teaches roughly where (the
    points) and a box distribution where the image's own box has weight 1 - p."""
    if trace_from not in TRACE_FROM:
        raise ValueError(f"trace_from must be one of {TRACE_FROM}, got {trace_from!r}")
    if not 0.0 <= box_swap <= 1.0:
        raise ValueError(f"box_swap must lie in [0, 1], got {box_swap}")
    if box_swap > 0 and trace_from != "own":
        raise ValueError("box_swap needs trace_from='own' (with 'next' every box is swapped)")
    check_stage_tasks(dataset, stage)
    trace_rows = None
    if trace_from == "next" or box_swap > 0:
        n = len(dataset)
        trace_rows = dataset.remove_columns(["image"])  # only the mask is read from it
        dataset = dataset.add_column(TRACE_ROW, [(i + 1) % n for i in range(n)])
    rng = np.random.default_rng(seed)
    transform = TraceSFTTransform(
        frame_size, fg_points, bg_points, coordinates, trace_rows, stage, grid, jitter, rng,
        box_swap=box_swap, margin=margin,
    )  # fmt: skip
    return dataset.with_transform(transform)


@dataclass(frozen=True)
class FCoTSFTTransform:
    """``with_transform`` function for FCoT rows: SPEC §2's SFT chat, split into prompt and
    completion (``thinking + " " + solution``); images optionally resized to a frame.

    FCoT solutions are written in pixels (of ``frame_size``, or of the image as stored when it
    is ``None``); with ``coordinates="relative_1000"`` each solution is parsed in those pixels
    and rewritten in 0..1000 (:func:`seg_r1.answer.format_answer`)."""

    frame_size: int | None
    coordinates: str = "frame"

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:

        out: dict[str, list[Any]] = {"prompt": [], "completion": [], "image": []}
        for row in _rows(batch):
            image = (
                load_image(row["image"])
                if self.frame_size is None
                else frame_image(row["image"], self.frame_size)
            )
            if self.coordinates != "frame":
                row = {**row, "solution": self._rewrite(row["solution"], image)}
            messages = build_sft_chat(row, coordinates=self.coordinates)
            out["prompt"].append(messages[:-1])
            out["completion"].append(messages[-1:])
            out["image"].append(image)
        return out

    def _rewrite(self, solution: str, image: Image.Image) -> str:
        hw = (image.height, image.width)
        answer = parse_answer(solution, hw)
        return format_answer(
            answer.boxes,
            answer.points,
            answer.labels,
            frame_size=hw,
            coordinates=self.coordinates,
        )


def sft_dataset_from_fcot(
    dataset: Any, frame_size: int | None = None, coordinates: str = "frame"
) -> Any:
    """A lazy SFT view of an FCoT-schema dataset (:func:`seg_r1.data.load_sft_dataset`)."""
    return dataset.with_transform(FCoTSFTTransform(frame_size, coordinates))
