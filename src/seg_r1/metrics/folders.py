"""Evaluate a folder of predicted maps against a folder of GT masks (the COD/SOD protocol).

Files are matched by stem (``a.png`` in one folder pairs with ``a.jpg`` in the other); both are
read with ``cv2.imread(path, cv2.IMREAD_GRAYSCALE)`` (uint8, colour converted to grey) like the
usual eval scripts, and a prediction of another size is resized to its GT's with bilinear
interpolation (:func:`seg_r1.metrics.resize_pred`). GT stems without a prediction are *missing*,
prediction stems without a GT are *extra*, and files that do not decode are *unreadable*: all are
reported by name and left out of the scores; the caller decides whether that is an error.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from seg_r1.metrics.sod import SODMetrics, SODScores

logger = logging.getLogger(__name__)

#: Suffixes (lower case) taken as images; other files in the folders are ignored.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class FolderMatch:
    """Stems matched between a prediction folder and a GT folder, sorted by stem.

    Attributes:
        pairs: (stem, prediction path, GT path) for every stem in both folders.
        missing: GT file names with no prediction.
        extra: prediction file names with no GT.
    """

    pairs: list[tuple[str, Path, Path]]
    missing: list[str]
    extra: list[str]


def list_images(folder: str | Path) -> dict[str, Path]:
    """``{stem: path}`` of the images directly in ``folder``; two images sharing a stem fail."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a directory: {folder}")
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in images:
                raise ValueError(
                    f"two images share the stem {path.stem!r} in {folder}: "
                    f"{images[path.stem].name} and {path.name}; keep one"
                )
            images[path.stem] = path
    return images


def match_by_stem(pred_dir: str | Path, gt_dir: str | Path) -> FolderMatch:
    """Pair the images of two folders by file stem."""
    preds = list_images(pred_dir)
    gts = list_images(gt_dir)
    pairs = [(stem, preds[stem], gts[stem]) for stem in sorted(gts) if stem in preds]
    missing = [gts[stem].name for stem in sorted(gts) if stem not in preds]
    extra = [preds[stem].name for stem in sorted(preds) if stem not in gts]
    return FolderMatch(pairs=pairs, missing=missing, extra=extra)


def read_gray(path: str | Path) -> np.ndarray | None:
    """uint8 (H, W) grey image, or None when the file does not decode (e.g. a truncated PNG)."""
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


@dataclass
class FolderEvaluation:
    """Outcome of :func:`evaluate_folders`.

    Attributes:
        metrics: the accumulated suite over the readable pairs.
        match: how the folders matched.
        unreadable: ``"pred/<name>"`` or ``"gt/<name>"`` for every file that did not decode.
    """

    metrics: SODMetrics
    match: FolderMatch
    unreadable: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every GT had a readable prediction and nothing was extra."""
        return not (self.match.missing or self.match.extra or self.unreadable)


def _score_files(item: tuple[str, Path, Path]) -> tuple[SODScores | None, list[str]]:
    """Scores of one (stem, pred path, GT path), or (None, unreadable names)."""
    _, pred_path, gt_path = item
    pred = read_gray(pred_path)
    gt = read_gray(gt_path)
    unreadable = [f"pred/{pred_path.name}"] if pred is None else []
    if gt is None:
        unreadable.append(f"gt/{gt_path.name}")
    if unreadable:
        return None, unreadable
    return SODMetrics().score(pred, gt), []


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would oversubscribe


def evaluate_folders(
    pred_dir: str | Path, gt_dir: str | Path, num_workers: int = 0, progress: bool = True
) -> FolderEvaluation:
    """Score every prediction against its GT and accumulate the suite.

    Args:
        pred_dir: folder of predicted maps (uint8 grey; any size, resized to the GT).
        gt_dir: folder of GT masks (foreground ``> 128``).
        num_workers: worker processes (0 = in this process). Results are accumulated in stem
            order whatever the number of workers, so the scores do not depend on it.
        progress: show a tqdm progress bar.
    """
    match = match_by_stem(pred_dir, gt_dir)
    evaluation = FolderEvaluation(metrics=SODMetrics(), match=match)
    bar = tqdm(total=len(match.pairs), desc="metrics", unit="img", disable=not progress)
    if num_workers > 0:
        with multiprocessing.get_context().Pool(num_workers, initializer=_init_worker) as pool:
            results = pool.imap(_score_files, match.pairs, chunksize=8)
            _collect(results, evaluation, bar)
    else:
        _collect(map(_score_files, match.pairs), evaluation, bar)
    bar.close()
    logger.info(
        "scored %d pairs (%d missing, %d extra, %d unreadable)",
        len(evaluation.metrics),
        len(match.missing),
        len(match.extra),
        len(evaluation.unreadable),
    )
    return evaluation


def _collect(
    results: Iterable[tuple[SODScores | None, list[str]]], evaluation: FolderEvaluation, bar: tqdm
) -> None:
    for scores, unreadable in results:
        if scores is None:
            evaluation.unreadable.extend(unreadable)
        else:
            evaluation.metrics.add(scores)
        bar.update()
