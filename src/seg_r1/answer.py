"""The answer grammar: parsing, writing, and the frame geometry its coordinates live in.

This is the ONLY module that reads or writes the answer text (SPEC §2). Rewards, evaluation,
SFT data generation and the demo all go through :func:`parse_answer` / :func:`format_answer`.

Grammar (any order, free text between the parts)::

    <think> reasoning </think> <bbox>[x1,y1,x2,y2]</bbox>, <points>[[x,y],...]</points>, <labels>[1,0,...]</labels>

Pre-RL answers carry only ``<points>[[x,y],...]</points> <labels>[1,0,...]</labels>``.

Conventions
-----------
Coordinates are absolute pixels of the *frame* the image was resized to (XYXY boxes, ``(x, y)``
points, sizes ``(height, width)``; :mod:`seg_r1.frame` states the conventions); coordinates
outside the frame are clipped to it. Labels: 1 = foreground (object) point, 0 = background.
A policy whose family grounds in relative coordinates (Qwen3-VL: ``0..1000``) WRITES its numbers
in that convention; ``parse_answer(..., coordinates="relative_1000")`` maps them to frame pixels
first (:func:`seg_r1.frame.answer_to_frame`, the one mapping), so every parsed answer is in frame
pixels whatever the convention.

Decisions (documented here, pinned by ``tests/test_answer.py``)
----------------------------------------------------------------
* **Reversed boxes are normalised:** ``x2 < x1`` or ``y2 < y1`` is read as the same box with
  the corners swapped (``[50,60,10,20]`` == ``[10,20,50,60]``). The intent is unambiguous and
  SAM2 itself would silently accept the reversed box.
* **Degenerate boxes are dropped:** a box whose area is zero *after clipping* (``x1 == x2``
  or ``y1 == y2``, including boxes entirely outside the frame) is not a valid box. It is
  counted in :attr:`ParsedAnswer.dropped_boxes`; the other boxes of the answer stay usable.
* **Box spelling:** a ``<bbox>`` holds a list of four numbers; one extra pair of brackets
  (``[[x1,y1,x2,y2]]``) and a list of several four-number lists (``[[...],[...]]``, several
  objects in one tag) are accepted too. Numbers may be integers or decimals (``12.5``,
  ``-3``, ``1e2``), with any whitespace.
* **Several tags:** several ``<bbox>`` tags are several objects; several ``<points>`` /
  ``<labels>`` tags are concatenated in order.
* **Points:** a list of ``[x, y]`` pairs (a single flat ``[x, y]`` is one point). Labels must
  be exactly 0 or 1 (``1.0`` is accepted). One malformed points (labels) tag makes the whole
  points (labels) field malformed.
* **Usable vs well-formatted.** :attr:`ParsedAnswer.format_ok` is SPEC §4's format criterion
  for the mode; :attr:`ParsedAnswer.ok` says whether a mask can be computed. In ``"full"``
  mode an answer is usable with at least one valid box and either no points/labels at all
  (box-only prompt) or points and labels with matching counts; a malformed or mismatched
  points/labels pair makes it unusable (the answer is internally inconsistent). In
  ``"points"`` mode (pre-RL) it needs at least one point and matching labels; boxes are parsed
  (for the flags) but not used.

Frame geometry (frame <-> image coordinates, Qwen's 28-pixel grid, resizing) lives in
:mod:`seg_r1.frame`; which parsed answers give a mask (the answer rules) in
:mod:`seg_r1.segmenters`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from seg_r1.frame import (
    answer_to_frame,
    check_coordinates,
    clip_to_frame,
    frame_hw,
    frame_to_answer,
)

Mode = Literal["full", "points"]
MODES: tuple[str, ...] = ("full", "points")

# A tag's content may not contain "<": the innermost tag wins for "<bbox><bbox>[..]</bbox>",
# and the pattern stays linear-time on arbitrary text.
_TAG_RE = {tag: re.compile(rf"<{tag}>([^<]*)</{tag}>") for tag in ("bbox", "points", "labels")}
_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL)
_TOKEN_RE = re.compile(r"\s*(?:(\[)|(\])|(,)|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))")
#: Deepest bracket nesting any field needs (``[[x1,y1,x2,y2]]`` / ``[[x,y],...]``) plus one.
_MAX_DEPTH = 3

NestedList = list["float | NestedList"]


@dataclass(frozen=True, eq=False)
class ParsedAnswer:
    """One parsed answer. Never raised about: failures are flags plus :attr:`error`.

    Attributes:
        boxes: ``float64 (N, 4)`` valid boxes, XYXY frame pixels, clipped, ``x1<x2``, ``y1<y2``.
        points: ``float64 (M, 2)`` points ``(x, y)`` in frame pixels, clipped (empty unless
            points and labels parsed with matching counts).
        labels: ``int64 (M,)`` 1 = foreground, 0 = background (same length as ``points``).
        frame_size: ``(height, width)`` of the frame the coordinates are in.
        mode: ``"full"`` (RL/SOD, eval) or ``"points"`` (pre-RL).
        has_think: a ``<think>...</think>`` block is present (it may be empty).
        has_box: at least one valid box.
        has_points: the points parse to at least one point.
        has_labels: the labels parse to at least one label in {0, 1}.
        labels_match: points and labels both parse and have the same count.
        format_ok: SPEC §4's format criterion for ``mode`` (the format reward is 1.0 iff true).
        ok: a mask can be computed from this answer (see the module doc).
        dropped_boxes: ``<bbox>`` entries that were malformed or degenerate.
        error: why ``format_ok`` is false (the first failed criterion), ``None`` when true.

    The arrays are read-only: one parsed answer may be shared by several consumers.
    """

    boxes: np.ndarray
    points: np.ndarray
    labels: np.ndarray
    frame_size: tuple[int, int]
    mode: str
    has_think: bool
    has_box: bool
    has_points: bool
    has_labels: bool
    labels_match: bool
    format_ok: bool
    ok: bool
    dropped_boxes: int
    error: str | None

    def __post_init__(self) -> None:
        for array in (self.boxes, self.points, self.labels):
            array.flags.writeable = False  # answers are shared (e.g. cached by the rewards)

    @property
    def num_boxes(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])


# --------------------------------------------------------------------------- parsing


class _Malformed(ValueError):
    """Internal: a tag's content is not a bracketed list of numbers (never escapes)."""


def _parse_list(text: str) -> NestedList:
    """Parse ``[...]`` nested lists of numbers (depth <= :data:`_MAX_DEPTH`)."""
    tokens: list[tuple[str, float]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise _Malformed(f"unexpected character {text[pos]!r}")
        pos = m.end()
        if m.group(4) is not None:
            value = float(m.group(4))
            if not math.isfinite(value):
                raise _Malformed(f"non-finite number {m.group(4)!r}")
            tokens.append(("n", value))
        else:
            tokens.append(("[" if m.group(1) else "]" if m.group(2) else ",", 0.0))
    if not tokens:
        raise _Malformed("empty")

    index = 0

    def parse_value(depth: int) -> float | NestedList:
        nonlocal index
        if index >= len(tokens):
            raise _Malformed("truncated")
        kind, value = tokens[index]
        index += 1
        if kind == "n":
            return value
        if kind != "[":
            raise _Malformed(f"unexpected {kind!r}")
        if depth >= _MAX_DEPTH:
            raise _Malformed("nested too deep")
        items: NestedList = []
        if index < len(tokens) and tokens[index][0] == "]":
            index += 1
            return items
        while True:
            items.append(parse_value(depth + 1))
            if index >= len(tokens):
                raise _Malformed("unclosed bracket")
            kind, _ = tokens[index]
            index += 1
            if kind == "]":
                return items
            if kind != ",":
                raise _Malformed("missing comma")

    result = parse_value(0)
    if index != len(tokens):
        raise _Malformed("trailing content")
    if not isinstance(result, list):
        raise _Malformed("not a list")
    return result


def _is_flat(items: object, length: int) -> bool:
    return (
        isinstance(items, list)
        and len(items) == length
        and all(isinstance(v, float) for v in items)
    )


def _boxes_of(content: str) -> list[list[float]]:
    """The four-number lists of one ``<bbox>`` content (see the module doc for spellings)."""
    items = _parse_list(content)
    if _is_flat(items, 4):
        return [items]  # type: ignore[list-item]
    if items and all(_is_flat(item, 4) for item in items):
        return items  # type: ignore[return-value]
    raise _Malformed("a box is a list of four numbers")


def _points_of(content: str) -> list[list[float]]:
    items = _parse_list(content)
    if _is_flat(items, 2):
        return [items]  # type: ignore[list-item]
    if all(_is_flat(item, 2) for item in items):
        return items  # type: ignore[return-value]
    raise _Malformed("points are a list of [x, y] pairs")


def _labels_of(content: str) -> list[int]:
    items = _parse_list(content)
    if not all(isinstance(v, float) and v in (0.0, 1.0) for v in items):
        raise _Malformed("labels are a list of 0/1")
    return [int(v) for v in items]  # type: ignore[arg-type]


def _field(text: str, tag: str, reader) -> tuple[str, list]:
    """Status (``"absent"`` / ``"malformed"`` / ``"parsed"``) and concatenated items of a tag."""
    contents = _TAG_RE[tag].findall(text)
    if not contents:
        return "absent", []
    items: list = []
    for content in contents:
        try:
            items.extend(reader(content))
        except _Malformed:
            return "malformed", []
    return "parsed", items


def parse_answer(
    text: str,
    frame_size: int | Sequence[int],
    mode: Mode = "full",
    coordinates: str = "frame",
) -> ParsedAnswer:
    """Parse one model answer. Never raises on any ``text`` (non-strings give a failed result).

    Args:
        text: the completion text.
        frame_size: the frame the coordinates refer to, ``int`` or ``(height, width)``.
        mode: ``"full"`` (think + boxes + points + labels) or ``"points"`` (pre-RL).
        coordinates: the convention the numbers are WRITTEN in (:data:`seg_r1.frame.COORDINATES`):
            ``"frame"`` pixels (the paper's) or ``"relative_1000"``; they are mapped to frame
            pixels (:func:`seg_r1.frame.answer_to_frame`) before clipping, so the result is in
            frame pixels either way.

    Returns:
        A :class:`ParsedAnswer`; see the module doc for normalisation and validity rules.

    Raises:
        ValueError: only for a bad ``frame_size``, ``mode`` or ``coordinates`` (programming
        errors).
    """
    hw = frame_hw(frame_size)
    check_coordinates(coordinates)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(text, str):
        return _failed(hw, mode, f"answer is not a string ({type(text).__name__})")

    has_think = _THINK_RE.search(text) is not None

    # Boxes: each entry separately, so one malformed box does not hide the others.
    raw_boxes: list[list[float]] = []
    dropped = 0
    for content in _TAG_RE["bbox"].findall(text):
        try:
            raw_boxes.extend(_boxes_of(content))
        except _Malformed:
            dropped += 1
    boxes = np.asarray(raw_boxes, dtype=np.float64).reshape(-1, 4)
    boxes = np.concatenate(
        [np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], axis=1
    )
    boxes = clip_to_frame(answer_to_frame(boxes, hw, coordinates), hw)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    dropped += int((~valid).sum())
    boxes = boxes[valid]

    points_status, raw_points = _field(text, "points", _points_of)
    labels_status, raw_labels = _field(text, "labels", _labels_of)
    both_parsed = points_status == "parsed" and labels_status == "parsed"
    labels_match = both_parsed and len(raw_points) == len(raw_labels)
    has_points = points_status == "parsed" and len(raw_points) > 0
    has_labels = labels_status == "parsed" and len(raw_labels) > 0
    if labels_match:
        raw = np.asarray(raw_points, dtype=np.float64).reshape(-1, 2)
        points = clip_to_frame(answer_to_frame(raw, hw, coordinates), hw)
        labels = np.asarray(raw_labels, dtype=np.int64)
    else:
        points, labels = _empty_points()
    has_box = boxes.shape[0] > 0

    # The first failed criterion of the mode's format rule, in grammar order.
    checks: list[tuple[bool, str]] = []
    if mode == "full":
        checks.append((has_think, "missing <think>...</think>"))
        checks.append((has_box, _box_error(text, dropped)))
    checks += [
        (points_status != "malformed", "malformed <points>"),
        (labels_status != "malformed", "malformed <labels>"),
        (has_points, "missing <points>" if points_status == "absent" else "no points"),
        (has_labels, "missing <labels>" if labels_status == "absent" else "no labels"),
        (labels_match, f"{len(raw_labels)} labels for {len(raw_points)} points"),
    ]
    error = next((msg for passed, msg in checks if not passed), None)
    format_ok = error is None

    if mode == "full":
        pair_absent = points_status == "absent" and labels_status == "absent"
        ok = has_box and (pair_absent or labels_match)
    else:
        ok = format_ok
    return ParsedAnswer(
        boxes=boxes,
        points=points,
        labels=labels,
        frame_size=hw,
        mode=mode,
        has_think=has_think,
        has_box=has_box,
        has_points=has_points,
        has_labels=has_labels,
        labels_match=labels_match,
        format_ok=format_ok,
        ok=ok,
        dropped_boxes=dropped,
        error=error,
    )


def _box_error(text: str, dropped: int) -> str:
    if dropped == 0 and _TAG_RE["bbox"].search(text) is None:
        return "missing <bbox>"
    return "no valid box (malformed or zero area)"


def _empty_points() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 2), dtype=np.float64), np.zeros((0,), dtype=np.int64)


def _failed(hw: tuple[int, int], mode: str, error: str) -> ParsedAnswer:
    points, labels = _empty_points()
    return ParsedAnswer(
        boxes=np.zeros((0, 4), dtype=np.float64),
        points=points,
        labels=labels,
        frame_size=hw,
        mode=mode,
        has_think=False,
        has_box=False,
        has_points=False,
        has_labels=False,
        labels_match=False,
        format_ok=False,
        ok=False,
        dropped_boxes=0,
        error=error,
    )


# --------------------------------------------------------------------------- writing


def _number(value: float) -> str:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"coordinates must be finite, got {value}")
    return str(int(value)) if value.is_integer() else repr(value)


def _list(values: Sequence[float] | np.ndarray) -> str:
    return "[" + ",".join(_number(v) for v in values) + "]"


def format_answer(
    boxes: Sequence[Sequence[float]] | np.ndarray = (),
    points: Sequence[Sequence[float]] | np.ndarray = (),
    labels: Sequence[int] | np.ndarray = (),
    think: str | None = None,
    frame_size: int | Sequence[int] | None = None,
    coordinates: str = "frame",
) -> str:
    """Write an answer in the canonical grammar (the inverse of :func:`parse_answer`).

    Args:
        boxes: ``(N, 4)`` XYXY frame pixels, one ``<bbox>`` tag each.
        points: ``(M, 2)`` ``(x, y)`` frame pixels; written with ``labels`` unless both empty.
        labels: ``(M,)`` 1 = foreground, 0 = background.
        think: reasoning text; ``None`` writes no ``<think>`` block, ``""`` an empty one.
        frame_size, coordinates: the convention to WRITE in. ``"frame"`` (default) writes the
            frame pixels as given; ``"relative_1000"`` maps them to ``0..1000`` of
            ``frame_size`` (:func:`seg_r1.frame.frame_to_answer`) and rounds to integers, as
            Qwen3-VL writes them.

    Integral values are written as integers (``12``), others in Python's shortest repr.
    With boxes the parts are separated by ``", "`` like the RL prompt; without boxes (pre-RL)
    by a space: ``<points>[[x,y]]</points> <labels>[1]</labels>``.

    Raises:
        ValueError: shapes are wrong or labels are not 0/1.
    """
    box_arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else None
    pts = np.asarray(points, dtype=np.float64) if len(points) else np.zeros((0, 2))
    labs = np.asarray(labels) if len(labels) else np.zeros((0,), dtype=np.int64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (M, 2), got {pts.shape}")
    if labs.shape != (pts.shape[0],):
        raise ValueError(f"need one label per point: {labs.shape} labels, {pts.shape} points")
    if not np.isin(labs, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, got {labs.tolist()}")
    if check_coordinates(coordinates) != "frame":
        if frame_size is None:
            raise ValueError(f"coordinates={coordinates!r} needs the frame_size to map from")
        if box_arr is not None:
            box_arr = np.rint(frame_to_answer(box_arr, frame_size, coordinates))
        if pts.shape[0]:
            pts = np.rint(frame_to_answer(pts, frame_size, coordinates))
    parts = [f"<bbox>{_list(b)}</bbox>" for b in (box_arr if box_arr is not None else [])]
    if pts.shape[0]:
        parts.append("<points>[" + ",".join(_list(p) for p in pts) + "]</points>")
        parts.append(f"<labels>{_list(labs)}</labels>")
    body = (", " if box_arr is not None else " ").join(parts)
    if think is None:
        return body
    head = f"<think> {think} </think>" if think else "<think> </think>"
    return f"{head} {body}" if body else head
