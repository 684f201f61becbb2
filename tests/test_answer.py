"""The answer grammar (SPEC §2): exact parses, documented decisions, fuzzing, round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seg_r1.answer import ParsedAnswer, format_answer, parse_answer

CANONICAL = (
    "<think> a fish on sand </think> <bbox>[100,120,300,360]</bbox>, "
    "<points>[[150,200],[250,300],[50,50]]</points>, <labels>[1,1,0]</labels>"
)


def _flags(a: ParsedAnswer) -> dict[str, object]:
    return {
        "has_think": a.has_think,
        "has_box": a.has_box,
        "has_points": a.has_points,
        "has_labels": a.has_labels,
        "labels_match": a.labels_match,
        "format_ok": a.format_ok,
        "ok": a.ok,
        "error": a.error,
    }


ALL_GOOD = {
    "has_think": True,
    "has_box": True,
    "has_points": True,
    "has_labels": True,
    "labels_match": True,
    "format_ok": True,
    "ok": True,
    "error": None,
}


def test_canonical_answer():
    a = parse_answer(CANONICAL, 768)
    np.testing.assert_array_equal(a.boxes, [[100, 120, 300, 360]])
    np.testing.assert_array_equal(a.points, [[150, 200], [250, 300], [50, 50]])
    np.testing.assert_array_equal(a.labels, [1, 1, 0])
    assert a.boxes.dtype == np.float64 and a.points.dtype == np.float64
    assert a.labels.dtype == np.int64
    assert _flags(a) == ALL_GOOD
    assert (a.frame_size, a.mode, a.dropped_boxes) == ((768, 768), "full", 0)
    assert (a.num_boxes, a.num_points) == (1, 3)
    assert not (a.boxes.flags.writeable or a.points.flags.writeable or a.labels.flags.writeable)


def test_any_order_free_text_whitespace_and_floats():
    text = (
        "Sure! <labels>[ 1 , 0 ]</labels> then\n<points>[[ 10.5, 20 ],\n [30,40.25]]</points>"
        " and <think>\nmulti\nline\n</think> finally <bbox> [1.5, 2, 3e2, 400] </bbox> done."
    )
    a = parse_answer(text, 768)
    np.testing.assert_array_equal(a.boxes, [[1.5, 2, 300, 400]])
    np.testing.assert_array_equal(a.points, [[10.5, 20], [30, 40.25]])
    np.testing.assert_array_equal(a.labels, [1, 0])
    assert _flags(a) == ALL_GOOD


def test_empty_think_block_counts():
    a = parse_answer(
        "<think></think><bbox>[1,2,3,4]</bbox><points>[[2,3]]</points><labels>[1]</labels>", 10
    )
    assert a.has_think and a.format_ok


def test_several_bbox_tags_are_several_objects():
    text = "<think>x</think><bbox>[0,0,10,10]</bbox> and <bbox>[20,20,30,40]</bbox><points>[[5,5]]</points><labels>[1]</labels>"
    a = parse_answer(text, 100)
    np.testing.assert_array_equal(a.boxes, [[0, 0, 10, 10], [20, 20, 30, 40]])
    assert a.format_ok


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[1,2,3,4]", [[1, 2, 3, 4]]),
        ("[[1,2,3,4]]", [[1, 2, 3, 4]]),  # one extra bracket pair: same box
        ("[[1,2,3,4],[5,6,7,8]]", [[1, 2, 3, 4], [5, 6, 7, 8]]),  # several objects in one tag
        ("[-5, 2, 3, 4]", [[0, 2, 3, 4]]),  # clipped to the frame
        ("[+1, .5, 3., 4]", [[1, 0.5, 3, 4]]),
    ],
)
def test_box_spellings(content, expected):
    a = parse_answer(f"<bbox>{content}</bbox>", 100)
    np.testing.assert_array_equal(a.boxes, expected)
    assert a.dropped_boxes == 0 and a.ok


@pytest.mark.parametrize(
    "content", ["[1,2,3]", "[1,2,3,4,5]", "1,2,3,4", "[1,2,3,4", "[a,b,c,d]", "[[[1,2,3,4]]]", "[]"]
)
def test_malformed_boxes_are_dropped(content):
    a = parse_answer(f"<think></think><bbox>{content}</bbox>", 100)
    assert a.boxes.shape == (0, 4)
    assert (a.dropped_boxes, a.has_box, a.ok) == (1, False, False)
    assert a.error == "no valid box (malformed or zero area)"


def test_reversed_box_is_normalised():
    a = parse_answer("<bbox>[50,60,10,20]</bbox>", 100)
    np.testing.assert_array_equal(a.boxes, [[10, 20, 50, 60]])
    a = parse_answer("<bbox>[10,60,50,20]</bbox>", 100)  # only y reversed
    np.testing.assert_array_equal(a.boxes, [[10, 20, 50, 60]])


def test_degenerate_and_outside_boxes_are_dropped_others_kept():
    text = (
        "<bbox>[10,10,10,50]</bbox>"  # zero width
        "<bbox>[10,30,50,30]</bbox>"  # zero height
        "<bbox>[800,800,900,900]</bbox>"  # outside a 768 frame: zero area after clipping
        "<bbox>[700,700,900,900]</bbox>"  # partly outside: clipped
    )
    a = parse_answer(text, 768)
    np.testing.assert_array_equal(a.boxes, [[700, 700, 768, 768]])
    assert a.dropped_boxes == 3


def test_non_square_frame_clips_x_to_width_and_y_to_height():
    # frame (height 100, width 200)
    a = parse_answer(
        "<bbox>[-1,-1,500,500]</bbox><points>[[300,300]]</points><labels>[1]</labels>", (100, 200)
    )
    np.testing.assert_array_equal(a.boxes, [[0, 0, 200, 100]])
    np.testing.assert_array_equal(a.points, [[200, 100]])
    assert a.frame_size == (100, 200)


def test_points_and_labels_tags_are_concatenated():
    text = "<points>[[1,2]]</points><labels>[1]</labels><points>[[3,4],[5,6]]</points><labels>[0,1]</labels>"
    a = parse_answer(text, 10, mode="points")
    np.testing.assert_array_equal(a.points, [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(a.labels, [1, 0, 1])


def test_single_flat_point_and_float_labels():
    a = parse_answer("<points>[3,4]</points><labels>[1.0]</labels>", 10, mode="points")
    np.testing.assert_array_equal(a.points, [[3, 4]])
    np.testing.assert_array_equal(a.labels, [1])


def test_label_count_mismatch():
    a = parse_answer(
        "<think>x</think><bbox>[1,1,5,5]</bbox><points>[[2,2],[3,3]]</points><labels>[1]</labels>",
        10,
    )
    assert _flags(a) == {
        **ALL_GOOD,
        "labels_match": False,
        "format_ok": False,
        "ok": False,  # an inconsistent points/labels pair makes the answer unusable
        "error": "1 labels for 2 points",
    }
    assert a.points.shape == (0, 2) and a.labels.shape == (0,)


@pytest.mark.parametrize(
    ("labels", "error"), [("[2]", "malformed <labels>"), ("[1,x]", "malformed <labels>")]
)
def test_labels_must_be_zero_or_one(labels, error):
    a = parse_answer(f"<points>[[2,2]]</points><labels>{labels}</labels>", 10, mode="points")
    assert (a.has_labels, a.ok, a.error) == (False, False, error)


def test_missing_think_is_a_format_failure_but_usable():
    a = parse_answer("<bbox>[1,1,5,5]</bbox><points>[[2,2]]</points><labels>[1]</labels>", 10)
    assert _flags(a) == {
        **ALL_GOOD,
        "has_think": False,
        "format_ok": False,
        "error": "missing <think>...</think>",
    }


def test_box_only_answer_is_usable_not_well_formatted():
    a = parse_answer("<think>t</think><bbox>[1,1,5,5]</bbox>", 10)
    assert (a.ok, a.format_ok, a.error) == (True, False, "missing <points>")
    assert a.points.shape == (0, 2)


def test_empty_points_and_labels():
    a = parse_answer(
        "<think>t</think><bbox>[1,1,5,5]</bbox><points>[]</points><labels>[]</labels>", 10
    )
    # Consistent (0 == 0): usable as a box-only prompt, but "points" are required by the format.
    assert (a.ok, a.format_ok, a.has_points, a.labels_match, a.error) == (
        True,
        False,
        False,
        True,
        "no points",
    )


def test_missing_box():
    a = parse_answer("<think>t</think><points>[[2,2]]</points><labels>[1]</labels>", 10)
    assert (a.ok, a.format_ok, a.error) == (False, False, "missing <bbox>")


def test_prerl_mode():
    a = parse_answer("<points>[[10,20],[30,40]]</points> <labels>[1,0]</labels>", 768, "points")
    assert _flags(a) == {**ALL_GOOD, "has_think": False, "has_box": False}
    a = parse_answer("<points>[[10,20]]</points>", 768, "points")
    assert (a.ok, a.format_ok, a.error) == (False, False, "missing <labels>")
    # Boxes are parsed but not required (nor used) in points mode.
    a = parse_answer(CANONICAL, 768, "points")
    assert a.format_ok and a.ok and a.has_box


def test_nested_tags_take_the_innermost():
    a = parse_answer("<bbox><bbox>[1,2,3,4]</bbox>", 10)
    np.testing.assert_array_equal(a.boxes, [[1, 2, 3, 4]])


@pytest.mark.parametrize("text", [None, 12, b"<bbox>[1,2,3,4]</bbox>"])
def test_non_strings_fail_without_raising(text):
    a = parse_answer(text, 10)  # type: ignore[arg-type]
    assert not a.ok and a.error.startswith("answer is not a string")


def test_bad_frame_or_mode_raise():
    with pytest.raises(ValueError, match="frame_size"):
        parse_answer("", 0)
    with pytest.raises(ValueError, match="frame_size"):
        parse_answer("", (10, 10, 3))
    with pytest.raises(ValueError, match="mode"):
        parse_answer("", 10, mode="boxes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- fuzzing


def _check_invariants(a: ParsedAnswer) -> None:
    h, w = a.frame_size
    assert a.boxes.ndim == 2 and a.boxes.shape[1] == 4
    assert a.points.ndim == 2 and a.points.shape[1] == 2
    assert a.labels.shape == (a.points.shape[0],)
    assert np.all(a.boxes[:, 0] < a.boxes[:, 2]) and np.all(a.boxes[:, 1] < a.boxes[:, 3])
    assert np.all((a.boxes[:, 0::2] >= 0) & (a.boxes[:, 0::2] <= w))
    assert np.all((a.boxes[:, 1::2] >= 0) & (a.boxes[:, 1::2] <= h))
    assert np.all((a.points[:, 0] >= 0) & (a.points[:, 0] <= w))
    assert np.all((a.points[:, 1] >= 0) & (a.points[:, 1] <= h))
    assert set(a.labels.tolist()) <= {0, 1}
    assert (a.error is None) == a.format_ok
    assert not a.format_ok or a.ok


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises(text):
    for mode in ("full", "points"):
        _check_invariants(parse_answer(text, 768, mode))


_FRAGMENTS = st.sampled_from(
    [
        "<think>", "</think>", "<bbox>", "</bbox>", "<points>", "</points>", "<labels>",
        "</labels>", "[", "]", "[[", "]]", ",", " ", "\n", "0", "1", "-3", "12.5", "1e3", "1e999",
        "768", "99999", ".", "e", "+", "nan", "inf", "x", "<", ">", "/",
    ]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=40), st.sampled_from([768, 1024, (100, 200)]))
def test_grammar_like_fuzz_never_raises(fragments, frame):
    text = "".join(fragments)
    for mode in ("full", "points"):
        _check_invariants(parse_answer(text, frame, mode))


def test_pathological_inputs_are_fast_and_safe():
    for text in [
        "[" * 10000,
        "<bbox>" + "[" * 5000 + "</bbox>",
        "<bbox>" + "1," * 20000 + "</bbox>",
    ]:
        assert not parse_answer(text, 768).ok


# --------------------------------------------------------------------------- writing


def test_format_answer_canonical():
    text = format_answer(
        [[100, 120, 300, 360]],
        [[150, 200], [250, 300], [50, 50]],
        [1, 1, 0],
        think="a fish on sand",
    )
    assert text == CANONICAL


def test_format_answer_prerl_and_variants():
    assert (
        format_answer(points=[[1, 2]], labels=[0])
        == "<points>[[1,2]]</points> <labels>[0]</labels>"
    )
    assert format_answer([[1, 2, 3, 4.5]], think="") == "<think> </think> <bbox>[1,2,3,4.5]</bbox>"
    assert (
        format_answer([[0, 0, 1, 1], [2, 2, 3, 3]])
        == "<bbox>[0,0,1,1]</bbox>, <bbox>[2,2,3,3]</bbox>"
    )
    with pytest.raises(ValueError, match="one label per point"):
        format_answer(points=[[1, 2]], labels=[1, 0])
    with pytest.raises(ValueError, match="0 or 1"):
        format_answer(points=[[1, 2]], labels=[2])


_coord = st.one_of(
    st.integers(0, 768).map(float), st.floats(0, 768, allow_nan=False, allow_infinity=False)
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(_coord, _coord, _coord, _coord), min_size=1, max_size=3),
    st.lists(st.tuples(st.tuples(_coord, _coord), st.integers(0, 1)), min_size=1, max_size=5),
    st.text(alphabet=st.characters(blacklist_characters="<"), max_size=20),
)
def test_round_trip(raw_boxes, raw_points, think):
    boxes = [[min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)] for x1, y1, x2, y2 in raw_boxes]
    boxes = [b for b in boxes if b[2] > b[0] and b[3] > b[1]]
    points = [p for p, _ in raw_points]
    labels = [label for _, label in raw_points]
    a = parse_answer(format_answer(boxes, points, labels, think=think), 768)
    np.testing.assert_array_equal(a.boxes, np.asarray(boxes).reshape(-1, 4))
    np.testing.assert_array_equal(a.points, points)
    np.testing.assert_array_equal(a.labels, labels)
    assert a.format_ok == bool(boxes)
    b = parse_answer(format_answer(points=points, labels=labels), 768, mode="points")
    assert b.format_ok
    np.testing.assert_array_equal(b.points, points)
