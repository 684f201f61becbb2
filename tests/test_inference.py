"""The shared inference pipeline on the tiny checkpoints (CPU): loading, batched greedy
generation with left padding, frame handling, masks back at the original resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_eval_support import SCRIPTED_ANSWER, TEST_FRAME, scripted_policy_dir

from seg_r1.answer import parse_answer
from seg_r1.evaluation import torch_threads
from seg_r1.frame import resize_mask, resize_to_frame
from seg_r1.inference import SegR1Pipeline
from seg_r1.policy import PolicyLoadError, load_policy, pixel_bounds, resolve_attn_implementation
from seg_r1.segmenters import ClassicalSegmenter


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Two threads on a shared 2-core machine oversubscribe it (tiny model ~10x slower)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tiny_policy(tiny_ckpts):
    return load_policy(tiny_ckpts.policy, device="cpu")


@pytest.fixture(scope="module")
def scripted(tiny_ckpts, tmp_path_factory):
    return load_policy(scripted_policy_dir(tiny_ckpts, tmp_path_factory), device="cpu")


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40 + 7 * i, 64 - 5 * i, 3), dtype=np.uint8) for i in range(n)]


def _answering_differently(tiny_ckpts):
    """The tiny policy with larger random weights. Its own weights answer "\n" forever; these make
    every answer different, so comparisons of answers mean something."""
    model, processor = load_policy(tiny_ckpts.policy)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if weight.ndim >= 2 and "visual" not in name:
                weight.copy_(torch.randn(weight.shape, generator=gen) * 0.3)
    return model, processor


def test_load_policy_defaults_on_cpu(tiny_policy):
    model, processor = tiny_policy
    assert processor.tokenizer.padding_side == "left"
    assert next(model.parameters()).dtype == torch.float32
    assert model.config._attn_implementation == "sdpa"
    assert not model.training


def test_load_policy_fails_loudly(tmp_path, tiny_ckpts):
    with pytest.raises(PolicyLoadError, match="no config.json"):
        load_policy(tmp_path)
    with pytest.raises(PolicyLoadError, match="flash_attention_2 needs a CUDA device"):
        load_policy(tiny_ckpts.policy, attn_implementation="flash_attention_2")
    with pytest.raises(ValueError, match="dtype"):
        load_policy(tiny_ckpts.policy, dtype="float8")


def test_attention_choice():
    cpu = torch.device("cpu")
    assert resolve_attn_implementation(None, cpu, torch.float32) == "sdpa"
    assert resolve_attn_implementation("eager", cpu, torch.float32) == "eager"


def test_pixel_bounds_are_explicit_config(tiny_ckpts):
    _, processor = load_policy(tiny_ckpts.policy, min_pixels=28 * 28, max_pixels=56 * 56)
    assert pixel_bounds(processor) == (28 * 28, 56 * 56)
    out = processor.image_processor(images=[Image.new("RGB", (128, 128))], return_tensors="pt")
    assert out["image_grid_thw"].tolist() == [[1, 4, 4]]  # 56x56 pixels = 4x4 patches of 14


def test_left_padded_batch_equals_one_at_a_time(tiny_ckpts):
    """Greedy answers do not depend on batching: prompts of different lengths (queries) and
    images of different sizes, padded on the left, give the one-at-a-time tokens."""
    model, processor = _answering_differently(tiny_ckpts)
    images = _images(4)
    queries = ["the cat", "a very long expression about the dog on the left side", "x", "it"]
    pipe = SegR1Pipeline(model, processor, ClassicalSegmenter(), frame_size=TEST_FRAME,
                         task="referring", max_new_tokens=24, batch_size=4)  # fmt: skip
    batched = pipe.generate(images, queries)
    pipe.batch_size = 1
    single = pipe.generate(images, queries)
    assert batched == single
    assert len(set(batched)) == 4  # different answers per input


def test_predict_masks_at_original_resolution(scripted):
    model, processor = scripted
    segmenter = ClassicalSegmenter()
    pipe = SegR1Pipeline(model, processor, segmenter, frame_size=TEST_FRAME, task="foreground",
                         max_new_tokens=64, batch_size=2)  # fmt: skip
    images = _images(3)
    images[1] = Image.fromarray(images[1])  # PIL images are accepted too
    preds = pipe.predict(images)
    assert [p.completion for p in preds] == [SCRIPTED_ANSWER] * 3
    for image, pred in zip(images, preds):
        h, w = np.asarray(image).shape[:2]
        assert pred.answer.ok and pred.answer.frame_size == (TEST_FRAME, TEST_FRAME)
        assert pred.frame_mask.shape == (TEST_FRAME, TEST_FRAME)
        assert pred.mask.shape == (h, w) and pred.mask.dtype == bool
        assert pred.image_size == (h, w)
        np.testing.assert_array_equal(pred.mask, resize_mask(pred.frame_mask, (h, w)))
        assert pred.frame_mask.any()
        # The frame mask is the classical segmenter's mask of the frame image, box prompt.
        segmenter.set_image(resize_to_frame(np.asarray(image), TEST_FRAME))
        answer = parse_answer(SCRIPTED_ANSWER, TEST_FRAME)
        expected = segmenter.predict(answer.boxes[0], answer.points[:1], answer.labels[:1])
        np.testing.assert_array_equal(pred.frame_mask, expected)


def test_each_distinct_image_is_encoded_once(scripted):
    model, processor = scripted
    segmenter = ClassicalSegmenter()
    pipe = SegR1Pipeline(model, processor, segmenter, frame_size=TEST_FRAME, task="referring",
                         max_new_tokens=64, batch_size=4)  # fmt: skip
    a, b = _images(2)
    preds = pipe.predict([a, b, a, a], ["one", "two", "three", "four"])
    assert segmenter.stats.encoder_calls == 2
    np.testing.assert_array_equal(preds[0].mask, preds[2].mask)
    segmenter.stats.reset()
    pipe.predict([a, a.copy()], ["x", "y"], image_keys=["k", "k"])  # explicit keys
    assert segmenter.stats.encoder_calls == 1


def test_unusable_answers_give_empty_masks(tiny_policy):
    model, processor = tiny_policy  # random weights: the answer is not in the grammar
    pipe = SegR1Pipeline(model, processor, ClassicalSegmenter(), frame_size=TEST_FRAME,
                         task="reasoning", max_new_tokens=8)  # fmt: skip
    (pred,) = pipe.predict(_images(1), ["what is it"], ["sentence"])
    assert not pred.answer.ok and not pred.mask.any()
    assert pred.mask.shape == (40, 64)


def test_inputs_are_checked(tiny_policy):
    model, processor = tiny_policy
    pipe = SegR1Pipeline(model, processor, ClassicalSegmenter(), task="referring")
    with pytest.raises(ValueError, match="non-empty query"):
        pipe.generate(_images(1))
    with pytest.raises(ValueError, match="2 images but 1 queries"):
        pipe.generate(_images(2), ["a"])
    with pytest.raises(ValueError, match="unknown task 'segment'"):
        SegR1Pipeline(model, processor, ClassicalSegmenter(), task="segment")
    with pytest.raises(ValueError, match="uint8"):
        pipe.predict([np.zeros((4, 4), np.float32)], ["a"])


def test_predict_from_completions_matches_predict(scripted):
    model, processor = scripted
    pipe = SegR1Pipeline(model, processor, ClassicalSegmenter(), frame_size=TEST_FRAME,
                         task="foreground", max_new_tokens=64)  # fmt: skip
    images = _images(2)
    preds = pipe.predict(images)
    again = pipe.predict_from_completions(images, [p.completion for p in preds])
    for a, b in zip(preds, again):
        assert a.completion == b.completion
        np.testing.assert_array_equal(a.mask, b.mask)
    (empty,) = pipe.predict_from_completions(images[:1], ["no answer"])
    assert not empty.answer.ok and not empty.mask.any()
    with pytest.raises(ValueError, match="2 images but 1 completions"):
        pipe.predict_from_completions(images, ["x"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_defaults_to_bf16_and_masks_come_back_at_image_size(tiny_ckpts):
    model, processor = load_policy(tiny_ckpts.policy, device="cuda")
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    assert next(model.parameters()).dtype == expected
    pipe = SegR1Pipeline(model, processor, ClassicalSegmenter(), frame_size=TEST_FRAME,
                         task="foreground", max_new_tokens=16, batch_size=3)  # fmt: skip
    preds = pipe.predict(_images(3))
    assert [p.mask.shape for p in preds] == [(40, 64), (47, 59), (54, 54)]


def test_a_pipeline_without_policy_only_scores_given_answers():
    """``SegR1Pipeline(None, None, segmenter)`` (the constant baselines' scorer) segments given
    answers like the full pipeline and refuses to generate."""
    pipe = SegR1Pipeline(None, None, ClassicalSegmenter(), frame_size=TEST_FRAME, task="rl")
    images = _images(2)
    (pred, other) = pipe.predict_from_completions(images, [SCRIPTED_ANSWER, "no answer"])
    assert pred.usable and pred.mask.shape == images[0].shape[:2] and pred.mask.any()
    assert not other.usable and not other.mask.any()
    with pytest.raises(RuntimeError, match="no policy"):
        pipe.generate(images)


def test_sampling_draws_as_grpo_rollouts_do(tiny_ckpts, tmp_path):
    """``temperature``: answers sampled with TRL's GRPO rollout settings (its GRPOConfig's own
    top_p and top_k), repeatable under one torch seed and different under another; the default
    stays greedy; a temperature that is not positive is refused."""
    from trl import GRPOConfig

    model, processor = _answering_differently(tiny_ckpts)
    calls = []
    generate = model.generate

    def spy(**kwargs):
        calls.append({k: kwargs[k] for k in ("do_sample", "temperature", "top_p", "top_k")})
        return generate(**kwargs)

    model.generate = spy
    images = _images(2)
    rollout = GRPOConfig(output_dir=str(tmp_path), temperature=0.9, use_cpu=True, bf16=False)

    def sampled(seed: int) -> list[str]:
        pipe = SegR1Pipeline(model, processor, ClassicalSegmenter(), frame_size=TEST_FRAME,
                             max_new_tokens=16, temperature=rollout.temperature)  # fmt: skip
        torch.manual_seed(seed)
        return pipe.generate(images * 3)

    first, again, other = sampled(0), sampled(0), sampled(1)
    expected = {"do_sample": True, "temperature": rollout.temperature,
                "top_p": rollout.top_p, "top_k": rollout.top_k}  # fmt: skip
    assert calls == [expected] * 3
    assert first == again and first != other
    assert len(set(first)) > 2  # the same two images, six different draws

    calls.clear()
    greedy = SegR1Pipeline(model, processor, ClassicalSegmenter(), frame_size=TEST_FRAME,
                           max_new_tokens=16).generate(images * 2)  # fmt: skip
    assert calls[0]["do_sample"] is False and greedy[:2] == greedy[2:]
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="temperature"):
            SegR1Pipeline(model, processor, ClassicalSegmenter(), temperature=bad)
