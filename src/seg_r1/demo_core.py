"""The Seg-R1 web demo's logic (SPEC §8), without Gradio: image ingestion, one request's run
through :class:`seg_r1.inference.SegR1Pipeline`, the rendered result, the examples, the
command-line options and model loading. The page is :mod:`seg_r1.demo_app`.

Image (+ query) in; out: the policy's reasoning and raw answer, its boxes and
positive/negative points drawn on the image, the mask overlaid, and the mask alone (PNG at the
original resolution). Unlike the official demo, the task is an explicit choice (foreground /
referring / reasoning) instead of being guessed from words like "segment" in the text, so a
query never silently yields an empty output.

Everything goes through :class:`seg_r1.inference.SegR1Pipeline` -- the evaluation path -- with
one pipeline per (task, frame size) sharing one policy and one segmenter; a typed answer goes
through :meth:`~seg_r1.inference.SegR1Pipeline.predict_from_completions`. Drawing uses
:mod:`seg_r1.visualize`. Expected problems (no image, a missing query, an answer that does
not parse, an empty mask) become messages (:class:`InputProblem`, the result's status), never
exceptions.

Conventions: images are handled as ``uint8 (H, W, 3)`` RGB after :func:`prepare_image`
(EXIF orientation applied, transparency composited on white, grey replicated, 16-bit scaled).
Masks are ``bool (H, W)`` at that resolution. What the page shows is rendered at a *display*
size (longest side between :data:`DISPLAY_MIN_SIDE` and :data:`DISPLAY_MAX_SIDE`, see
:func:`display_size`); the downloadable mask PNG is always at the original resolution.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from seg_r1.data.io import to_rgb
from seg_r1.frame import frame_to_image, resize_mask
from seg_r1.inference import Prediction, SegR1Pipeline
from seg_r1.prompts import user_text
from seg_r1.tasks import EVAL_TASKS, QUERY_FRAME, get_task
from seg_r1.visualize import PRED_COLOR, draw_answer, overlay_mask

logger = logging.getLogger(__name__)

#: Tasks offered by the demo (the evaluation tasks of :mod:`seg_r1.tasks`), with their labels.
DEMO_TASKS: tuple[str, ...] = EVAL_TASKS
TASK_LABELS: dict[str, str] = {t: get_task(t).label for t in DEMO_TASKS}
#: Tasks whose prompt embeds the user's query (SPEC §2).
QUERY_TASKS: tuple[str, ...] = tuple(t for t in DEMO_TASKS if get_task(t).needs_query)
#: SPEC §2: referring/reasoning evaluation and the demo use a 1024x1024 frame.
DEFAULT_FRAME_SIZE = QUERY_FRAME
#: Frame-size slider bounds. 64 admits the frames of checkpoints trained here (tiny recipes
#: 112, the quickstart 224; step 16 reaches them and the SPEC's 768 and 1024); 2048^2 = 4.2 MP
#: stays within the released checkpoints' processor bound (16384 * 28^2 = 12.8 MP) while
#: keeping CPU generation bearable.
FRAME_SIZE_MIN, FRAME_SIZE_MAX, FRAME_SIZE_STEP = 64, 2048, 16
DEFAULT_OPACITY = 0.5
#: Display size: big uploads are shown at most 1600 px on the long side (a browser shows no
#: more, and it keeps page updates small); tiny ones are enlarged (nearest neighbour) to at
#: least 512 px so that boxes and points stay readable.
DISPLAY_MAX_SIDE = 1600
DISPLAY_MIN_SIDE = 512
#: Generation budget: real checkpoints write 100-300 tokens and stop; the tiny random policy
#: never stops on its own, so it gets a short budget (it answers in well under a second).
REAL_MAX_NEW_TOKENS = 1024
TINY_MAX_NEW_TOKENS = 128
#: Reasoning queries ending like a sentence are sent as ReasonSeg sentence queries
#: ("<sentence> Identify and segment it."), others as short class-name queries.
_SENTENCE_END = ("?", ".", "!")
_THINK_TEXT_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)

QUERY_PLACEHOLDERS: dict[str, str] = {
    "foreground": "not used by the foreground task",
    "referring": "e.g. the small red triangle on the left",
    "reasoning": "e.g. Which object would roll if the table tilted?",
}

#: Mask PNGs kept in the app's work folder for download (older ones are deleted).
KEEP_MASK_FILES = 32
STATUS_ICONS: dict[str, str] = {"ok": "✔", "warning": "⚠", "error": "✖"}  # in common fonts


# --------------------------------------------------------------------------- images


def _array_to_pil(array: np.ndarray) -> Image.Image:
    """A NumPy image (grey ``(H, W)``/``(H, W, 1)``, RGB or RGBA; uint8, uint16, bool or
    float in ``[0, 1]``) as a PIL image."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype == np.uint16:
        array = (array // 257).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        array = np.clip(np.nan_to_num(array) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ValueError(f"unsupported image dtype {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array))


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def prepare_image(image: Any) -> np.ndarray:
    """Any upload as ``uint8 (H, W, 3)`` RGB, the way the page shows it.

    Accepts a PIL image, a path or a NumPy array. The EXIF orientation is applied (phones
    store rotated pixels plus a tag); transparent images are composited on white (what
    viewers show; the hidden colour under alpha 0 is arbitrary); everything else goes through
    :func:`seg_r1.data.io.to_rgb` (grey replicated, 16-bit and float grey scaled) like
    dataset images.

    Raises:
        ValueError: an empty image or an unsupported array; ``OSError`` from PIL for an
            unreadable file.
    """
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as opened:
            img = ImageOps.exif_transpose(opened)  # a loaded copy, orientation applied
    elif isinstance(image, (np.ndarray, Image.Image)):
        img = _array_to_pil(image) if isinstance(image, np.ndarray) else image
        img = ImageOps.exif_transpose(img)
    else:
        raise ValueError(f"cannot read an image from {type(image).__name__}")
    if img.width == 0 or img.height == 0:
        raise ValueError(f"the image is empty ({img.width}x{img.height})")
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(to_rgb(img), dtype=np.uint8))


def display_size(hw: tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` the page shows an image of size ``hw`` at (aspect ratio kept).

    Longest side capped at :data:`DISPLAY_MAX_SIDE`; images whose longest side is below
    :data:`DISPLAY_MIN_SIDE` are enlarged to it. Each side is at least 1 pixel.
    """
    h, w = hw
    long_side = max(h, w)
    if long_side > DISPLAY_MAX_SIDE:
        scale = DISPLAY_MAX_SIDE / long_side
    elif long_side < DISPLAY_MIN_SIDE:
        scale = DISPLAY_MIN_SIDE / long_side
    else:
        return h, w
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize_for_display(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == hw:
        return image
    shrink = hw[0] <= image.shape[0] and hw[1] <= image.shape[1]
    # Area when shrinking (no aliasing); nearest when enlarging (pixels stay visible).
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_NEAREST
    return cv2.resize(image, (hw[1], hw[0]), interpolation=interpolation)


def reasoning_query_type(query: str) -> str:
    """``"sentence"`` for a reasoning query ending in ``?``, ``.`` or ``!``, else ``"phrase"``
    (sent as ``Identify and segment <query, lower-case>.``; see :mod:`seg_r1.prompts`)."""
    return "sentence" if query.rstrip().endswith(_SENTENCE_END) else "phrase"


def reasoning_text(completion: str) -> str:
    """The content of the answer's ``<think>`` blocks (display only), ``""`` if none."""
    return "\n\n".join(m.strip() for m in _THINK_TEXT_RE.findall(completion or ""))


# --------------------------------------------------------------------------- results


@dataclass
class DemoResult:
    """One demo run (or an input problem found before running).

    Attributes:
        status: Markdown for the status box.
        level: ``"ok"``, ``"warning"`` (ran, but no usable mask) or ``"error"`` (did not run).
        image: the prepared ``uint8 (H, W, 3)`` RGB input, ``None`` when it did not run.
        prediction: the pipeline's prediction (completion, parsed answer, masks).
        task, query, frame_size: what was asked.
        prompt: the user text sent to the policy.
        seconds: wall time of the run.
    """

    status: str
    level: str = "ok"
    image: np.ndarray | None = None
    prediction: Prediction | None = None
    task: str = ""
    query: str = ""
    frame_size: int = DEFAULT_FRAME_SIZE
    prompt: str = ""
    seconds: float = 0.0

    @property
    def ran(self) -> bool:
        return self.prediction is not None

    @property
    def message(self) -> str:
        """:attr:`status` as plain text (toasts, API errors)."""
        text = self.status
        for icon in STATUS_ICONS.values():
            text = text.replace(icon, "")
        return re.sub(r"[*_`]", "", text).strip()

    @property
    def completion(self) -> str:
        return self.prediction.completion if self.prediction is not None else ""

    @property
    def mask(self) -> np.ndarray | None:
        return self.prediction.mask if self.prediction is not None else None

    def render(self, opacity: float = DEFAULT_OPACITY) -> np.ndarray | None:
        """The overlay at display size: mask tinted with ``opacity``, then boxes and points."""
        if self.image is None:
            return None
        hw = display_size(self.image.shape[:2])
        shown = _resize_for_display(self.image, hw)
        if self.prediction is None:
            return shown
        mask = resize_mask(self.prediction.mask, hw)
        shown = overlay_mask(shown, mask, PRED_COLOR, alpha=float(opacity))
        return draw_answer(shown, self.prediction.answer)

    def mask_preview(self) -> np.ndarray | None:
        """The mask alone at display size (white object on black)."""
        if self.mask is None or self.image is None:
            return None
        return resize_mask(self.mask, display_size(self.image.shape[:2])).astype(np.uint8) * 255

    def prompts_summary(self) -> dict[str, Any]:
        """The parsed prompts in original-image and frame pixels, and what was sent."""
        if self.prediction is None or self.image is None:
            return {}
        answer = self.prediction.answer
        hw = self.image.shape[:2]

        def rounded(values: np.ndarray) -> list:
            return np.round(values, 1).tolist()

        return {
            "task": self.task,
            "prompt_sent": self.prompt,
            "frame_size": self.frame_size,
            "image_size_hw": [int(hw[0]), int(hw[1])],
            "answer_usable": bool(self.prediction.usable),
            "answer_format_ok": bool(answer.format_ok),
            "answer_error": answer.error,
            "boxes_image_px": rounded(frame_to_image(answer.boxes, answer.frame_size, hw)),
            "points_image_px": rounded(frame_to_image(answer.points, answer.frame_size, hw)),
            "labels": answer.labels.tolist(),
            "boxes_frame_px": rounded(answer.boxes),
            "points_frame_px": rounded(answer.points),
            "dropped_boxes": int(answer.dropped_boxes),
            "mask_fraction": round(float(self.prediction.mask.mean()), 4),
            "seconds": round(self.seconds, 2),
        }


class InputProblem(ValueError):
    """An input the demo cannot run on (message written for the page)."""


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _describe(pred: Prediction, seconds: float) -> tuple[str, str]:
    """Status Markdown and level of a finished run."""
    answer = pred.answer
    timing = f"({seconds:.1f} s)"
    if not pred.usable:
        reason = answer.error or "the prompts are inconsistent"
        return (
            f"**The answer could not be turned into a mask:** `{reason}`. No mask {timing}. "
            "The raw answer is below; you can edit it and press *Segment from this answer*.",
            "warning",
        )
    positives = int((answer.labels == 1).sum())
    negatives = int((answer.labels == 0).sum())
    prompts = (
        f"{_plural(answer.num_boxes, 'box', 'boxes')}, {positives} foreground and "
        f"{_plural(negatives, 'background point', 'background points')}"
    )
    if not pred.mask.any():
        return (
            f"**No object found:** the segmenter returned an empty mask for {prompts} {timing}.",
            "warning",
        )
    note = "" if answer.format_ok else f" Format note: `{answer.error}`."
    return (
        f"Segmented with {prompts}: the mask covers {100 * pred.mask.mean():.1f} % of the "
        f"image {timing}.{note}",
        "ok",
    )


# --------------------------------------------------------------------------- the app


class SegR1Demo:
    """The demo's logic over one policy and one segmenter.

    Args:
        model, processor: the policy (:func:`seg_r1.policy.load_policy`).
        segmenter: a :class:`seg_r1.segmenters.Segmenter`.
        description: Markdown describing the models (shown in the page header).
        tiny: the models are the tiny random-weight test checkpoints (the header says so).
        max_new_tokens: generation budget per answer.
        work_dir: where mask PNGs for download are written (a temporary folder by default).
        default_frame: the frame of a run that names none (the page's initial slider value):
            the checkpoint's training frame when it records one, else SPEC's demo frame.
        coordinates: the policy's answer convention (:func:`seg_r1.families.resolve_coordinates`).
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        segmenter: Any,
        description: str = "",
        tiny: bool = False,
        max_new_tokens: int = REAL_MAX_NEW_TOKENS,
        work_dir: str | Path | None = None,
        default_frame: int = DEFAULT_FRAME_SIZE,
        coordinates: str = "frame",
    ) -> None:
        self.default_frame = int(default_frame)
        self.coordinates = coordinates
        self.model = model
        self.processor = processor
        self.segmenter = segmenter
        self.description = description
        self.tiny = tiny
        self.max_new_tokens = int(max_new_tokens)
        self._pipelines: dict[tuple[str, int], SegR1Pipeline] = {}
        # The segmenter caches one image encoding: runs must not interleave.
        self._lock = threading.Lock()
        if work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="seg_r1_demo_")
            work_dir = self._tmp.name
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_pipeline(cls, pipeline: SegR1Pipeline, **kwargs: Any) -> SegR1Demo:
        """A demo over the policy, segmenter and coordinate convention of a pipeline."""
        kwargs.setdefault("coordinates", pipeline.coordinates)
        return cls(pipeline.model, pipeline.processor, pipeline.segmenter, **kwargs)

    def pipeline(self, task: str, frame_size: int) -> SegR1Pipeline:
        """The pipeline for ``task`` at ``frame_size`` (built once, sharing the models)."""
        key = (task, int(frame_size))
        if key not in self._pipelines:
            self._pipelines[key] = SegR1Pipeline(
                self.model,
                self.processor,
                self.segmenter,
                frame_size=int(frame_size),
                task=task,
                max_new_tokens=self.max_new_tokens,
                batch_size=1,
                coordinates=self.coordinates,
            )
        return self._pipelines[key]

    # ------------------------------------------------------------------ checks

    @staticmethod
    def _check(
        image: Any, task: str, query: str, frame_size: Any, needs_query: bool = True
    ) -> tuple[np.ndarray, int]:
        """The prepared image and the frame size as an int.

        Raises:
            InputProblem: the message for the page.
        """
        if task not in DEMO_TASKS:
            raise InputProblem(f"Unknown task {task!r}: choose one of {', '.join(DEMO_TASKS)}.")
        if needs_query and task in QUERY_TASKS and not query:
            what = "an expression such as *the red circle on the left*"
            if task == "reasoning":
                what = "a question or sentence such as *Which shape has the most corners?*"
            raise InputProblem(f"The {task} task needs a query: type {what}.")
        try:
            size = int(round(float(frame_size)))
        except (TypeError, ValueError, OverflowError):
            raise InputProblem(f"The frame size must be a number, got {frame_size!r}.") from None
        if not FRAME_SIZE_MIN <= size <= FRAME_SIZE_MAX:
            raise InputProblem(
                f"The frame size must be between {FRAME_SIZE_MIN} and {FRAME_SIZE_MAX}, got {size}."
            )
        if image is None:
            raise InputProblem("Upload an image or pick one of the examples first.")
        try:
            return prepare_image(image), size
        except (OSError, ValueError) as exc:
            raise InputProblem(f"Could not read the image: {exc}") from exc

    # ------------------------------------------------------------------ runs

    def run(
        self,
        image: Any,
        task: str = "foreground",
        query: str = "",
        frame_size: int | None = None,
        answer: str | None = None,
    ) -> DemoResult:
        """Segment ``image``: the policy answers (or ``answer`` is used as its answer), the
        answer is parsed in the frame and the segmenter turns it into a mask.

        Args:
            image: PIL image, path or NumPy array (see :func:`prepare_image`).
            task: one of :data:`DEMO_TASKS`.
            query: the expression (referring) or question/phrase (reasoning); ignored for
                foreground.
            frame_size: side of the square frame the answer's coordinates refer to (None:
                :attr:`default_frame`).
            answer: an answer text to use INSTEAD of generating one (the page's "Segment from
                this answer"): it is parsed and segmented exactly like a generated one.

        Returns:
            A :class:`DemoResult`; input problems come back as ``level="error"`` results.
        """
        task = (task or "").strip().lower()
        query = (query or "").strip() if task in QUERY_TASKS else ""
        if frame_size is None:
            frame_size = self.default_frame
        try:
            rgb, size = self._check(image, task, query, frame_size, needs_query=answer is None)
        except InputProblem as problem:
            return DemoResult(status=f"{STATUS_ICONS['error']} **{problem}**", level="error")
        query_type = reasoning_query_type(query) if task == "reasoning" else ""
        asked = task not in QUERY_TASKS or query
        prompt = user_text(task, query, query_type, self.coordinates) if asked else ""
        pipe = self.pipeline(task, size)
        start = time.perf_counter()
        with self._lock:
            if answer is None:
                queries = [query] if task in QUERY_TASKS else None
                types = [query_type] if task in QUERY_TASKS else None
                pred = pipe.predict([rgb], queries=queries, query_types=types)[0]
            else:
                pred = _predict_from_answer(pipe, rgb, answer)
        seconds = time.perf_counter() - start
        status, level = _describe(pred, seconds)
        if answer is not None:
            status = "From your answer: " + status
            prompt = "(answer typed in the page; the policy was not run)"
        status = f"{STATUS_ICONS[level]} {status}"
        logger.info("demo %s run: %s", task, status)
        return DemoResult(
            status=status,
            level=level,
            image=rgb,
            prediction=pred,
            task=task,
            query=query,
            frame_size=size,
            prompt=prompt,
            seconds=seconds,
        )

    def save_mask(self, result: DemoResult) -> Path | None:
        """Write the result's mask (original resolution, 0/255 grey PNG) for download."""
        if result.mask is None:
            return None
        # Gradio copies returned files into its own cache; ours only need to outlive the
        # request, so only the newest KEEP_MASK_FILES are kept.
        for old in sorted(self.work_dir.glob("mask_*"), key=lambda p: p.stat().st_mtime)[
            : -KEEP_MASK_FILES + 1
        ]:
            shutil.rmtree(old, ignore_errors=True)
        folder = Path(tempfile.mkdtemp(prefix="mask_", dir=self.work_dir))
        path = folder / "seg_r1_mask.png"  # the name the browser downloads it under
        Image.fromarray(result.mask.astype(np.uint8) * 255, mode="L").save(path)
        return path


def _predict_from_answer(pipe: SegR1Pipeline, image: np.ndarray, completion: str) -> Prediction:
    """:meth:`SegR1Pipeline.predict_from_completions` for one typed answer (the policy is
    skipped; the pipeline's frame and answer rule apply)."""
    return pipe.predict_from_completions([image], [completion])[0]
