"""A deterministic fake segmenter shared by the reward and segmenter tests.

Imported as ``from fake_segmenter import RectSegmenter`` (pytest puts ``tests/`` on the path).
"""

from __future__ import annotations

import numpy as np

from seg_r1.segmenters import BaseSegmenter, PromptSet


class RectSegmenter(BaseSegmenter):
    """Deterministic fake: a box prompt gives the filled box (pixels floor(x1)..ceil(x2)-1,
    rows likewise); a points-only prompt gives the pixels of its foreground points. Records
    the images it encoded and the prompt sets it decoded."""

    def __init__(self) -> None:
        super().__init__()
        self.encoded: list[np.ndarray] = []
        self.decoded: list[PromptSet] = []

    def _encode(self, image: np.ndarray) -> None:
        self.encoded.append(image)

    def _decode(self, prompts: list[PromptSet]) -> list[np.ndarray]:
        self.stats.decoder_calls += 1
        self.decoded += prompts
        out = []
        for p in prompts:
            mask = np.zeros(self.image_hw, dtype=bool)
            if p.box is not None:
                x1, y1, x2, y2 = p.box
                rows = slice(int(np.floor(y1)), int(np.ceil(y2)))
                mask[rows, int(np.floor(x1)) : int(np.ceil(x2))] = True
            else:
                for (x, y), label in zip(p.points.astype(int), p.labels):
                    mask[y, x] = label == 1
            out.append(mask)
        return out
