"""The parts of a Qwen2.5-VL checkpoint the project builds itself, shared by the tiny test models
(:mod:`seg_r1.tiny`) and the full-size presets (:mod:`seg_r1.full_size`): a byte-level BPE
tokenizer trained here (Qwen's special tokens, one token per digit, the answer-grammar tags as
single ordinary tokens), a Qwen2.5-VL-format chat template, the model config from architecture
numbers, and the processor with given pixel bounds.
"""

from __future__ import annotations

import json
import random
from typing import Any

from seg_r1 import prompts

#: Size of the trained BPE vocabulary (plus the special and grammar tokens).
TOKENIZER_VOCAB = 640

#: Qwen's special tokens, in the order of the real vocabulary's added tokens.
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

#: Answer-grammar tags: ordinary (non-special) added tokens, so that decoding with
#: ``skip_special_tokens=True`` (as TRL does) keeps them, and each is a single token.
GRAMMAR_TOKENS: tuple[str, ...] = (
    "<think>",
    "</think>",
    "<bbox>",
    "</bbox>",
    "<points>",
    "</points>",
    "<labels>",
    "</labels>",
)

#: A Qwen2.5-VL-format chat template (ChatML with vision placeholders), written for this
#: project. Produces ``<|im_start|>role\\n...<|im_end|>\\n`` turns, a default system turn
#: when none is given, and ``<|vision_start|><|image_pad|><|vision_end|>`` per image.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part -%}"
    "{{ part['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def _tokenizer_corpus() -> list[str]:
    """Text the BPE merges are learned from: prompts, answers in the grammar, plain English."""

    # A FROZEN list: the BPE merges (hence the tiny checkpoints and the quickstart's result,
    # which is sensitive to them) must not change when a prompt is added to seg_r1.prompts.
    # These are the strings the corpus was first built from, in that order.
    texts = [
        prompts._FORMAT_INTRO,
        prompts._MODERATE,
        prompts.SYSTEM_PROMPT_RL,
        prompts.SYSTEM_PROMPT_EVAL,
        prompts.USER_PROMPT_FOREGROUND,
        prompts.USER_PROMPT_PRERL,
    ]
    rng = random.Random(0)
    answers = []
    for _ in range(400):
        x1, y1 = rng.randrange(0, 700), rng.randrange(0, 700)
        x2, y2 = x1 + rng.randrange(1, 300), y1 + rng.randrange(1, 300)
        pts = [[rng.randrange(0, 768), rng.randrange(0, 768)] for _ in range(rng.randrange(1, 5))]
        labels = [rng.randrange(0, 2) for _ in pts]
        answers.append(
            f"<think> The object is a {rng.choice(['red', 'green', 'small', 'large'])} "
            f"{rng.choice(['circle', 'square', 'triangle', 'star', 'animal', 'fish'])} near the "
            f"{rng.choice(['left', 'right', 'top', 'bottom', 'center'])}. </think> "
            f"<bbox>[{x1},{y1},{x2},{y2}]</bbox>, "
            f"<points>{json.dumps(pts).replace(' ', '')}</points>, "
            f"<labels>{json.dumps(labels).replace(' ', '')}</labels>"
        )
    english = (
        "Identify and segment the object in the image. The camouflaged animal hides on the "
        "textured background; the salient object stands out. Segment the person on the left, "
        "the dog next to the car, the smallest cup on the table, and what can be used to cut."
    )
    return texts + answers + [english] * 20


def build_tokenizer(vocab_size: int = TOKENIZER_VOCAB):
    """Train a byte-level BPE tokenizer with Qwen's pre-tokenizer and special tokens."""
    from tokenizers import Tokenizer, models, trainers
    from transformers import Qwen2Tokenizer

    # Reuse Qwen2Tokenizer's own normaliser / pre-tokenizer (its regex keeps each digit a
    # separate pre-token, so coordinates tokenize digit by digit) to learn the merges.
    template = Qwen2Tokenizer()
    backend = Tokenizer(models.BPE())
    backend.normalizer = template._tokenizer.normalizer
    backend.pre_tokenizer = template._tokenizer.pre_tokenizer
    from tokenizers import pre_tokenizers

    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    state = json.loads(backend.to_str())
    vocab: dict[str, int] = state["model"]["vocab"]
    merges = [
        tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["model"]["merges"]
    ]
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges)
    from tokenizers import AddedToken

    tok.add_special_tokens(
        {"additional_special_tokens": [t for t in QWEN_SPECIAL_TOKENS if t != "<|endoftext|>"]}
    )
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in GRAMMAR_TOKENS])
    tok.chat_template = CHAT_TEMPLATE
    return tok


def qwen25vl_config(
    tok: Any, text: dict[str, Any], vision: dict[str, Any], tie_word_embeddings: bool
) -> Any:
    """A ``Qwen2_5_VLConfig`` from text/vision architecture numbers and the project's tokenizer
    (its ids of Qwen's special tokens; ``vocab_size`` may exceed the tokenizer, as the released
    checkpoints' padded vocabularies do). Used by the tiny and the full-size presets."""
    from transformers import Qwen2_5_VLConfig

    return _vl_config(Qwen2_5_VLConfig, tok, text, vision, tie_word_embeddings)


def _vl_config(
    config_class: Any,
    tok: Any,
    text: dict[str, Any],
    vision: dict[str, Any],
    tie_word_embeddings: bool,
) -> Any:
    """A Qwen vision-language config of ``config_class`` with the tokenizer's special-token ids
    (shared by every family: the same config keys)."""
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    return config_class(
        text_config={
            **text,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "tie_word_embeddings": tie_word_embeddings,
        },
        vision_config={"out_hidden_size": text["hidden_size"], **vision},
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=tie_word_embeddings,
    )


def set_generation_tokens(model: Any, tok: Any) -> None:
    """Stop generating at ``<|im_end|>`` (or ``<|endoftext|>``), pad with ``<|endoftext|>``."""
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]


def qwen25vl_processor(tok: Any, min_pixels: int, max_pixels: int) -> Any:
    """A Qwen2.5-VL processor (image + video processors with these pixel bounds, the chat
    template) around the project's tokenizer."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(size=size),
        chat_template=CHAT_TEMPLATE,
    )


# --------------------------------------------------------------------------- Qwen3-VL / Qwen3.5

#: The Qwen3-VL-format chat template (written for this project): the same ChatML turns and image
#: placeholder as :data:`CHAT_TEMPLATE`, but NO default system turn -- Qwen3-VL's released
#: template adds none (seg_r1.families). Used for the project's Qwen3-VL and Qwen3.5 checkpoints.
CHAT_TEMPLATE_QWEN3 = CHAT_TEMPLATE.replace(
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}",
    "",
)
assert CHAT_TEMPLATE_QWEN3 != CHAT_TEMPLATE

#: ``config.json`` classes of the Qwen3 families (transformers names).
_QWEN3_CONFIGS = {"qwen3-vl": "Qwen3VLConfig", "qwen3.5": "Qwen3_5Config"}


def qwen3_config(
    family: str, tok: Any, text: dict[str, Any], vision: dict[str, Any], tie_word_embeddings: bool
) -> Any:
    """A ``Qwen3VLConfig`` (``family="qwen3-vl"``) or ``Qwen3_5Config`` (``"qwen3.5"``) from
    architecture numbers and the project's tokenizer's ids of Qwen's special tokens (the released
    Qwen3 vocabularies have the same special tokens, at other ids)."""
    import transformers

    config_class = getattr(transformers, _QWEN3_CONFIGS[family])
    return _vl_config(config_class, tok, text, vision, tie_word_embeddings)


def qwen3_processor(tok: Any, min_pixels: int, max_pixels: int, patch_size: int = 16) -> Any:
    """A ``Qwen3VLProcessor`` (the processor of both Qwen3-VL and Qwen3.5): 16-pixel patches
    merged 2x2, mean/std 0.5 as the released ``preprocessor_config.json``, these pixel bounds,
    the Qwen3 chat template, around the project's tokenizer."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    half = [0.5, 0.5, 0.5]
    tok.chat_template = CHAT_TEMPLATE_QWEN3
    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(
            size=size, patch_size=patch_size, merge_size=2, image_mean=half, image_std=half
        ),
        tokenizer=tok,
        video_processor=Qwen3VLVideoProcessor(size=size, patch_size=patch_size),
        chat_template=CHAT_TEMPLATE_QWEN3,
    )
