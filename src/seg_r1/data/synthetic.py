"""Synthetic segmentation scenes with exact masks: the data of the CPU quickstart and tests.

A scene is one or more flat-coloured, lightly textured shapes (circle, ellipse, square,
rectangle, triangle, star, diamond, hexagon, cross) on a textured background (smooth blobs,
stripes, checks). Two looks:

* **salient**: the object's colour is far from the background's;
* **camouflaged**: the object has the background's texture family and a colour a few grey
  levels off, so only a faint edge separates them (the COD setting).

Every shape is a polygon (circles and ellipses with 48 vertices) and its mask is that
polygon rasterised exactly as :func:`seg_r1.data.io.rasterize_polygon` does, so the masks
written as PNG, as COCO RLE or as ReasonSeg polygons are all pixel-exact. Objects in one
scene never overlap, so each visible mask is the whole shape.

Referring scenes hold 2-4 objects with distinct (colour, shape) pairs, so "the <colour>
<shape>" is always unambiguous; size words ("small"/"large" = the radius classes below) and
position words ("on the left" = left of every other object by a margin) are only added
when true, e.g. "the small red triangle on the left".

Determinism: scene ``i`` of a split is drawn from ``np.random.default_rng([seed, crc32(split),
i])``, so it does not depend on ``n`` or on other scenes, and the same seed writes
byte-identical files (PNG/JPEG encoders of one Pillow build are deterministic).

The writers in :mod:`seg_r1.data.synthetic_trees` put the scenes in REAL dataset layouts so
the regular adapters read them:

* :func:`~seg_r1.data.synthetic_trees.write_foreground_dataset` -> COD10K-like ``<out>/Train/Image/*.jpg`` +
  ``<out>/Train/GT_Object/*.png`` (``Test/`` for ``split="test"``), read by
  ``load_foreground_dataset("synthetic", root=out, split=...)``;
* :func:`~seg_r1.data.synthetic_trees.write_referring_dataset` -> REFER-like ``<out>/Refer_Segm/<dataset>/refs(unc).p`` +
  ``instances.json`` (RLE) + ``<out>/Refer_Segm/coco_2014/train2014/*.jpg``, read by
  ``load_refer_dataset(dataset, split, root=out)``;
* :func:`~seg_r1.data.synthetic_trees.write_reasoning_dataset` -> ReasonSeg-like ``<out>/ReasonSeg/<split>/*.jpg|json``.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from seg_r1.data.io import rasterize_polygon

logger = logging.getLogger(__name__)

SHAPES: tuple[str, ...] = (
    "circle",
    "ellipse",
    "square",
    "rectangle",
    "triangle",
    "star",
    "diamond",
    "hexagon",
    "cross",
)
#: Named colours of salient / referring objects (RGB), far enough apart to name reliably.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 35, 35),
    "green": (40, 165, 60),
    "blue": (40, 80, 215),
    "yellow": (235, 205, 35),
    "orange": (240, 130, 25),
    "purple": (135, 55, 185),
    "white": (240, 240, 240),
    "black": (25, 25, 25),
}
#: Radius ranges as fractions of the image side: "small" and "large" never overlap, so the
#: size words of an expression are true whatever the other objects are.
SMALL_RADIUS = (0.07, 0.10)
LARGE_RADIUS = (0.14, 0.19)
#: Single-object foreground scenes: radius range (fraction of the side).
FOREGROUND_RADIUS = (0.12, 0.30)
#: Distractors (``distractors=N``): radius range (fraction of the side), colour shift from the
#: background (grey levels; camouflage uses 14-30), gap to objects and other distractors (px).
DISTRACTOR_RADIUS = (0.05, 0.12)
DISTRACTOR_SHIFT = (30.0, 60.0)
DISTRACTOR_GAP = 3
#: The light spot (``spotlight=True``): centre and Gaussian radius ranges (fractions of the
#: side) and colour shift at its centre (grey levels).
SPOT_CENTRE = (0.3, 0.7)
SPOT_RADIUS = (0.25, 0.40)
SPOT_SHIFT = (50.0, 80.0)
_CIRCLE_VERTICES = 48


@dataclass
class SceneObject:
    """One object: ``polygon`` (K, 2) float pixels ``[x, y]``; ``mask`` bool (H, W)."""

    shape: str
    colour: str  # a COLOURS name, or "camouflaged"
    size: str  # "small" | "large" | "" (foreground scenes)
    polygon: np.ndarray
    mask: np.ndarray
    centroid: tuple[float, float]
    radius: float


@dataclass
class Scene:
    """A generated scene.

    ``image``: uint8 (H, W, 3) RGB. ``masks``: one bool (H, W) per object. ``descriptions``:
    one unambiguous phrase per object. ``expressions``: per object, 1-3 referring expressions
    (the first equals the description). ``foreground``: the union of the masks.
    """

    image: np.ndarray
    masks: list[np.ndarray]
    descriptions: list[str]
    objects: list[SceneObject]
    camouflaged: bool
    expressions: list[list[str]] = field(default_factory=list)

    def __iter__(self) -> Iterator[Any]:
        """``image, masks, descriptions = scene`` unpacks the three main fields."""
        return iter((self.image, self.masks, self.descriptions))

    @property
    def foreground(self) -> np.ndarray:
        union = np.zeros(self.image.shape[:2], dtype=bool)
        for mask in self.masks:
            union |= mask
        return union


# --------------------------------------------------------------------------- drawing


def _regular(n: int, radius: float, angle: float) -> np.ndarray:
    t = angle + np.arange(n) * (2 * np.pi / n)
    return np.stack([np.cos(t), np.sin(t)], axis=1) * radius


def shape_polygon(
    shape: str, cx: float, cy: float, radius: float, angle: float, aspect: float = 0.6
) -> np.ndarray:
    """Vertices ``(K, 2)`` ``[x, y]`` of ``shape`` centred at ``(cx, cy)``, fitting in ``radius``.

    ``aspect`` (0-1) squeezes ellipses, rectangles and diamonds; ``angle`` rotates (radians).
    """
    if shape == "circle":
        pts = _regular(_CIRCLE_VERTICES, radius, 0.0)
    elif shape == "ellipse":
        pts = _regular(_CIRCLE_VERTICES, radius, 0.0) * [1.0, aspect]
    elif shape == "square":
        pts = _regular(4, radius, np.pi / 4)
    elif shape == "rectangle":
        pts = np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]]) * radius
    elif shape == "triangle":
        pts = _regular(3, radius, -np.pi / 2)
    elif shape == "star":
        outer = _regular(5, radius, -np.pi / 2)
        inner = _regular(5, radius * 0.45, -np.pi / 2 + np.pi / 5)
        pts = np.stack([outer, inner], axis=1).reshape(-1, 2)
    elif shape == "diamond":
        pts = np.array([[0, -1], [aspect, 0], [0, 1], [-aspect, 0]]) * radius
    elif shape == "hexagon":
        pts = _regular(6, radius, 0.0)
    elif shape == "cross":
        a = 0.35
        pts = (
            np.array(
                [
                    [-a, -1],
                    [a, -1],
                    [a, -a],
                    [1, -a],
                    [1, a],
                    [a, a],
                    [a, 1],
                    [-a, 1],
                    [-a, a],
                    [-1, a],
                    [-1, -a],
                    [-a, -a],
                ]
            )
            * radius
        )
    else:
        raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")
    # Fit the farthest vertex on the circle of ``radius`` (placement relies on it).
    pts = pts * (radius / np.max(np.hypot(pts[:, 0], pts[:, 1])))
    if shape != "circle" and angle:
        c, s = np.cos(angle), np.sin(angle)
        pts = pts @ np.array([[c, s], [-s, c]])
    # One decimal: what is written to JSON is exactly what was rasterised.
    return np.round(pts + [cx, cy], 1)


def _texture(
    rng: np.random.Generator, size: int, colour: np.ndarray, contrast: float
) -> np.ndarray:
    """A float32 (size, size, 3) texture around ``colour``: blobs, stripes or checks + grain."""
    kind = rng.integers(3)
    grid = int(rng.integers(3, 10))
    low = rng.random((grid, grid, 3), dtype=np.float32)
    field_ = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC) - 0.5
    if kind == 1:  # stripes along a random direction
        theta = rng.uniform(0, np.pi)
        period = rng.uniform(0.05, 0.2) * size
        ramp = np.cos(theta) * np.arange(size)[None, :] + np.sin(theta) * np.arange(size)[:, None]
        wave = np.sin(ramp * (2 * np.pi / period)).astype(np.float32)
        field_ = 0.5 * field_ + 0.5 * wave[:, :, None]
    elif kind == 2:  # soft checks
        period = rng.uniform(0.08, 0.25) * size
        x = np.sin(np.arange(size) * (2 * np.pi / period)).astype(np.float32)
        field_ = 0.5 * field_ + 0.4 * np.sign(x[None, :] * x[:, None])[:, :, None]
    grain = rng.standard_normal((size, size, 1), dtype=np.float32) * 4.0
    return colour.astype(np.float32) + field_ * contrast + grain


def _background_colour(rng: np.random.Generator) -> np.ndarray:
    # Muted natural tones (greens, browns, greys, sands) as camouflage backgrounds have.
    return rng.uniform(50, 190, size=3)


def _place(
    rng: np.random.Generator, size: int, radii: Sequence[float], margin: float
) -> list[tuple[float, float]] | None:
    """Non-overlapping centres for the given radii (rejection sampling), or None."""
    centres: list[tuple[float, float]] = []
    for r in radii:
        for _ in range(60):
            cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
            if all(
                np.hypot(cx - x, cy - y) > r + r2 + margin for (x, y), r2 in zip(centres, radii)
            ):
                centres.append((float(cx), float(cy)))
                break
        else:
            return None
    return centres


def _colour_distance(a: np.ndarray, b: Sequence[int]) -> float:
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def _position_word(index: int, objects: Sequence[SceneObject], size: int) -> str:
    """A position phrase ("on the left", ...) when it singles the object out.

    Used only when the object's centroid is beyond every other centroid by 10 % of the side.
    """
    if len(objects) < 2:
        return ""
    gap = 0.1 * size
    cx, cy = objects[index].centroid
    others = [o.centroid for i, o in enumerate(objects) if i != index]
    if all(cx < x - gap for x, _ in others):
        return "on the left"
    if all(cx > x + gap for x, _ in others):
        return "on the right"
    if all(cy < y - gap for _, y in others):
        return "at the top"
    if all(cy > y + gap for _, y in others):
        return "at the bottom"
    return ""


def _expressions(
    index: int, objects: Sequence[SceneObject], size: int, rng: np.random.Generator
) -> list[str]:
    obj = objects[index]
    base = f"{obj.colour} {obj.shape}"
    position = _position_word(index, objects, size)
    sized = f"{obj.size} {base}"
    canonical = f"the {sized} {position}" if position else f"the {sized}"
    others = [f"the {base}", f"the {base} {position}" if position else f"the {sized}"]
    if sum(o.shape == obj.shape for o in objects) == 1:
        others.append(f"the {obj.shape}")
    if sum(o.colour == obj.colour for o in objects) == 1:
        others.append(f"the {obj.colour} object")
    others = [e for e in dict.fromkeys(others) if e != canonical]
    picked = rng.permutation(len(others))[:2]
    return [canonical] + [others[i] for i in sorted(picked)]


def make_scene(
    rng: np.random.Generator,
    size: int = 256,
    n_objects: int = 1,
    camouflaged: bool = False,
    referring: bool = False,
    object_radius: tuple[float, float] = FOREGROUND_RADIUS,
    distractors: int = 0,
    spotlight: bool = False,
) -> Scene:
    """Draw one scene.

    Args:
        rng: the random generator (the only source of randomness).
        size: image side in pixels (square images).
        n_objects: objects to place (referring scenes: 2-4 recommended); fewer may be
            placed when they do not fit without overlap (at least one always is).
        camouflaged: object colour/texture close to the background (ignored when
            ``referring``: referring objects have nameable colours).
        referring: distinct (colour, shape) per object, small/large radius classes, and
            referring expressions in ``Scene.expressions``.
        object_radius: radius range of non-referring objects, fractions of the side (with
            ``n`` objects the upper bound is divided by sqrt(n)).
        distractors: muted shapes painted around the objects (not referring scenes): the
            background's texture family, colour :data:`DISTRACTOR_SHIFT` grey levels off --
            clutter that is part of the background and of no mask, so a large box around
            the middle no longer holds the object alone (fewer when they do not fit).
        spotlight: a soft coloured light on the background (not referring scenes), a Gaussian
            spot off-centre (:data:`SPOT_CENTRE`, :data:`SPOT_RADIUS`, :data:`SPOT_SHIFT`): the
            image border no longer shows every background colour, so a box around the middle
            is no longer turned into the object alone by a segmenter that models the
            background from outside the box. Objects are not lit.

    Returns:
        a :class:`Scene`; ``image`` uint8 (size, size, 3) RGB, masks bool (size, size).
    """
    if referring:
        camouflaged = False
    bg_colour = _background_colour(rng)
    image = _texture(rng, size, bg_colour, contrast=rng.uniform(40, 90))

    n = max(1, int(n_objects))
    if referring:
        sizes = ["small" if rng.random() < 0.5 else "large" for _ in range(n)]
        radii = [
            rng.uniform(*(SMALL_RADIUS if s == "small" else LARGE_RADIUS)) * size for s in sizes
        ]
    else:
        sizes = [""] * n
        low, high = object_radius
        radii = [rng.uniform(low, high / np.sqrt(n)) * size for _ in range(n)]
    centres = None
    while centres is None:
        centres = _place(rng, size, radii, margin=0.03 * size)
        if centres is None:  # did not fit: drop the last object and retry
            sizes, radii = sizes[:-1], radii[:-1]

    named = [name for name, rgb in COLOURS.items() if _colour_distance(bg_colour, rgb) > 110]
    if len(named) < 2:
        named = list(COLOURS)
    pairs: list[tuple[str, str]] = []
    objects: list[SceneObject] = []
    for (cx, cy), radius, size_word in zip(centres, radii, sizes):
        while True:
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            colour = "camouflaged" if camouflaged else named[int(rng.integers(len(named)))]
            if not referring or (colour, shape) not in pairs:
                break
        pairs.append((colour, shape))
        polygon = shape_polygon(
            shape, cx, cy, radius, angle=rng.uniform(0, np.pi), aspect=rng.uniform(0.45, 0.75)
        )
        mask = rasterize_polygon(polygon, size, size)
        if camouflaged:
            # Same texture family, colour shifted by 14-30 levels: hard but not invisible.
            direction = rng.standard_normal(3)
            shift = direction / np.linalg.norm(direction) * rng.uniform(14, 30)
            fill = _texture(rng, size, bg_colour + shift, contrast=rng.uniform(40, 90))
        else:
            fill = _texture(rng, size, np.array(COLOURS[colour]), contrast=rng.uniform(10, 30))
        image[mask] = fill[mask]
        ys, xs = np.nonzero(mask)
        objects.append(
            SceneObject(
                shape=shape,
                colour=colour,
                size=size_word,
                polygon=polygon,
                mask=mask,
                centroid=(float(xs.mean()), float(ys.mean())) if xs.size else (cx, cy),
                radius=float(radius),
            )
        )

    taken = np.logical_or.reduce([o.mask for o in objects])
    if distractors > 0 and not referring:
        _paint_distractors(rng, image, taken.copy(), bg_colour, distractors)
    if spotlight and not referring:
        _light_background(rng, image, ~taken)
    if referring:
        expressions = [_expressions(i, objects, size, rng) for i in range(len(objects))]
        descriptions = [e[0] for e in expressions]
    else:
        look = "camouflaged" if camouflaged else "salient"
        descriptions = [
            f"a {look} {o.shape}" if camouflaged else f"a {look} {o.colour} {o.shape}"
            for o in objects
        ]
        expressions = [[d] for d in descriptions]
    return Scene(
        image=np.clip(image + 0.5, 0, 255).astype(np.uint8),
        masks=[o.mask for o in objects],
        descriptions=descriptions,
        objects=objects,
        camouflaged=camouflaged,
        expressions=expressions,
    )


def _paint_distractors(
    rng: np.random.Generator,
    image: np.ndarray,
    taken: np.ndarray,
    bg_colour: np.ndarray,
    count: int,
) -> None:
    """Paint up to ``count`` distractor shapes into ``image`` (float (H, W, 3), in place), each
    :data:`DISTRACTOR_GAP` pixels clear of ``taken`` (bool (H, W): the objects; updated) -- 30
    placement tries each, a distractor that does not fit is skipped."""
    size = image.shape[0]
    gap = np.ones((2 * DISTRACTOR_GAP + 1,) * 2, np.uint8)
    for _ in range(count):
        for _try in range(30):
            radius = rng.uniform(*DISTRACTOR_RADIUS) * size
            cx, cy = rng.uniform(radius + 1, size - radius - 1, size=2)
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            polygon = shape_polygon(
                shape, cx, cy, radius, angle=rng.uniform(0, np.pi), aspect=rng.uniform(0.45, 0.75)
            )
            mask = rasterize_polygon(polygon, size, size)
            if not (cv2.dilate(mask.astype(np.uint8), gap).astype(bool) & taken).any():
                break
        else:
            continue
        direction = rng.standard_normal(3)
        shift = direction / np.linalg.norm(direction) * rng.uniform(*DISTRACTOR_SHIFT)
        fill = _texture(rng, size, bg_colour + shift, contrast=rng.uniform(20, 60))
        image[mask] = fill[mask]
        taken |= mask


def _light_background(rng: np.random.Generator, image: np.ndarray, background: np.ndarray) -> None:
    """Add a soft coloured light spot (a Gaussian of random centre, radius and colour) to the
    ``background`` pixels (bool (H, W)) of ``image`` (float (H, W, 3), in place)."""
    size = image.shape[0]
    cx, cy = rng.uniform(*SPOT_CENTRE, size=2) * size
    radius = rng.uniform(*SPOT_RADIUS) * size
    direction = rng.standard_normal(3)
    shift = direction / np.linalg.norm(direction) * rng.uniform(*SPOT_SHIFT)
    yy, xx = np.mgrid[:size, :size]
    weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
    image[background] += (weight[..., None] * shift)[background].astype(image.dtype)


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of scene ``index`` of ``split`` (independent of every other scene)."""
    return np.random.default_rng([int(seed), zlib.crc32(split.encode("utf-8")), int(index)])


def _foreground_scene(
    rng: np.random.Generator,
    size: int,
    camouflage_ratio: float,
    multi_object_ratio: float,
    **looks: Any,
) -> Scene:
    camouflaged = bool(rng.random() < camouflage_ratio)
    n = 2 if rng.random() < multi_object_ratio else 1
    return make_scene(rng, size, n, camouflaged, **looks)


def _referring_scene(rng: np.random.Generator, size: int) -> Scene:
    return make_scene(rng, size, n_objects=int(rng.integers(2, 5)), referring=True)


def synthetic_scenes(
    n: int,
    seed: int = 0,
    size: int = 256,
    task: str = "foreground",
    split: str = "train",
    camouflage_ratio: float = 0.5,
    multi_object_ratio: float = 0.15,
    *,
    object_radius: tuple[float, float] = FOREGROUND_RADIUS,
    distractors: int = 0,
    spotlight: bool = False,
) -> Iterator[Scene]:
    """Yield ``n`` scenes in memory (no files); the same scenes the writers write.

    ``task``: ``"foreground"`` (1-2 objects, a ``camouflage_ratio`` share camouflaged; object
    radii in ``object_radius``; ``distractors`` muted background shapes and ``spotlight``, see
    :func:`make_scene`) or ``"referring"`` (2-4 nameable objects with expressions).
    """
    if task not in ("foreground", "referring"):
        raise ValueError(f"task must be 'foreground' or 'referring', got {task!r}")
    looks = {"object_radius": object_radius, "distractors": distractors, "spotlight": spotlight}
    for index in range(n):
        rng = scene_rng(seed, split, index)
        if task == "foreground":
            yield _foreground_scene(rng, size, camouflage_ratio, multi_object_ratio, **looks)
        else:
            yield _referring_scene(rng, size)
