"""The web demo: the ``/segment`` API through ``gradio_client`` on the tiny models, and the app
function on every kind of image (large, tiny, grey, 16-bit, RGBA, palette, EXIF-rotated).

The server is started in-process on a free localhost port (Gradio picks the first free one
from 7860). The browser test is ``tests/test_demo_browser.py``.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from seg_r1 import demo_app, demo_core
from seg_r1.answer import format_answer
from seg_r1.data.synthetic import make_scene, scene_rng
from seg_r1.segmenters import BaseSegmenter, PromptSet, build_segmenter

EXIF_ORIENTATION = 0x0112


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def app(tiny_ckpts, tmp_path_factory) -> demo_core.SegR1Demo:
    """The app exactly as ``demo/seg_r1_web_demo.py`` builds it with no model arguments."""
    args = demo_app.build_parser().parse_args(
        ["--tiny_dir", str(tiny_ckpts.root), "--quickstart_dir", ""]
    )
    return demo_app.load_demo(args)


@pytest.fixture(scope="module")
def classical_app(app, tmp_path_factory) -> demo_core.SegR1Demo:
    """Same policy, GrabCut segmenter: masks that follow the prompts (tiny SAM2's do not)."""
    return demo_core.SegR1Demo(
        app.model, app.processor, build_segmenter("classical", cache=False), tiny=True
    )


@pytest.fixture(scope="module")
def server(app, tmp_path_factory):
    examples = demo_app.write_examples(tmp_path_factory.mktemp("examples"), size=128)
    demo = demo_app.build_demo(app, examples)
    _, url, _ = demo_app.launch(demo, port=0, prevent_thread_lock=True, quiet=True)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def scene(size: int = 256, index: int = 0):
    return make_scene(scene_rng(0, "test-demo", index), size=size, camouflaged=False)


def box_answer(mask: np.ndarray, frame_size: int) -> str:
    """A correct answer for ``mask`` in the frame: its bounding box and a centre point."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    sx, sy = frame_size / w, frame_size / h
    box = [xs.min() * sx, ys.min() * sy, (xs.max() + 1) * sx, (ys.max() + 1) * sy]
    cy, cx = np.argwhere(mask)[len(xs) // 2]
    point = [(cx + 0.5) * sx, (cy + 0.5) * sy]
    return format_answer([np.round(box)], [np.round(point)], [1], think="the shape")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def save_exif_rotated(path: Path, orientation: int = 6) -> None:
    """A 40x20 (w x h) JPEG whose top-left quarter is red, tagged to be shown rotated 90°
    clockwise (orientation 6): upright it is 20x40 with the red block top-RIGHT."""
    pixels = np.full((20, 40, 3), 40, dtype=np.uint8)
    pixels[:10, :20] = (230, 20, 20)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif.tobytes())


class EmptySegmenter(BaseSegmenter):
    """Always an empty mask (the 'no object found' case)."""

    def _encode(self, image: np.ndarray) -> None:
        pass

    def _decode(self, prompts: list[PromptSet]) -> list[np.ndarray]:
        return [np.zeros(self.image_hw, dtype=bool) for _ in prompts]


# --------------------------------------------------------------------------- the API


def test_api_lists_only_the_stable_segment_endpoint(client):
    api = client.view_api(return_format="dict", print_info=False)
    assert list(api["named_endpoints"]) == ["/segment"]
    params = [p["parameter_name"] for p in api["named_endpoints"]["/segment"]["parameters"]]
    assert params == ["image", "task", "query"]
    assert len(api["named_endpoints"]["/segment"]["returns"]) == 2
    assert api["unnamed_endpoints"] == {}


@pytest.mark.parametrize(
    ("task", "query"),
    [("foreground", ""), ("referring", "the red circle"), ("reasoning", "What is round?")],
)
def test_api_segment_returns_overlay_and_raw_answer(client, tmp_path, task, query):
    from gradio_client import handle_file

    path = tmp_path / "scene.png"
    Image.fromarray(scene(300).image).save(path)
    overlay, answer = client.predict(handle_file(str(path)), task, query, api_name="/segment")
    shown = np.asarray(Image.open(overlay))
    assert shown.shape == (512, 512, 3)  # enlarged to DISPLAY_MIN_SIDE
    assert isinstance(answer, str) and len(answer) > 0  # the tiny policy always writes tokens


def test_api_missing_query_is_an_error_message(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path = tmp_path / "scene.png"
    Image.fromarray(scene(64).image).save(path)
    with pytest.raises(AppError, match="referring task needs a query"):
        client.predict(handle_file(str(path)), "referring", "  ", api_name="/segment")
    with pytest.raises(AppError, match="Unknown task"):
        client.predict(handle_file(str(path)), "panoptic", "", api_name="/segment")


def test_api_applies_exif_rotation_and_transparency(client, tmp_path):
    from gradio_client import handle_file

    jpeg = tmp_path / "rotated.jpg"
    save_exif_rotated(jpeg)
    overlay, _ = client.predict(handle_file(str(jpeg)), "foreground", "", api_name="/segment")
    shown = np.asarray(Image.open(overlay))
    assert shown.shape == (512, 256, 3)  # upright 20x40 (w x h), enlarged x12.8
    assert shown[5, -5, 0] > 180 and shown[5, 5, 0] < 100  # red block top-right

    rgba = np.zeros((50, 60, 4), dtype=np.uint8)  # fully transparent black
    rgba[:, :30] = (0, 0, 255, 255)  # opaque blue left half
    png = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(png)
    overlay, _ = client.predict(handle_file(str(png)), "foreground", "", api_name="/segment")
    shown = np.asarray(Image.open(overlay))
    assert shown.shape == (427, 512, 3)
    assert (shown[200, -10] == 255).all()  # transparent -> white, not black
    assert tuple(shown[200, 10]) == (0, 0, 255)


def test_page_header_says_tiny_checkpoints(server):
    with urllib.request.urlopen(server.rstrip("/") + "/config", timeout=30) as response:
        config = json.loads(response.read())
    texts = [c.get("props", {}).get("value") for c in config["components"]]
    header = next(t for t in texts if isinstance(t, str) and t.startswith("# Seg-R1"))
    assert "Running on the tiny random-weight test checkpoints" in header


# --------------------------------------------------------------------------- the app function


def test_defaults_bind_to_localhost_without_share_link():
    args = demo_app.build_parser().parse_args([])
    assert (args.host, args.share, args.model_path, args.segmenter) == (
        "127.0.0.1",
        False,
        None,
        "sam2",
    )


@pytest.mark.parametrize(
    ("name", "make", "hw"),
    [
        ("large", lambda: Image.new("RGB", (3000, 2000), (90, 120, 30)), (2000, 3000)),
        ("tiny 1x1", lambda: Image.new("RGB", (1, 1), (200, 0, 0)), (1, 1)),
        ("tiny 5x3", lambda: Image.new("RGB", (5, 3), (0, 200, 0)), (3, 5)),
        ("grey L", lambda: Image.new("L", (64, 48), 128), (48, 64)),
        ("grey 16-bit", lambda: Image.fromarray(np.full((30, 40), 40000, np.uint16)), (30, 40)),
        ("RGBA", lambda: Image.new("RGBA", (70, 50), (255, 0, 0, 0)), (50, 70)),
        ("palette", lambda: Image.new("RGB", (33, 44), (1, 2, 3)).convert("P"), (44, 33)),
        ("numpy grey", lambda: np.zeros((21, 13), np.uint8), (21, 13)),
        ("numpy float RGB", lambda: np.random.default_rng(0).random((16, 24, 3)), (16, 24)),
    ],
)
def test_app_handles_every_kind_of_image(app, name, make, hw):
    result = app.run(make(), "foreground", "", frame_size=512)
    assert result.ran, result.status
    assert result.image.shape == (*hw, 3) and result.image.dtype == np.uint8
    assert result.mask.shape == hw and result.mask.dtype == bool
    assert result.prediction.answer.frame_size == (512, 512)
    shown = result.render(0.5)
    assert shown.shape == (*demo_core.display_size(hw), 3)
    assert result.mask_preview().shape == demo_core.display_size(hw)


def test_app_applies_exif_orientation_from_path_and_pil(app, tmp_path):
    path = tmp_path / "rotated.jpg"
    save_exif_rotated(path)
    for image in (path, str(path), Image.open(path)):
        result = app.run(image, "foreground", "")
        assert result.mask.shape == (40, 20)
        assert result.image[2, -2, 0] > 180 and result.image[2, 2, 0] < 100
    for orientation, hw in ((3, (20, 40)), (8, (40, 20))):
        save_exif_rotated(path, orientation)
        assert demo_core.prepare_image(path).shape == (*hw, 3)


def test_prepare_image_composites_transparency_on_white():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    rgba[0, 1] = (0, 0, 0, 128)
    out = demo_core.prepare_image(Image.fromarray(rgba, "RGBA"))
    assert tuple(out[0, 0]) == (10, 20, 30)
    assert tuple(out[0, 1]) == (127, 127, 127)
    assert (out[1:] == 255).all()
    grey_alpha = demo_core.prepare_image(Image.new("LA", (3, 2), (0, 0)))
    assert (grey_alpha == 255).all()


def test_prepare_image_rejects_unreadable_input(app, tmp_path):
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"plain text")
    result = app.run(bad, "foreground")
    assert (result.ran, result.level) == (False, "error")
    assert "Could not read the image" in result.status
    assert app.run(np.zeros((0, 5, 3), np.uint8)).level == "error"


def test_display_size_bounds():
    assert demo_core.display_size((600, 800)) == (600, 800)
    assert demo_core.display_size((4000, 3000)) == (1600, 1200)
    assert demo_core.display_size((10, 20)) == (256, 512)
    assert demo_core.display_size((1, 1)) == (512, 512)
    assert demo_core.display_size((1, 5000)) == (1, 1600)


@pytest.mark.parametrize(
    ("task", "query", "frame", "message"),
    [
        ("referring", "", 1024, "referring task needs a query"),
        ("reasoning", "   ", 1024, "reasoning task needs a query"),
        ("detect", "", 1024, "Unknown task"),
        ("foreground", "", 32, "between 64 and 2048"),
        ("foreground", "", "big", "must be a number"),
        ("foreground", "", float("inf"), "must be a number"),
    ],
)
def test_input_problems_are_messages(app, task, query, frame, message):
    result = app.run(scene(64).image, task, query, frame_size=frame)
    assert (result.ran, result.level) == (False, "error")
    assert message in result.status
    assert result.render() is None and result.prompts_summary() == {}


def test_no_image_is_a_message(app):
    result = app.run(None, "foreground")
    assert result.level == "error" and "Upload an image" in result.status


def test_unparseable_answer_is_a_warning_with_the_reason(app):
    result = app.run(scene(64).image, "foreground", answer="I see a circle.")
    assert (result.ran, result.level) == (True, "warning")
    assert "could not be turned into a mask:** `missing <think>...</think>`" in result.status
    assert "could not be turned into a mask: missing <think>...</think>. No mask" in result.message
    assert not result.mask.any()
    assert result.prompts_summary()["answer_usable"] is False


def test_tiny_policy_answer_is_reported_not_raised(app):
    result = app.run(scene(64).image, "referring", "the red circle")
    assert result.ran and result.level in ("ok", "warning")
    assert result.prompt == "Identify and segment the red circle"
    assert result.completion == result.prediction.completion


def test_empty_mask_is_no_object_found(app):
    empty = demo_core.SegR1Demo(app.model, app.processor, EmptySegmenter())
    answer = format_answer([[10, 10, 200, 200]], [[50, 50]], [1], think="x")
    result = empty.run(scene(64).image, "foreground", answer=answer)
    assert result.level == "warning" and "No object found" in result.status


def test_answer_segments_like_the_pipeline(classical_app, tmp_path):
    sc = scene(256, index=1)
    gt = sc.masks[0]
    answer = box_answer(gt, 768)
    result = classical_app.run(sc.image, "foreground", frame_size=768, answer=answer)
    assert result.level == "ok", result.status
    assert result.status.startswith("✔ From your answer: Segmented with 1 box, 1 foreground and 0")
    assert iou(result.mask, gt) > 0.9
    summary = result.prompts_summary()
    ys, xs = np.nonzero(gt)
    assert summary["boxes_image_px"][0] == pytest.approx(
        [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], abs=1.0
    )
    assert summary["labels"] == [1] and summary["frame_size"] == 768

    # The overlay draws the box (yellow) and the point (green) where the answer puts them.
    shown = result.render(0.5)
    x1, y1 = (round(v * 2) for v in summary["boxes_image_px"][0][:2])  # 256 -> 512 display
    assert tuple(shown[y1 + 10, x1]) == pytest.approx((255, 215, 0), abs=40)
    px, py = (round(v * 2) for v in summary["points_image_px"][0])
    assert tuple(shown[py, px]) == pytest.approx((0, 200, 0), abs=40)
    # Opacity 0 leaves the inside of the mask untouched; opacity 1 paints it.
    plain = demo_core._resize_for_display(sc.image, shown.shape[:2])
    clear, tinted = result.render(0.0), result.render(1.0)
    shown_mask = demo_core.resize_mask(result.mask, shown.shape[:2]).astype(np.uint8)
    depth = cv2.distanceTransform(shown_mask, cv2.DIST_L2, 3)
    deep = np.argwhere(depth >= 6)  # away from the contour
    far = deep[np.hypot(deep[:, 0] - py, deep[:, 1] - px).argmax()]  # and from the point
    assert (clear[tuple(far)] == plain[tuple(far)]).all()
    assert tuple(tinted[tuple(far)]) == demo_core.PRED_COLOR

    path = classical_app.save_mask(result)
    saved = np.asarray(Image.open(path))
    assert saved.shape == gt.shape and set(np.unique(saved)) <= {0, 255}
    assert ((saved == 255) == result.mask).all()


def test_reasoning_query_types_and_think_text():
    assert demo_core.reasoning_query_type("What can cut paper?") == "sentence"
    assert demo_core.reasoning_query_type("Segment the knife. ") == "sentence"
    assert demo_core.reasoning_query_type("Knife") == "phrase"
    assert demo_core.reasoning_text("<think> a </think> x <think>b</think>") == "a\n\nb"
    assert demo_core.reasoning_text("no think") == ""


def test_reasoning_prompt_follows_the_query_type(app):
    image = scene(64).image
    assert app.run(image, "reasoning", "Knife").prompt == "Identify and segment knife."
    sentence = app.run(image, "reasoning", "What can cut paper?").prompt
    assert sentence == "What can cut paper? Identify and segment it."


def test_examples_are_drawn_once_and_cover_every_task(tmp_path):
    rows = demo_app.write_examples(tmp_path, size=96)
    assert [r[1] for r in rows] == ["foreground", "foreground", "referring", "reasoning"]
    assert rows[2][2].startswith("the ") and rows[3][2].endswith("?")
    stamps = [Path(r[0]).stat().st_mtime_ns for r in rows]
    assert demo_app.write_examples(tmp_path, size=96) == rows
    assert [Path(r[0]).stat().st_mtime_ns for r in rows] == stamps
    assert Image.open(rows[0][0]).size == (96, 96)


def test_mask_files_for_download_are_pruned(app, tmp_path):
    small = demo_core.SegR1Demo(app.model, app.processor, app.segmenter, work_dir=tmp_path)
    result = small.run(scene(32).image, "foreground", frame_size=256)
    paths = [small.save_mask(result) for _ in range(demo_core.KEEP_MASK_FILES + 5)]
    assert len(list(tmp_path.glob("mask_*"))) == demo_core.KEEP_MASK_FILES
    assert paths[-1].is_file() and paths[-1].name == "seg_r1_mask.png"
