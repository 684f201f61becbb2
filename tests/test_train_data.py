"""Dataset -> TRL rows (lazy views) and SFT trace synthesis, with exact expected values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seg_r1.answer import parse_answer
from seg_r1.configs import SegR1DataArguments
from seg_r1.prompts import SYSTEM_PROMPT_RL, USER_PROMPT_FOREGROUND, USER_PROMPT_PRERL
from seg_r1.training_data import (
    grpo_dataset,
    load_segmentation_data,
    sft_dataset_from_fcot,
    sft_dataset_from_masks,
    synthesize_trace,
)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from seg_r1.data.synthetic_trees import write_foreground_dataset, write_referring_dataset

    root = tmp_path_factory.mktemp("synthetic")
    write_foreground_dataset(root, 6, seed=0, size=96, split="train")
    write_referring_dataset(root, 3, seed=0, size=96, dataset="refcoco", split="train")
    return root


def test_trace_of_a_rectangle_is_exact():
    mask = np.zeros((40, 60), dtype=bool)
    mask[10:20, 5:45] = True  # rows 10..19, columns 5..44
    trace = synthesize_trace(mask, fg_points=1, bg_points=1)
    assert trace.boxes.tolist() == [[5, 10, 45, 20]]  # continuous XYXY: [x1, y1, x2 + 1, y2 + 1]
    assert trace.labels.tolist() == [1]  # the object fills its box: no background point inside
    (x, y) = trace.points[0]
    assert mask[int(y), int(x)] and 13 <= y <= 16  # deepest row band of a 10-row rectangle
    assert trace.answer == (
        "<think> The object is a large object near the center. </think> "
        f"<bbox>[5,10,45,20]</bbox>, <points>[[{int(x)},{int(y)}]]</points>, <labels>[1]</labels>"
    )


def test_trace_of_a_disk_has_inside_and_outside_points():
    yy, xx = np.mgrid[:112, :112]
    mask = (xx - 40) ** 2 + (yy - 70) ** 2 <= 15**2
    trace = synthesize_trace(mask, fg_points=2, bg_points=1)
    assert trace.boxes.tolist() == [[25, 55, 56, 86]]
    assert trace.labels.tolist() == [1, 1, 0]
    inside = [bool(mask[int(y), int(x)]) for x, y in trace.points]
    assert inside == [True, True, False]
    assert trace.points[0].tolist() == [40, 70]  # the centre is the deepest pixel
    parsed = parse_answer(trace.answer, 112)
    assert parsed.format_ok and parsed.num_boxes == 1 and parsed.num_points == 3


def test_trace_of_two_objects_and_of_nothing():
    mask = np.zeros((64, 64), dtype=bool)
    mask[5:15, 5:15] = True
    mask[40:60, 30:60] = True
    mask[0, 63] = True  # one-pixel speck: below MIN_COMPONENT_SHARE of the largest, ignored
    trace = synthesize_trace(mask, fg_points=1, bg_points=0)
    assert trace.boxes.tolist() == [[30, 40, 60, 60], [5, 5, 15, 15]]  # largest first
    assert trace.think.startswith("There are 2 objects: a large object near the bottom")
    empty = synthesize_trace(np.zeros((8, 8), dtype=bool))
    assert empty.boxes.tolist() == [[0, 0, 8, 8]] and empty.points.shape == (0, 2)


def test_grpo_rows(synthetic_root):
    args = SegR1DataArguments(
        datasets=["synthetic:train", "refcoco:train"], data_root=str(synthetic_root)
    )
    source = load_segmentation_data(args)
    view = grpo_dataset(source, stage="rl", frame_size=64)
    rows = [view[i] for i in range(len(view))]
    foreground = next(r for r in rows if r["task"] == "foreground")
    referring = next(r for r in rows if r["task"] == "referring")
    assert foreground["image"].size == (64, 64) and foreground["image"].mode == "RGB"
    assert foreground["prompt"][0]["content"][0]["text"] == SYSTEM_PROMPT_RL
    user = foreground["prompt"][1]["content"]
    assert user[0] == {"type": "image"} and user[1]["text"] == USER_PROMPT_FOREGROUND
    assert (
        referring["prompt"][-1]["content"][1]["text"]
        == f"Identify and segment {referring['query']}"
    )
    # the source columns the rewards read are kept
    assert foreground["mask"] is not None and json.loads(referring["annotation"])["segmentation"]


def test_prerl_rows_and_foreground_only(synthetic_root):
    args = SegR1DataArguments(datasets=["synthetic:train"], data_root=str(synthetic_root))
    view = grpo_dataset(load_segmentation_data(args), stage="prerl", frame_size=32)
    row = view[0]
    assert [m["role"] for m in row["prompt"]] == ["user"]  # pre-RL has no system message
    assert row["prompt"][0]["content"][1]["text"] == USER_PROMPT_PRERL
    mixed = SegR1DataArguments(
        datasets=["synthetic:train", "refcoco:train"], data_root=str(synthetic_root)
    )
    with pytest.raises(ValueError, match="pre-RL stage trains on foreground data only"):
        grpo_dataset(load_segmentation_data(mixed), stage="prerl", frame_size=32)


def test_max_train_samples(synthetic_root):
    args = SegR1DataArguments(
        datasets=["synthetic:train"], data_root=str(synthetic_root), max_train_samples=2
    )
    assert len(load_segmentation_data(args)) == 2


def test_sft_rows_from_masks(synthetic_root):
    from seg_r1.data import load_mask
    from seg_r1.frame import resize_mask

    args = SegR1DataArguments(datasets=["synthetic:train"], data_root=str(synthetic_root))
    source = load_segmentation_data(args)
    view = sft_dataset_from_masks(source, frame_size=48, fg_points=1, bg_points=1)
    row = view[0]
    assert set(row) == {"prompt", "completion", "image"}
    assert row["image"].size == (48, 48)
    answer = row["completion"][0]["content"][0]["text"]
    expected = synthesize_trace(resize_mask(load_mask(source[0]), 48), 1, 1).answer
    assert answer == expected and parse_answer(answer, 48).format_ok


def test_sft_traces_from_the_next_image(synthetic_root):
    """trace_from="next": row i shows image i with the trace of mask i + 1 (the last row the
    first's), the control that teaches the grammar but not where."""
    from seg_r1.data import load_mask
    from seg_r1.frame import resize_mask

    args = SegR1DataArguments(datasets=["synthetic:train"], data_root=str(synthetic_root))
    source = load_segmentation_data(args)
    own = sft_dataset_from_masks(source, 48, 1, 1)
    view = sft_dataset_from_masks(source, 48, 1, 1, trace_from="next")
    n = len(source)
    for i in range(n):
        answer = view[i]["completion"][0]["content"][0]["text"]
        other = resize_mask(load_mask(source[(i + 1) % n]), 48)
        assert answer == synthesize_trace(other, 1, 1).answer
        assert np.array_equal(np.asarray(view[i]["image"]), np.asarray(own[i]["image"]))
    answers = [view[i]["completion"][0]["content"][0]["text"] for i in range(n)]
    assert len(set(answers)) > 1  # the scenes differ, so the rolled answers do
    with pytest.raises(ValueError, match="trace_from"):
        sft_dataset_from_masks(source, 48, trace_from="random")


def test_sft_boxes_from_the_next_image_points_from_its_own(synthetic_root):
    """box_swap=1: row i's answer has the box of mask i + 1 and the points, labels and think
    text of mask i (after the grid), so SFT teaches roughly where but not the box."""
    from seg_r1.answer import parse_answer
    from seg_r1.data import load_mask
    from seg_r1.frame import resize_mask
    from seg_r1.training_data import coarse_trace

    args = SegR1DataArguments(datasets=["synthetic:train"], data_root=str(synthetic_root))
    source = load_segmentation_data(args)
    view = sft_dataset_from_masks(source, 48, 2, 1, grid=8, box_swap=1.0)
    n = len(source)
    mixed = 0
    for i in range(n):
        answer = view[i]["completion"][0]["content"][0]["text"]
        own = coarse_trace(synthesize_trace(resize_mask(load_mask(source[i]), 48), 2, 1), 8, 48)
        nxt = coarse_trace(
            synthesize_trace(resize_mask(load_mask(source[(i + 1) % n]), 48), 2, 1), 8, 48
        )
        parsed = parse_answer(answer, 48)
        assert parsed.format_ok
        assert np.array_equal(parsed.boxes, nxt.boxes)
        assert np.array_equal(parsed.points, own.points)
        assert np.array_equal(parsed.labels, own.labels)
        assert answer.startswith(f"<think> {own.think} </think>")
        mixed += not np.array_equal(own.boxes, nxt.boxes)
    assert mixed > 0  # the scenes' boxes differ, so the answers are really mixed
    with pytest.raises(ValueError, match="box_swap"):
        sft_dataset_from_masks(source, 48, box_swap=1.5)
    with pytest.raises(ValueError, match="box_swap"):
        sft_dataset_from_masks(source, 48, trace_from="next", box_swap=0.5)


def test_sft_box_swap_share_drawn_on_each_read(synthetic_root):
    """box_swap=0.5: each read of a row keeps its own points and takes the next row's box on
    about half of the reads, the row's own box on the rest (grid 8)."""
    from seg_r1.answer import parse_answer
    from seg_r1.data import load_mask
    from seg_r1.frame import resize_mask
    from seg_r1.training_data import coarse_trace

    args = SegR1DataArguments(datasets=["synthetic:train"], data_root=str(synthetic_root))
    source = load_segmentation_data(args)
    view = sft_dataset_from_masks(source, 48, 2, 1, grid=8, box_swap=0.5, seed=3)
    n = len(source)
    traces = [
        coarse_trace(synthesize_trace(resize_mask(load_mask(source[i]), 48), 2, 1), 8, 48)
        for i in range(n)
    ]
    i = next(k for k in range(n) if not np.array_equal(traces[k].boxes, traces[(k + 1) % n].boxes))
    own = swapped = 0
    for _ in range(60):
        parsed = parse_answer(view[i]["completion"][0]["content"][0]["text"], 48)
        assert np.array_equal(parsed.points, traces[i].points)
        if np.array_equal(parsed.boxes, traces[i].boxes):
            own += 1
        else:
            assert np.array_equal(parsed.boxes, traces[(i + 1) % n].boxes)
            swapped += 1
    assert own + swapped == 60 and 15 <= swapped <= 45  # binomial(60, 0.5): outside p < 1e-4


def test_sft_traces_jittered_anew_on_each_read(synthetic_root):
    """grid + jitter: each read of a row draws a new box within J of the grid-snapped box (points
    and think text as on the grid); the same seed gives the same reads."""
    from seg_r1.data import load_mask
    from seg_r1.frame import resize_mask
    from seg_r1.training_data import coarse_trace

    def text(view):
        return view[0]["completion"][0]["content"][0]["text"]

    args = SegR1DataArguments(datasets=["synthetic:train"], data_root=str(synthetic_root))
    source = load_segmentation_data(args)
    grid_text = text(sft_dataset_from_masks(source, 48, 1, 1, grid=8))
    view = sft_dataset_from_masks(source, 48, 1, 1, grid=8, jitter=3, seed=5)
    snapped = coarse_trace(synthesize_trace(resize_mask(load_mask(source[0]), 48), 1, 1), 8, 48)
    reads = [text(view) for _ in range(30)]
    assert len(set(reads)) > 1  # drawn anew
    head, tail = grid_text.split("<bbox>")[0], grid_text.split("</bbox>")[1]
    for read in reads:
        box = np.asarray(parse_answer(read, 48).boxes[0])
        assert np.all(np.abs(box - snapped.boxes[0]) <= 3)
        # think text, points and labels are the grid trace's
        assert read.startswith(head) and read.endswith(tail)
    same = sft_dataset_from_masks(source, 48, 1, 1, grid=8, jitter=3, seed=5)
    assert [text(same) for _ in range(30)] == reads


def test_sft_traces_for_the_prerl_stage(synthetic_root):
    """trace_stage="prerl": the pre-RL prompt (no system turn, the points-only user text) and
    the trace's points and labels only -- no think block, no box."""
    from seg_r1.data import load_mask
    from seg_r1.frame import resize_mask

    args = SegR1DataArguments(datasets=["synthetic:train"], data_root=str(synthetic_root))
    source = load_segmentation_data(args)
    view = sft_dataset_from_masks(source, 48, 1, 1, stage="prerl")
    row = view[0]
    assert [m["role"] for m in row["prompt"]] == ["user"]
    assert row["prompt"][0]["content"][1]["text"] == USER_PROMPT_PRERL
    answer = row["completion"][0]["content"][0]["text"]
    trace = synthesize_trace(resize_mask(load_mask(source[0]), 48), 1, 1)
    points = ",".join(f"[{int(x)},{int(y)}]" for x, y in trace.points)
    labels = ",".join(str(int(v)) for v in trace.labels)
    assert answer == f"<points>[{points}]</points> <labels>[{labels}]</labels>"
    parsed = parse_answer(answer, 48, mode="points")
    assert parsed.format_ok and parsed.num_boxes == 0
    assert parsed.points.tolist() == trace.points.tolist()
    mixed = SegR1DataArguments(
        datasets=["synthetic:train", "refcoco:train"], data_root=str(synthetic_root)
    )
    with pytest.raises(ValueError, match="pre-RL stage trains on foreground data only"):
        sft_dataset_from_masks(load_segmentation_data(mixed), 48, stage="prerl")


def test_coarse_traces_say_roughly_where():
    """trace_grid: boxes snapped to the grid (nearest multiple; a collapsed side grows by one
    cell), points to the centres of their cells; by hand for a 10 px grid."""
    from seg_r1.training_data import Trace, coarse_trace

    trace = Trace(
        "The object is a small object near the left.",
        np.array([[13.0, 26.0, 44.0, 29.0]]),
        np.array([[27.0, 28.0], [3.0, 99.0]]),
        np.array([1, 0]),
    )
    coarse = coarse_trace(trace, 10, 100)
    assert coarse.boxes.tolist() == [[10, 30, 40, 40]]  # y: 26 -> 30, 29 -> 30 -> one cell
    assert coarse.points.tolist() == [[25, 25], [5, 95]]
    assert coarse.think == trace.think and coarse.labels.tolist() == [1, 0]
    assert coarse_trace(trace, 0, 100) is trace
    edge = Trace("", np.array([[95.0, 0.0, 100.0, 4.0]]), np.zeros((0, 2)), np.zeros(0, int))
    # x: both sides round to 100, so the box grows one cell inward; y: 4 -> 0 grows to 10
    assert coarse_trace(edge, 10, 100).boxes.tolist() == [[90, 0, 100, 10]]


def test_loose_boxes_after_the_grid():
    """trace_box_margin: after the grid, each box side moves out by the margin, inside the
    frame; points (cell centres), labels and think text as without it; by hand."""
    from seg_r1.training_data import Trace, coarse_trace

    trace = Trace(
        "The object is a large object near the right.",
        np.array([[13.0, 26.0, 44.0, 29.0], [61.0, 4.0, 93.0, 50.0]]),
        np.array([[27.0, 28.0], [3.0, 99.0]]),
        np.array([1, 0]),
    )
    loose = coarse_trace(trace, 10, 100, margin=20)
    assert loose.boxes.tolist() == [[0, 10, 60, 60], [40, 0, 100, 70]]
    assert loose.points.tolist() == [[25, 25], [5, 95]]
    assert loose.think == trace.think and loose.labels.tolist() == [1, 0]
    exact = coarse_trace(trace, 0, 100, margin=5)  # no grid: the exact box, grown
    assert exact.boxes.tolist() == [[8, 21, 49, 34], [56, 0, 98, 55]]
    assert exact.points.tolist() == trace.points.tolist()


def test_core_boxes_after_the_grid():
    """trace_box_margin < 0: after the grid, each box side moves in by the margin, the box kept
    at least 2 * min_core_half (2) pixels wide and tall about its centre; points as without it;
    by hand."""
    from seg_r1.training_data import Trace, coarse_trace

    trace = Trace(
        "The object is a large object near the right.",
        np.array([[13.0, 26.0, 44.0, 29.0], [61.0, 4.0, 93.0, 50.0]]),
        np.array([[27.0, 28.0], [3.0, 99.0]]),
        np.array([1, 0]),
    )
    # grid 10: [10, 30, 40, 30] (y collapsed: grows to [30, 40]) and [60, 0, 90, 50]
    core = coarse_trace(trace, 10, 100, margin=-8)
    # box 1: x 18..32; y 38..32 crosses its centre 35 -> 33..37; box 2: x 68..82, y 8..42
    assert core.boxes.tolist() == [[18, 33, 32, 37], [68, 8, 82, 42]]
    assert core.points.tolist() == [[25, 25], [5, 95]]
    assert core.think == trace.think and core.labels.tolist() == [1, 0]


def test_jittered_traces_spread_boxes_around_the_object():
    """trace_jitter: every box side moves by a whole number of pixels in [-J, J], anew on each
    call, inside the frame and at least one pixel wide; points, labels and think text kept."""
    from seg_r1.training_data import Trace, jitter_trace

    trace = Trace(
        "The object is a small object near the left.",
        np.array([[10.0, 20.0, 60.0, 70.0], [0.0, 97.0, 3.0, 100.0]]),
        np.array([[30.0, 40.0], [2.0, 98.0]]),
        np.array([1, 0]),
    )
    rng = np.random.default_rng(0)
    assert jitter_trace(trace, 0, 100, rng) is trace
    draws = np.stack([jitter_trace(trace, 5, 100, rng).boxes for _ in range(400)])
    moved = draws[:, 0] - trace.boxes[0]
    assert np.all(np.abs(moved) <= 5) and np.all(moved == np.round(moved))
    assert set(np.unique(moved).tolist()) == set(range(-5, 6))  # every offset occurs
    edge = draws[:, 1]  # the corner box: clipped to the frame, never collapsed
    assert edge.min() >= 0 and edge.max() <= 100
    assert np.all(edge[:, 2] > edge[:, 0]) and np.all(edge[:, 3] > edge[:, 1])
    again = jitter_trace(trace, 5, 100, np.random.default_rng(0))
    assert again.boxes.tolist() == draws[0].tolist()  # seeded: reproducible
    assert again.points is trace.points and again.think == trace.think
    assert again.labels is trace.labels


def test_sft_rows_from_fcot(tmp_path, synthetic_root):
    from seg_r1.data import load_sft_dataset

    image = next((synthetic_root / "Train" / "Image").iterdir())
    records = [
        {
            "problem": "Segment the object.",
            "image": str(image),
            "thinking": "<think> a disk </think>",
            "solution": "<bbox>[1,2,30,40]</bbox>",
            "system": "Be brief.",
        }
    ]
    (tmp_path / "fcot.json").write_text(json.dumps(records))
    view = sft_dataset_from_fcot(load_sft_dataset(tmp_path / "fcot.json"), frame_size=None)
    row = view[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["prompt"][1]["content"][0]["text"] == "Segment the object."  # text, then image
    assert (
        row["completion"][0]["content"][0]["text"]
        == "<think> a disk </think> <bbox>[1,2,30,40]</bbox>"
    )
    assert row["image"].size == (96, 96)  # as stored
    assert sft_dataset_from_fcot(load_sft_dataset(tmp_path / "fcot.json"), 64)[0]["image"].size == (
        64,
        64,
    )
