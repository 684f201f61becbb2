"""Synthetic generator: determinism, exact masks, speed, and round trips through the adapters."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seg_r1.data import (
    load_eval_jsonl,
    load_foreground_dataset,
    load_ignore,
    load_mask,
    load_reasonseg_dataset,
    load_refer_dataset,
    write_eval_jsonl,
)
from seg_r1.data.synthetic import SHAPES, make_scene, shape_polygon, synthetic_scenes
from seg_r1.data.synthetic_trees import (
    write_foreground_dataset,
    write_reasoning_dataset,
    write_referring_dataset,
)

REPO = Path(__file__).resolve().parents[1]


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_foreground_dataset(tmp_path / name, n=6, seed=seed, size=64)
        write_referring_dataset(tmp_path / name, n=3, seed=seed, size=64, split="val")
        write_reasoning_dataset(tmp_path / name, n=3, seed=seed, size=64, split="val")
    a, b, c = (_hashes(tmp_path / n) for n in "abc")
    assert a == b
    assert len(a) == len(c) and sorted(a.values()) != sorted(c.values())


def test_scene_i_does_not_depend_on_n() -> None:
    few = list(synthetic_scenes(2, seed=1, size=64))
    many = list(synthetic_scenes(5, seed=1, size=64))
    np.testing.assert_array_equal(few[1].image, many[1].image)
    train = next(synthetic_scenes(1, seed=1, size=64, split="train"))
    test = next(synthetic_scenes(1, seed=1, size=64, split="test"))
    assert not np.array_equal(train.image, test.image)  # splits never share scenes


def test_make_scene_contract() -> None:
    rng = np.random.default_rng(0)
    scene = make_scene(rng, size=96, n_objects=3, referring=True)
    assert scene.image.shape == (96, 96, 3) and scene.image.dtype == np.uint8
    assert len(scene.masks) == len(scene.descriptions) == len(scene.objects) >= 2
    union = np.zeros((96, 96), int)
    for mask in scene.masks:
        assert mask.dtype == bool and mask.any()
        union += mask
    assert union.max() == 1  # objects never overlap: each mask is exact and whole
    pairs = [(o.colour, o.shape) for o in scene.objects]
    assert len(set(pairs)) == len(pairs)  # "the <colour> <shape>" is unambiguous
    for obj, description in zip(scene.objects, scene.descriptions):
        assert description.startswith(f"the {obj.size} {obj.colour} {obj.shape}")
    image, masks, descriptions = scene
    assert image is scene.image and masks == scene.masks and descriptions == scene.descriptions
    camo = make_scene(np.random.default_rng(1), size=64, camouflaged=True)
    assert camo.camouflaged and camo.descriptions == [f"a camouflaged {camo.objects[0].shape}"]


def test_every_shape_draws_inside_its_radius() -> None:
    for shape in SHAPES:
        pts = shape_polygon(shape, 50, 50, 20, angle=0.3)
        assert np.all(np.hypot(pts[:, 0] - 50, pts[:, 1] - 50) <= 20.2), shape


def test_camouflage_is_low_contrast_salient_is_not() -> None:
    def contrast(camouflaged: bool) -> float:
        values = []
        for i in range(8):
            scene = make_scene(np.random.default_rng(i), 128, camouflaged=camouflaged)
            mask = scene.masks[0]
            inside = scene.image[mask].mean(axis=0)
            outside = scene.image[~mask].mean(axis=0)
            values.append(float(np.linalg.norm(inside - outside)))
        return float(np.median(values))

    assert contrast(True) < 40 < contrast(False)


def test_foreground_round_trip_through_adapter_and_eval_list(tmp_path: Path) -> None:
    stems = write_foreground_dataset(tmp_path, n=12, seed=5, size=64, split="test")
    ds = load_foreground_dataset("synthetic", root=tmp_path, split="test")
    assert [i.split("/")[-1] for i in ds["id"]] == sorted(stems)
    scenes = list(synthetic_scenes(12, seed=5, size=64, split="test"))
    by_stem = dict(zip(stems, scenes))
    for example in ds:
        expected = by_stem[example["id"].split("/")[-1]].foreground
        np.testing.assert_array_equal(load_mask(example), expected)
    out = tmp_path / "lists" / "syn.jsonl"
    test = tmp_path / "Test"
    assert write_eval_jsonl(test / "Image", test / "GT_Object", out, root_dir=tmp_path) == 12
    first = json.loads(out.read_text().splitlines()[0])
    assert first["image_path"].startswith("Test/Image/SYN-")
    assert len(load_eval_jsonl(out, root_dir=tmp_path)) == 12
    # Also readable as a "synthetic" dataset under a datasets/ root.
    assert (
        len(
            load_foreground_dataset("synthetic", root=tmp_path.parent / tmp_path.name, split="test")
        )
        == 12
    )


def test_referring_round_trip_keeps_other_splits(tmp_path: Path) -> None:
    n_val = write_referring_dataset(tmp_path, n=4, seed=2, size=64, split="val")
    n_train = write_referring_dataset(tmp_path, n=3, seed=2, size=64, split="train")
    val = load_refer_dataset("refcoco", "val", root=tmp_path)
    train = load_refer_dataset("refcoco", "train", root=tmp_path)
    assert (len(val), len(train)) == (n_val, n_train)
    scenes = list(synthetic_scenes(4, seed=2, size=64, task="referring", split="val"))
    expressions = [e for s in scenes for exprs in s.expressions for e in exprs]
    assert val["query"] == expressions  # every expression, in order
    masks = [m for s in scenes for m, exprs in zip(s.masks, s.expressions) for _ in exprs]
    for example, mask in zip(val, masks):
        np.testing.assert_array_equal(load_mask(example), mask)
    # Rewriting a split replaces it instead of appending.
    write_referring_dataset(tmp_path, n=2, seed=2, size=64, split="val")
    assert len(load_refer_dataset("refcoco", "train", root=tmp_path)) == n_train
    assert len(load_refer_dataset("refcoco", "val", root=tmp_path)) < n_val


def test_reasoning_round_trip(tmp_path: Path) -> None:
    write_reasoning_dataset(tmp_path, n=10, seed=0, size=64, split="val")
    ds = load_reasonseg_dataset("val", root=tmp_path)
    assert len(ds) == 10
    assert set(ds["query_type"]) == {"sentence", "class"}
    scenes = list(synthetic_scenes(10, seed=0, size=64, task="referring", split="val"))
    ignored = 0
    for example, scene in zip(ds, scenes):
        mask = load_mask(example)
        assert any(np.array_equal(mask, m) for m in scene.masks)  # exactly one object
        ignore = load_ignore(example)
        if ignore is not None:
            ignored += 1
            assert not (ignore & mask).any()
    assert ignored > 0


def test_cli_and_refusal_to_write_over_user_files(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        str(REPO / "utils" / "make_synthetic_dataset.py"),
        "--out",
        str(tmp_path / "syn"),
        "--n",
        "4",
        "--seed",
        "1",
        "--size",
        "64",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "syn" / "Train" / "GT_Object").glob("SYN-*.png"))) == 4
    user_file = tmp_path / "syn" / "Train" / "Image" / "holiday.jpg"
    user_file.write_bytes(b"precious")
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "refusing" in result.stderr
    assert user_file.read_bytes() == b"precious"


@pytest.mark.parametrize("task", ["referring", "reasoning"])
def test_cli_other_tasks(tmp_path: Path, task: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "utils" / "make_synthetic_dataset.py"),
            "--out",
            str(tmp_path),
            "--n",
            "2",
            "--task",
            task,
            "--split",
            "val",
            "--size",
            "64",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    if task == "referring":
        assert len(load_refer_dataset("refcoco", "val", root=tmp_path)) >= 4
    else:
        assert len(load_reasonseg_dataset("val", root=tmp_path)) == 2


def test_referring_writer_refuses_real_annotations(tmp_path: Path) -> None:
    from fixtures_data import make_refer_tree, snapshot

    from seg_r1.data import DatasetError

    make_refer_tree(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError, match="refusing to modify"):
        write_referring_dataset(tmp_path, n=2, seed=0, size=64, split="val")
    assert snapshot(tmp_path) == before


def test_distractors_are_background_clutter_outside_every_mask():
    """distractors=N paints muted shapes into the background only: the masks and the object
    pixels are those of the same scene without them, every changed pixel lies at least
    DISTRACTOR_GAP pixels from the objects, and the object radius range is honoured."""
    from seg_r1.data.synthetic import DISTRACTOR_GAP

    plain = list(
        synthetic_scenes(6, seed=3, size=128, camouflage_ratio=0.0, multi_object_ratio=0.5)
    )
    busy = list(
        synthetic_scenes(
            6, seed=3, size=128, camouflage_ratio=0.0, multi_object_ratio=0.5, distractors=4
        )
    )
    changed_any = False
    for a, b in zip(plain, busy):
        assert len(a.masks) == len(b.masks)
        for ma, mb in zip(a.masks, b.masks):
            assert np.array_equal(ma, mb)
        fg = a.foreground
        assert np.array_equal(a.image[fg], b.image[fg])
        changed = np.any(a.image != b.image, axis=-1)
        changed_any |= bool(changed.any())
        ys, xs = np.nonzero(changed)
        fy, fx = np.nonzero(fg)
        if ys.size:
            gaps = np.hypot(ys[:, None] - fy[None, :], xs[:, None] - fx[None, :]).min(axis=1)
            assert gaps.min() > DISTRACTOR_GAP
    assert changed_any
    small = next(synthetic_scenes(1, seed=3, size=128, object_radius=(0.05, 0.06), distractors=0))
    assert all(0.05 * 128 <= o.radius <= 0.06 * 128 for o in small.objects)


def test_spotlight_lights_the_background_only(tmp_path):
    """spotlight=True shifts background pixels (most near the spot's centre) and leaves the
    masks and object pixels as they are; the writer passes the scene options through."""
    from PIL import Image

    options = {"camouflage_ratio": 0.0, "multi_object_ratio": 0.0, "split": "test"}
    plain = list(synthetic_scenes(4, seed=2, size=96, **options))
    lit = list(synthetic_scenes(4, seed=2, size=96, **options, spotlight=True))
    for a, b in zip(plain, lit):
        fg = a.foreground
        assert np.array_equal(fg, b.foreground)
        assert np.array_equal(a.image[fg], b.image[fg])
        shift = np.abs(a.image.astype(int) - b.image.astype(int)).sum(axis=-1)
        assert shift[~fg].max() >= 40  # 50-80 levels at the centre (less where it clips)
    stems = write_foreground_dataset(tmp_path, 2, seed=2, size=96, **options, spotlight=True)
    written = np.asarray(Image.open(tmp_path / "Test" / "Image" / f"{stems[0]}.jpg"))
    # JPEG-close to the lit scene, far from the plain one
    assert np.abs(written.astype(int) - lit[0].image).mean() < 3
    assert np.abs(written.astype(int) - plain[0].image).mean() > 5
