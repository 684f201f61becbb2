"""Resuming a Qwen2.5-VL run from a checkpoint under transformers 5, with its weights.

Checkpoints are saved in the checkpoint's original key layout (``visual.*``, ``model.layers.*``)
but ``Trainer._load_from_checkpoint`` loads them into the model's layout (``model.visual.*``,
``model.language_model.*``) without renaming, so the weights silently stay as they were
(huggingface/transformers#43701). :class:`ResumeKeyFix` (a mixin of both trainers of
:mod:`seg_r1.trainer`) renames them with the model's own conversion mapping and refuses a
mismatch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from transformers.conversion_mapping import get_model_conversion_mapping
from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

logger = logging.getLogger(__name__)


class ResumeKeyFix:
    """Mixin for ``transformers.Trainer`` subclasses: resume loads the weights it saved.

    ``_load_from_checkpoint`` follows ``transformers==5.24`` ``Trainer._load_from_checkpoint``
    and changes one case: a full (not PEFT, not DeepSpeed/FSDP -- those load through their own
    engines) safetensors checkpoint, single-file or sharded, has its keys renamed with the
    model's own conversion mapping (the renamings ``from_pretrained`` applies) before
    ``load_state_dict``; any key still missing (other than tied weights) or unexpected raises
    instead of being logged and ignored (huggingface/transformers#43701).
    """

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        model = self.model if model is None else model
        folder = Path(resume_from_checkpoint)
        if (folder / SAFE_WEIGHTS_NAME).is_file():
            files = [folder / SAFE_WEIGHTS_NAME]
        elif (folder / SAFE_WEIGHTS_INDEX_NAME).is_file():
            index = json.loads((folder / SAFE_WEIGHTS_INDEX_NAME).read_text())
            files = [folder / name for name in sorted(set(index["weight_map"].values()))]
        else:
            files = []
        special = self.is_deepspeed_enabled or self.is_fsdp_enabled or hasattr(model, "peft_config")
        if special or not files:
            super()._load_from_checkpoint(resume_from_checkpoint, model)  # type: ignore[misc]
            return
        load_converted_state_dict(model, files)
        logger.info("loaded the model weights of %s", folder)


def load_converted_state_dict(model: torch.nn.Module, files: Sequence[Path]) -> None:
    """Load safetensors ``files`` saved by ``save_pretrained`` into ``model``, renaming keys
    from the checkpoint layout to the model's (what ``from_pretrained`` does).

    Raises:
        RuntimeError: keys still missing (tied weights excepted) or unexpected after renaming.
    """
    transforms = getattr(model, "_weight_conversions", None) or get_model_conversion_mapping(model)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    expected = model.state_dict()
    loaded: set[str] = set()
    unexpected: list[str] = []
    for file in files:
        state = safetensors.torch.load_file(str(file), device="cpu")
        renamed = {}
        for key, tensor in state.items():
            new_key = key if key in expected else rename_source_key(key, renamings, converters)[0]
            if new_key in expected:
                renamed[new_key] = tensor
            else:
                unexpected.append(key)
        model.load_state_dict(renamed, strict=False)
        loaded.update(renamed)
    pointers = {expected[k].data_ptr() for k in loaded}
    missing = [k for k in expected if k not in loaded and expected[k].data_ptr() not in pointers]
    if missing or unexpected:
        raise RuntimeError(
            f"checkpoint {files[0].parent} does not match the model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]} (after the model's key renaming)"
        )
