"""Shared-prompt scoring: tokens that several rows of a batch share are run ONCE.

A GRPO batch holds ``num_generations`` completions of every prompt, and for a vision-language
policy the prompt (system text, image tokens, question) is most of each sequence: in the CPU
quickstart ~330 of ~385 tokens. TRL scores every row in full, so the prompt -- image encoder
included -- is run G times. :func:`shared_prefix_logps` runs each distinct prompt once with a
KV cache, gathers the cache rows back to the batch and runs only the completions on top of
it. Autograd flows through the gathered cache into the single prompt pass, so the loss and
its gradient are those of the full forward (tested against TRL's own path to float precision:
``tests/test_prefix_sharing.py``); on the quickstart's batch of 4 prompts x 8 completions the
loss forward + backward took 0.25 s instead of 2.0-2.2 s (2 CPU cores).

It needs what the full forward would compute the positions from: Qwen2.5-VL's M-RoPE
positions come from ``get_rope_index`` over the WHOLE sequences (image grid, padding) and are
then split, so both passes see exactly the positions of the one full pass. The prompt's last
token is run with the completions (its hidden state predicts the first completion token), so
the fused log-prob head of TRL shifts the labels as usual.

SFT has one completion per prompt, but every row starts with the same system prompt and
question header before its image (~180 of ~385 tokens in the quickstart):
:func:`common_prefix_forward` runs those leading tokens once for the whole batch.

Used by :class:`seg_r1.trainer.SegR1GRPOTrainer` and :class:`seg_r1.trainer.SegR1SFTTrainer`
when ``share_prompt_prefix`` is on and :func:`prefix_sharing_unsupported` finds nothing against
it (else TRL's path, with one log line).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

#: Policy families whose position ids :func:`shared_prefix_logps` knows how to split.
SUPPORTED_MODEL_TYPES = ("qwen2_5_vl",)


def prefix_sharing_unsupported(
    backbone: Any,
    *,
    processes: int,
    gradient_checkpointing: bool,
    batch_size: int | None,
    rows: int,
    pixel_values: Any,
    image_grid_thw: Any,
    mm_token_type_ids: Any,
    other_inputs: Sequence[Any] = (),
) -> str | None:
    """Why :func:`shared_prefix_logps` cannot score this batch (``None``: it can).

    ``backbone`` is the unwrapped policy; ``processes`` the training processes (the two-pass
    forward is tested in one process only: DDP / DeepSpeed expect one forward per backward);
    ``other_inputs`` the forward inputs the shared path does not handle (any not ``None``)."""
    model_type = getattr(getattr(backbone, "config", None), "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        return f"model type {model_type!r} (supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
    if processes != 1:
        return f"{processes} training processes (supported: one)"
    if gradient_checkpointing:
        return "gradient checkpointing (it disables the KV cache the prompt pass fills)"
    if batch_size is not None and batch_size < rows:
        return f"chunked scoring (batch_size {batch_size} < {rows} rows)"
    if pixel_values is None or image_grid_thw is None or mm_token_type_ids is None:
        return "a batch without images (pixel_values, image_grid_thw, mm_token_type_ids)"
    if any(value is not None for value in other_inputs):
        return "model inputs other than images and mm_token_type_ids"
    return None


def distinct_prompts(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_length: int,
    pixel_values: torch.Tensor,
    image_grid_thw: torch.Tensor,
) -> tuple[list[int], list[int]]:
    """``(first, inverse)``: the first row of each distinct prompt (token ids, padding and
    image pixels all equal, one image per row) and, per row, the index of its prompt in
    ``first``."""
    counts = image_grid_thw.prod(dim=-1).tolist()
    starts = [0]
    for count in counts:
        starts.append(starts[-1] + int(count))
    first: list[int] = []
    inverse: list[int] = []
    candidates: dict[tuple, list[int]] = {}
    for row in range(input_ids.size(0)):
        key = (
            tuple(input_ids[row, :prompt_length].tolist()),
            tuple(attention_mask[row, :prompt_length].tolist()),
            tuple(image_grid_thw[row].tolist()),
        )
        pixels = pixel_values[starts[row] : starts[row + 1]]
        match = None
        for index in candidates.get(key, []):
            other = first[index]
            if torch.equal(pixels, pixel_values[starts[other] : starts[other + 1]]):
                match = index
                break
        if match is None:
            match = len(first)
            first.append(row)
            candidates.setdefault(key, []).append(match)
        inverse.append(match)
    return first, inverse


def shared_prefix_logps(
    model: Any,
    backbone: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    pixel_values: torch.Tensor,
    image_grid_thw: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(log_probs, entropy)`` of the last ``logits_to_keep`` tokens of each row, as TRL's
    fused forward (``fused_lm_head=True``) gives them for the full rows, with each distinct
    prompt run once (module doc). One image per row (``image_grid_thw`` has a row per
    sequence), Qwen2.5-VL positions.

    ``model`` is the policy as the trainer calls it (TRL's fused log-prob head attached);
    ``backbone`` the unwrapped model whose ``model.get_rope_index`` gives the positions.
    """
    from transformers import DynamicCache

    rows, length = input_ids.shape
    if image_grid_thw.size(0) != rows:
        raise ValueError(f"one image per row expected, got {image_grid_thw.size(0)} for {rows}")
    prompt_length = length - logits_to_keep
    first, inverse = distinct_prompts(
        input_ids, attention_mask, prompt_length, pixel_values, image_grid_thw
    )
    positions, _ = backbone.model.get_rope_index(
        input_ids,
        mm_token_type_ids=mm_token_type_ids,
        image_grid_thw=image_grid_thw,
        attention_mask=attention_mask,
    )
    device = input_ids.device
    first_rows = torch.tensor(first, device=device)
    counts = image_grid_thw.prod(dim=-1).tolist()
    starts = [0]
    for count in counts:
        starts.append(starts[-1] + int(count))
    pixel_rows = torch.cat([torch.arange(starts[r], starts[r + 1], device=device) for r in first])
    head = prompt_length - 1  # the prompt's last token runs with the completions
    cache = DynamicCache(config=backbone.config)
    model(
        input_ids=input_ids[first_rows, :head],
        attention_mask=attention_mask[first_rows, :head],
        position_ids=positions[:, first_rows, :head],
        pixel_values=pixel_values[pixel_rows],
        image_grid_thw=image_grid_thw[first_rows],
        mm_token_type_ids=mm_token_type_ids[first_rows, :head],
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    cache.reorder_cache(torch.tensor(inverse, device=device))
    tail = input_ids[:, head:]
    labels = tail.masked_fill(attention_mask[:, head:] == 0, -100)
    labels[:, 0] = -100  # the prompt's last token is input, not a label
    outputs = model(
        input_ids=tail,
        attention_mask=attention_mask,
        position_ids=positions[:, :, head:],
        cache=cache,
        labels=labels,
        fused_lm_head=True,
    )
    return outputs.log_probs, outputs.entropy


#: Fewest shared leading tokens for which :func:`common_prefix_forward` runs a prompt pass.
MIN_COMMON_PREFIX = 8


def common_head(input_ids: torch.Tensor, attention_mask: torch.Tensor, image_token_id: int) -> int:
    """How many leading tokens every row shares (ids and mask), stopping before the first image
    token (the images are each row's own)."""
    same = (input_ids == input_ids[:1]).all(dim=0) & (attention_mask == attention_mask[:1]).all(
        dim=0
    )
    same &= (attention_mask[:1] == 1).squeeze(0) & (input_ids[0] != image_token_id)
    differing = (~same).nonzero()
    return int(differing[0]) if differing.numel() else int(input_ids.size(1))


def common_prefix_forward(
    model: Any,
    backbone: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    pixel_values: torch.Tensor,
    image_grid_thw: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
) -> Any | None:
    """TRL's fused outputs (``log_probs``, ``entropy``, ``label_mask``, ...) for SFT rows,
    with the leading tokens all rows share (:func:`common_head`) run once; ``None`` when they
    share fewer than :data:`MIN_COMMON_PREFIX` tokens or a label falls among them (then the
    caller runs the full rows). The outputs cover the tokens after the shared ones, which hold
    every label."""
    from transformers import DynamicCache

    head = common_head(input_ids, attention_mask, backbone.config.image_token_id)
    if head < MIN_COMMON_PREFIX or bool((labels[:, : head + 1] != -100).any()):
        return None
    positions, _ = backbone.model.get_rope_index(
        input_ids,
        mm_token_type_ids=mm_token_type_ids,
        image_grid_thw=image_grid_thw,
        attention_mask=attention_mask,
    )
    cache = DynamicCache(config=backbone.config)
    model(
        input_ids=input_ids[:1, :head],
        attention_mask=attention_mask[:1, :head],
        position_ids=positions[:, :1, :head],
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    cache.reorder_cache(torch.zeros(input_ids.size(0), dtype=torch.long, device=input_ids.device))
    return model(
        input_ids=input_ids[:, head:],
        attention_mask=attention_mask,
        position_ids=positions[:, :, head:],
        pixel_values=pixel_values,
        image_grid_thw=image_grid_thw,
        mm_token_type_ids=mm_token_type_ids[:, head:],
        cache=cache,
        labels=labels[:, head:],
        fused_lm_head=True,
    )
