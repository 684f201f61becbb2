"""Drawing helpers shared by the evaluation reports and the demo.

Conventions: images are ``uint8 (H, W, 3)`` **RGB** arrays; masks ``bool (H, W)`` in the same
pixel grid; prompt coordinates are pixels of that image (boxes XYXY, points ``(x, y)``), or,
for :func:`draw_answer`, of the answer's frame (mapped with :func:`seg_r1.frame.frame_to_image`).
Colours: boxes yellow, positive (label 1) points **green**, negative (label 0) points **red**,
ground truth overlaid in blue, predictions in orange. Every function returns a new array and
never modifies its input. Text is drawn with OpenCV's Hershey font (ASCII only: other
characters become ``?``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from seg_r1.answer import ParsedAnswer
from seg_r1.frame import frame_to_image, resize_mask

BOX_COLOR = (255, 215, 0)
POSITIVE_COLOR = (0, 200, 0)
NEGATIVE_COLOR = (230, 0, 0)
GT_COLOR = (30, 144, 255)
PRED_COLOR = (255, 120, 0)
TEXT_COLOR = (255, 255, 255)
HEADER_COLOR = (32, 32, 32)


def _scale(image: np.ndarray) -> float:
    """Line/marker scale: 1.0 for a 256-pixel short side (markers stay visible on big images)."""
    return max(1.0, min(image.shape[:2]) / 256)


def draw_prompts(
    image: np.ndarray,
    boxes: np.ndarray | Sequence[Sequence[float]] = (),
    points: np.ndarray | Sequence[Sequence[float]] = (),
    labels: np.ndarray | Sequence[int] = (),
) -> np.ndarray:
    """Draw XYXY ``boxes`` (yellow) and ``points`` (green = label 1, red = label 0).

    Coordinates are pixels of ``image``. Points get a white outline so they stay visible on
    masks of the same colour.
    """
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    scale = _scale(out)
    thickness = max(1, round(2 * scale))
    radius = max(3, round(4 * scale))
    for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), BOX_COLOR, thickness, cv2.LINE_AA)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labs = np.asarray(labels).reshape(-1)
    if labs.shape[0] != pts.shape[0]:
        raise ValueError(f"{pts.shape[0]} points but {labs.shape[0]} labels")
    for (x, y), label in zip(pts, labs):
        centre = (int(round(x)), int(round(y)))
        color = POSITIVE_COLOR if int(label) == 1 else NEGATIVE_COLOR
        cv2.circle(out, centre, radius + 1, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(out, centre, radius, color, -1, cv2.LINE_AA)
    return out


def draw_answer(image: np.ndarray, answer: ParsedAnswer) -> np.ndarray:
    """Draw a parsed answer's prompts on ``image`` (original resolution): its frame
    coordinates are mapped to the image first."""
    hw = (int(image.shape[0]), int(image.shape[1]))
    boxes = frame_to_image(answer.boxes, answer.frame_size, hw)
    points = frame_to_image(answer.points, answer.frame_size, hw)
    return draw_prompts(image, boxes, points, answer.labels)


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = PRED_COLOR,
    alpha: float = 0.5,
    contour: bool = True,
) -> np.ndarray:
    """Blend ``color`` over the pixels of ``mask`` (``alpha`` = colour weight) and outline it."""
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != out.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {out.shape[:2]}")
    tint = np.asarray(color, dtype=np.float64)
    out[mask] = np.round((1 - alpha) * out[mask] + alpha * tint).astype(np.uint8)
    if contour and mask.any():
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(out, contours, -1, color, max(1, round(_scale(out))), cv2.LINE_AA)
    return out


def fit_height(image: np.ndarray, height: int) -> np.ndarray:
    """Resize to ``height`` rows keeping the aspect ratio (area interpolation when shrinking)."""
    h, w = image.shape[:2]
    if h == height:
        return image
    width = max(1, round(w * height / h))
    interpolation = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def _ascii(text: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)


def add_caption(image: np.ndarray, lines: Sequence[str], font_scale: float = 0.45) -> np.ndarray:
    """Put a dark strip with ``lines`` of text above ``image`` (long lines are cut to fit)."""
    width = image.shape[1]
    line_height = max(12, round(22 * font_scale / 0.45))
    strip = np.full((line_height * len(lines) + 6, width, 3), HEADER_COLOR, dtype=np.uint8)
    char_width = 9 * font_scale / 0.45
    max_chars = max(4, int(width / char_width) - 1)
    for k, line in enumerate(lines):
        text = _ascii(line)
        if len(text) > max_chars:
            text = text[: max_chars - 3] + "..."
        y = line_height * (k + 1) - 4
        cv2.putText(strip, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, TEXT_COLOR, 1,
                    cv2.LINE_AA)  # fmt: skip
    return np.concatenate([strip, image], axis=0)


def hstack(panels: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Place panels of equal height side by side with a white gap."""
    height = panels[0].shape[0]
    spacer = np.full((height, gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for k, panel in enumerate(panels):
        if panel.shape[0] != height:
            raise ValueError("panels must have the same height")
        parts += [spacer, panel] if k else [panel]
    return np.concatenate(parts, axis=1)


def vstack(rows: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """Stack rows of any widths (right-padded with white) with a white gap."""
    width = max(r.shape[1] for r in rows)
    parts: list[np.ndarray] = []
    for k, row in enumerate(rows):
        pad = np.full((row.shape[0], width - row.shape[1], 3), 255, dtype=np.uint8)
        if k:
            parts.append(np.full((gap, width, 3), 255, dtype=np.uint8))
        parts.append(np.concatenate([row, pad], axis=1))
    return np.concatenate(parts, axis=0)


@dataclass(frozen=True, eq=False)
class Case:
    """One example of a visual report.

    Attributes:
        image: ``uint8 (H, W, 3)`` RGB original image.
        gt: ``bool (H, W)`` ground truth.
        pred: ``bool (H, W)`` predicted mask.
        answer: the parsed answer (its prompts are drawn), or ``None``.
        title: first caption line (e.g. the id and the IoU).
        query: second caption line (the text query, if any).
    """

    image: np.ndarray
    gt: np.ndarray
    pred: np.ndarray
    answer: ParsedAnswer | None = None
    title: str = ""
    query: str = ""


def case_row(case: Case, panel_height: int = 256) -> np.ndarray:
    """One report row: image + prompts | ground truth | prediction + prompts, captioned.

    Everything is scaled to ``panel_height`` rows first (masks nearest-neighbour), then drawn,
    so lines and markers have the same size whatever the image resolution.
    """
    image = fit_height(case.image, panel_height)
    hw = (int(image.shape[0]), int(image.shape[1]))
    prompts = draw_answer(image, case.answer) if case.answer is not None else image
    gt = overlay_mask(image, resize_mask(case.gt, hw), GT_COLOR)
    pred = overlay_mask(image, resize_mask(case.pred, hw), PRED_COLOR)
    if case.answer is not None:
        pred = draw_answer(pred, case.answer)
    panels = [
        add_caption(p, [name])
        for p, name in ((prompts, "image + prompts"), (gt, "ground truth"), (pred, "prediction"))
    ]
    row = hstack(panels)
    lines = [case.title] + ([case.query] if case.query else [])
    return add_caption(row, lines)


def case_grid(
    sections: Sequence[tuple[str, Sequence[Case]]], panel_height: int = 256, title: str = ""
) -> np.ndarray:
    """A report image: for each ``(heading, cases)`` section, a heading then one row per case."""
    rows: list[np.ndarray] = []
    for heading, cases in sections:
        if not cases:
            continue
        body = vstack([case_row(c, panel_height) for c in cases])
        rows.append(add_caption(body, [heading], font_scale=0.6))
    if not rows:
        rows.append(np.full((panel_height // 4, panel_height, 3), 255, dtype=np.uint8))
    grid = vstack(rows, gap=12)
    return add_caption(grid, [title], font_scale=0.6) if title else grid


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB (or grey) uint8 array as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
    return path
