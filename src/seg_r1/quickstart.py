"""The embedded default run: everything on CPU, nothing downloaded.

    bash scripts/quickstart.sh            # = python -m seg_r1.quickstart --out runs/quickstart

Builds the tiny checkpoints, draws a synthetic scene, lets the tiny policy answer the RL
prompt about it and turns a box prompt into a SAM2 mask with the tiny SAM2. It writes
``OUT/summary.json``. (Grows into SFT -> GRPO -> evaluation as those stages land.)
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from PIL import Image

from seg_r1.prompts import build_chat
from seg_r1.tiny import build_tiny_checkpoints

logger = logging.getLogger(__name__)


def _scene(size: int = 112, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured disk on a textured background, and its mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cx, cy, r = rng.integers(size // 3, 2 * size // 3, 2).tolist() + [size // 5]
    mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
    image = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
    image[mask] = rng.integers(150, 255, (int(mask.sum()), 3), dtype=np.uint8)
    return image, mask


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/quickstart", help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.time()
    out = Path(args.out)
    tiny = build_tiny_checkpoints(out / "tiny", seed=args.seed)

    from transformers import AutoModelForImageTextToText, AutoProcessor

    from seg_r1.sam2_backend import build_image_predictor, build_sam2_model

    processor = AutoProcessor.from_pretrained(tiny.policy)
    model = AutoModelForImageTextToText.from_pretrained(tiny.policy)
    image, mask = _scene(seed=args.seed)
    pil = Image.fromarray(image)
    text = processor.apply_chat_template(
        build_chat("rl", pil), tokenize=False, add_generation_prompt=True
    )
    inputs = processor(text=[text], images=[pil], return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=32, do_sample=False)
    completion = processor.batch_decode(
        generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )[0]

    predictor = build_image_predictor(build_sam2_model(tiny.sam2_config, tiny.sam2_checkpoint))
    predictor.set_image(image)
    ys, xs = np.nonzero(mask)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()])
    pred, _, _ = predictor.predict(box=box, multimask_output=False)
    pred = pred[0] > 0
    iou = float((pred & mask).sum() / max((pred | mask).sum(), 1))
    summary = {
        "policy": str(tiny.policy),
        "sam2_checkpoint": str(tiny.sam2_checkpoint),
        "completion": completion,
        "sam2_mask_pixels": int(pred.sum()),
        "sam2_iou_random_weights": round(iou, 4),
        "seconds": round(time.time() - start, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    for key, value in summary.items():
        logger.info("%-24s %s", key, value if key != "completion" else repr(value[:60]))
    logger.info("wrote %s", out / "summary.json")
    return summary


if __name__ == "__main__":
    main()
