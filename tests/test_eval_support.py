"""Helpers of the evaluation tests (imported by ``test_eval_*.py`` and ``test_inference.py``)
and unit tests of the runner's building blocks (records, resume bookkeeping, reports).

The *scripted policy* is the tiny Qwen2.5-VL checkpoint with a ``sequence_bias`` in its
``generation_config.json`` that makes greedy decoding write :data:`SCRIPTED_ANSWER` whatever
the image: the real model, processor, chat template, loading and generation code run, and
the answer is a valid one, so masks (classical GrabCut inside the box) are non-trivial.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from seg_r1.data.io import decode_rle, encode_rle
from seg_r1.evaluation import (
    EvalConfig,
    EvalError,
    check_run_file,
    make_chunks,
    mask_relpath,
    order_samples,
    read_records,
    repair_jsonl,
    select_cases,
)

ROOT = Path(__file__).resolve().parents[1]
#: Frame of the tests: small, so GrabCut stays ~50 ms per mask on a busy 2-core machine.
TEST_FRAME = 128
#: The scripted policy's answer, in a 128 frame: a box over the middle, one positive point
#: in it and one negative point outside it (dropped by the mask rule).
SCRIPTED_ANSWER = (
    "<think> a shape </think> <bbox>[16,20,112,108]</bbox>, "
    "<points>[[64,64],[2,2]]</points>, <labels>[1,0]</labels>"
)
#: Bias added to the scripted tokens' logits: the tiny random model's logits are O(1).
_BIAS = 100.0


def make_scripted_policy(src: Path, out: Path, answer: str = SCRIPTED_ANSWER) -> Path:
    """Copy the tiny policy ``src`` to ``out`` with a generation config forcing ``answer``."""
    from transformers import AutoTokenizer

    if (out / "generation_config.json").is_file() and (out / "SCRIPTED").is_file():
        return out
    shutil.copytree(src, out, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(src)
    tail = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    ids = tail + tok(answer, add_special_tokens=False)["input_ids"]
    ids.append(tok.convert_tokens_to_ids("<|im_end|>"))
    # Shortest context that determines every next token of the answer unambiguously.
    for context in range(len(tail), len(ids)):
        table: dict[tuple[int, ...], int] = {}
        if all(
            table.setdefault(tuple(ids[i - context : i]), ids[i]) == ids[i]
            for i in range(len(tail), len(ids))
        ):
            break
    config = json.loads((out / "generation_config.json").read_text())
    config["sequence_bias"] = [
        [ids[i - context : i + 1], _BIAS] for i in range(len(tail), len(ids))
    ]
    (out / "generation_config.json").write_text(json.dumps(config))
    (out / "SCRIPTED").write_text(answer)
    return out


def scripted_policy_dir(tiny_ckpts, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scripted policy, built once per test session."""
    return make_scripted_policy(tiny_ckpts.policy, tmp_path_factory.getbasetemp() / "scripted")


def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic foreground / referring / reasoning trees in the real layouts (once per session).

    foreground: 6 test images (synthetic COD10K layout, 96 px); referring: refcoco val (4
    images) + testA (2 images); reasoning: ReasonSeg val (5) + test (4).
    """
    from seg_r1.data.synthetic_trees import (
        write_foreground_dataset,
        write_reasoning_dataset,
        write_referring_dataset,
    )

    root = tmp_path_factory.getbasetemp() / "synthetic"
    if (root / "DONE").is_file():
        return root
    write_foreground_dataset(root / "fg", 6, seed=0, size=96, split="test")
    write_referring_dataset(root / "ref", 4, seed=0, size=96, split="val")
    write_referring_dataset(root / "ref", 2, seed=1, size=96, split="testA")
    write_reasoning_dataset(root / "rs", 5, seed=0, size=96, split="val")
    write_reasoning_dataset(root / "rs", 4, seed=0, size=96, split="test")
    (root / "DONE").write_text("ok")
    return root


def load_script(name: str) -> ModuleType:
    """Import ``eval/<name>.py`` as a module (to call its ``main(argv)`` in-process)."""
    path = ROOT / "eval" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_eval_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def common_args(policy: Path, batch_size: int = 2) -> list[str]:
    """CPU, classical segmenter, small frame, short answers, no progress bar, no case grid."""
    return [
        "--model_path", str(policy),
        "--device", "cpu",
        "--segmenter", "classical",
        "--frame_size", str(TEST_FRAME),
        "--max_new_tokens", "64",
        "--batch_size", str(batch_size),
        "--no_progress",
        "--log_level", "WARNING",
        # One torch thread: on a shared 2-core machine, two threads per process oversubscribe
        # the cores and make the tiny model ~10x slower.
        "--num_threads", "1",
    ]  # fmt: skip


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- unit tests


def test_scripted_policy_answers_the_script(tiny_ckpts, tmp_path_factory):
    from seg_r1.inference import SegR1Pipeline
    from seg_r1.policy import load_policy
    from seg_r1.segmenters import ClassicalSegmenter

    model, processor = load_policy(scripted_policy_dir(tiny_ckpts, tmp_path_factory))
    pipe = SegR1Pipeline(model, processor, ClassicalSegmenter(), frame_size=TEST_FRAME,
                         task="referring", max_new_tokens=64)  # fmt: skip
    image = np.zeros((40, 60, 3), np.uint8)
    assert pipe.generate([image], ["the red circle"]) == [SCRIPTED_ANSWER]


def test_repair_jsonl_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "part.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "comp')
    assert repair_jsonl(path) == len(b'{"id": "c", "comp')
    assert path.read_bytes() == b'{"id": "a"}\n{"id": "b"}\n'
    assert repair_jsonl(path) == 0
    only_torn = tmp_path / "torn.jsonl"
    only_torn.write_bytes(b'{"id": "x"')
    repair_jsonl(only_torn)
    assert only_torn.read_bytes() == b""


def test_read_records_first_occurrence_wins_and_bad_middle_line_raises(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    (records / "part-000.jsonl").write_text('{"id": "a", "v": 1}\n{"id": "b", "v": 2}\n')
    (records / "part-001.jsonl").write_text('{"id": "a", "v": 3}\n{"id": "c", "v": 4')
    got = read_records(records)
    assert {k: v["v"] for k, v in got.items()} == {"a": 1, "b": 2}
    (records / "part-002.jsonl").write_text('not json\n{"id": "d"}\n')
    with pytest.raises(EvalError, match="part-002.jsonl:1"):
        read_records(records)


def test_order_and_chunks_are_fixed_by_image_then_id():
    rows = [
        {"id": f"s{i}", "image": {"path": f"img{i % 3}.jpg"}, "source": "x", "split": "val"}
        for i in range(7)
    ]
    samples = order_samples(rows)
    assert [s.id for s in samples] == ["s0", "s3", "s6", "s1", "s4", "s2", "s5"]
    assert [s.index for s in samples] == list(range(7))
    assert samples[0].group == "x_val"
    chunks = make_chunks(samples, 3)
    assert [[s.id for s in c] for c in chunks] == [["s0", "s3", "s6"], ["s1", "s4", "s2"], ["s5"]]
    assert [s.id for s in order_samples(rows, limit=2)] == ["s0", "s3"]
    with pytest.raises(EvalError, match="duplicate"):
        order_samples(rows + rows[:1])


def test_mask_relpath_is_safe():
    assert mask_relpath("COD10K/test/a b") == "masks/COD10K/test/a_b.png"
    assert mask_relpath("../x/../y") == "masks/_../x/_../y.png"
    assert mask_relpath("refcoco+/val/1/2") == "masks/refcoco+/val/1/2.png"


def test_rle_round_trip():
    mask = np.zeros((7, 9), bool)
    mask[2:5, 1:8] = True
    mask[6, 0] = True
    rle = encode_rle(mask)
    assert rle["size"] == [7, 9] and isinstance(rle["counts"], str)
    np.testing.assert_array_equal(decode_rle(json.loads(json.dumps(rle))), mask)


def test_select_cases_worst_and_best_are_disjoint():
    records = [{"id": f"r{i}", "iou": v} for i, v in enumerate([0.5, 0.1, 0.9, 0.1, 0.7])]
    worst, best = select_cases(records, k=2)
    assert [r["id"] for r in worst] == ["r1", "r3"]
    assert [r["id"] for r in best] == ["r2", "r4"]
    worst, best = select_cases(records[:3], k=2)
    assert [r["id"] for r in worst] == ["r1", "r0"] and [r["id"] for r in best] == ["r2"]


def test_resume_with_other_settings_raises(tmp_path):
    config = EvalConfig(model_path="m", task="referring", frame_size=1024, device="cpu")
    check_run_file(tmp_path, config, overwrite=False)
    check_run_file(tmp_path, config, overwrite=False)  # same settings: fine
    other = EvalConfig(model_path="m", task="referring", frame_size=768, device="cpu")
    with pytest.raises(EvalError, match="frame_size: was 1024, now 768"):
        check_run_file(tmp_path, other, overwrite=False)
    (tmp_path / "records").mkdir()
    check_run_file(tmp_path, other, overwrite=True)  # starts over
    assert not (tmp_path / "records").exists()
    assert json.loads((tmp_path / "run.json").read_text())["frame_size"] == 768


def test_config_checks_its_values():
    with pytest.raises(ValueError, match="task"):
        EvalConfig(model_path="m", task="segment", frame_size=768)
    with pytest.raises(ValueError, match="ignore_mode"):
        EvalConfig(model_path="m", task="reasoning", frame_size=768, ignore_mode="drop")


def test_gpu_ids_are_checked():
    import torch

    from seg_r1.evaluation import parse_gpu_ids

    assert parse_gpu_ids(None) == [] and parse_gpu_ids("") == []
    with pytest.raises(EvalError, match="comma-separated integers"):
        parse_gpu_ids("0;1")
    if not torch.cuda.is_available():
        with pytest.raises(EvalError, match="CUDA is not available"):
            parse_gpu_ids("0")
