"""The ``"classical"`` backend: OpenCV GrabCut seeded by the prompts, a deterministic CPU
stand-in for SAM2 in tests and CPU runs whose masks depend on the prompts (a random-weight
SAM2's do not). It is NOT SAM2 and its numbers are not the paper's."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from seg_r1.segmenters.base import BaseSegmenter, PromptSet, check_image


class ClassicalSegmenter(BaseSegmenter):
    """GrabCut seeded by the prompts: a deterministic CPU stand-in for SAM2 (NOT SAM2).

    Seeding (``cv2.GC_*`` labels of the initial mask):

    * with a box: inside the box (pixels ``floor(x1)..ceil(x2)-1``) probable foreground,
      outside sure background -- GrabCut's rectangle initialisation, so the mask never leaves
      the box;
    * points-only (pre-RL): a probable-foreground rectangle around the foreground points,
      padded by ``points_margin`` x the image's short side, probable background elsewhere
      (the points do not bound the object, so nothing is *sure* background but the
      background points);
    * points: disks of radius ``point_radius`` (default 1 % of the short side, at least 2 px --
      a click, not a scribble), label 1 sure foreground, label 0 sure background; later points
      win where disks overlap.

    GrabCut fits 5-component colour GMMs to each class; with fewer than
    :attr:`MIN_SAMPLES` pixels in a class it cannot run. Then a missing background is taken
    from the 1-pixel image border (probable background), and if a class is still too small
    the seeded foreground is returned as is. Without any foreground seed the mask is empty.

    ``iterations=3`` follows SPEC §9 (IoU 1.00 on synthetic textured circles with the true
    box, ~32 ms per 256x256 mask). cv2's RNG is re-seeded with ``seed`` before every call, so
    the same image and prompts always give the same mask. "Encoding" only caches the image;
    it still counts as one encoder call.

    Each mask is independent of the others, so :meth:`predict_batch` and :meth:`predict_many`
    (several images, the path of :func:`seg_r1.segmenters.segment_batch`) run GrabCut on
    ``workers`` threads (cv2 releases the GIL; default: the CPUs this process may use). The
    masks are the same for any ``workers`` (cv2's RNG is per thread and re-seeded per call).
    """

    name = "classical"
    #: GrabCut's GMMs have 5 components, initialised by k-means: 5 samples per class minimum.
    MIN_SAMPLES = 5

    def __init__(
        self,
        iterations: int = 3,
        point_radius: int | None = None,
        points_margin: float = 0.1,
        seed: int = 0,
        workers: int | None = None,
    ) -> None:
        super().__init__()
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        workers = len(os.sched_getaffinity(0)) if workers is None else workers
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.iterations = iterations
        self.point_radius = point_radius
        self.points_margin = points_margin
        self.seed = seed
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._image: np.ndarray | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pool": None}  # a thread pool does not copy or pickle

    def _encode(self, image: np.ndarray) -> None:
        self._image = np.ascontiguousarray(image)

    def _map(self, tasks: list[tuple[np.ndarray, PromptSet]]) -> list[np.ndarray]:
        """GrabCut for each ``(image, prompt)``, on the thread pool when it pays."""
        self.stats.decoder_calls += len(tasks)
        if self.workers == 1 or len(tasks) < 2:
            return [self._grabcut(image, prompt) for image, prompt in tasks]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="grabcut")
        return list(self._pool.map(lambda task: self._grabcut(*task), tasks))

    def _decode(self, prompts: list[PromptSet]) -> list[np.ndarray]:
        if self._image is None:
            raise RuntimeError("call set_image(image) before predicting masks")
        return self._map([(self._image, prompt) for prompt in prompts])

    def predict_many(
        self, jobs: Sequence[tuple[np.ndarray, Sequence[PromptSet]]]
    ) -> list[list[np.ndarray]]:
        """:meth:`BaseSegmenter.predict_many` with every prompt set of every image on the
        thread pool at once (each image counts as one encoder call)."""
        tasks = []
        for image, prompts in jobs:
            image = np.ascontiguousarray(check_image(image))
            tasks += [(image, prompt) for prompt in prompts]
            self.stats.encoder_calls += 1
            self.stats.prompt_sets += len(prompts)
        masks = iter(self._map(tasks))
        return [[next(masks) for _ in prompts] for _, prompts in jobs]

    def _radius(self, hw: tuple[int, int]) -> int:
        if self.point_radius is not None:
            return self.point_radius
        return max(2, round(0.01 * min(hw)))

    def seed_mask(self, prompt: PromptSet, hw: tuple[int, int] | None = None) -> np.ndarray:
        """The initial ``cv2.GC_*`` label image ``uint8 (H, W)`` for ``prompt`` (see class doc)
        on an image of ``hw`` = ``(H, W)`` (default: the image that is set)."""
        hw = hw or self._image_hw
        if hw is None:
            raise RuntimeError("call set_image(image) before seeding masks")
        h, w = hw
        seeds = np.full((h, w), cv2.GC_BGD, dtype=np.uint8)
        if prompt.box is not None:
            x1, y1, x2, y2 = prompt.box
            c1, r1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
            c2, r2 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
            seeds[r1:r2, c1:c2] = cv2.GC_PR_FGD
        else:
            seeds[:] = cv2.GC_PR_BGD
            fg = prompt.points[prompt.labels == 1]
            if fg.shape[0]:
                pad = self.points_margin * min(h, w)
                c1, r1 = np.floor(fg.min(axis=0) - pad).astype(int)
                c2, r2 = np.ceil(fg.max(axis=0) + pad).astype(int)
                seeds[max(0, r1) : max(0, r2), max(0, c1) : max(0, c2)] = cv2.GC_PR_FGD
        radius = self._radius((h, w))
        for (x, y), label in zip(prompt.points, prompt.labels):
            value = cv2.GC_FGD if label == 1 else cv2.GC_BGD
            centre = (min(int(x), w - 1), min(int(y), h - 1))
            cv2.circle(seeds, centre, radius, int(value), thickness=-1)
        return seeds

    def _grabcut(self, image: np.ndarray, prompt: PromptSet) -> np.ndarray:
        seeds = self.seed_mask(prompt, (int(image.shape[0]), int(image.shape[1])))
        is_fg = (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)
        if not is_fg.any():
            return np.zeros(seeds.shape, dtype=bool)
        if np.count_nonzero(~is_fg) < self.MIN_SAMPLES:
            border = np.zeros(seeds.shape, dtype=bool)
            border[[0, -1], :] = border[:, [0, -1]] = True
            seeds[border & (seeds != cv2.GC_FGD)] = cv2.GC_PR_BGD
            is_fg = (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)
        if min(np.count_nonzero(is_fg), np.count_nonzero(~is_fg)) < self.MIN_SAMPLES:
            return is_fg
        cv2.setRNGSeed(self.seed)
        bgd_model = np.zeros((1, 65), np.float64)
        fgd_model = np.zeros((1, 65), np.float64)
        cv2.grabCut(
            image, seeds, None, bgd_model, fgd_model, self.iterations, cv2.GC_INIT_WITH_MASK
        )
        return (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)
