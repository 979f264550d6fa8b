"""LoRA / QLoRA / full supervised fine-tuning (stage 02_finetune). See docs/finetune.md.

Modules: `data` (formats, templates, masks, truncation, split), `packing` (packed rows, block
masks, numeric check), `collate`, `lora` (peft / bitsandbytes configs), `schedule` (lr schedule
and its guard), `trainer` (the entry point), `merge` (adapter save, merge, hub), `inspect`
(mask inspector), `distributed` (accelerate launch), `testing` (tiny offline tokenizer and models).
Public names are imported lazily so `import codebench.train` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_examples": "data",
    "split_examples": "data",
    "tokenize_examples": "data",
    "render_prompt": "data",
    "DataFormatError": "data",
    "TemplateError": "data",
    "DroppedByTruncationWarning": "data",
    "IGNORE_INDEX": "data",
    "pack": "packing",
    "verify_packing": "packing",
    "block_diagonal_mask": "packing",
    "PackedCollator": "collate",
    "PaddedCollator": "collate",
    "lora_config": "lora",
    "bnb_config": "lora",
    "QLoRAUnavailable": "lora",
    "ScheduleMismatch": "schedule",
    "expected_lr": "schedule",
    "FinetuneJob": "trainer",
    "make_job": "trainer",
    "prepare_data": "trainer",
    "finetune": "trainer",
    "response_perplexity": "trainer",
    "merge_adapter": "merge",
    "push_to_hub": "merge",
    "mask_tokens": "inspect",
    "mask_html": "inspect",
    "mask_text": "inspect",
    "accelerate_command": "distributed",
    "launch": "distributed",
    "LaunchError": "distributed",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'codebench.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"codebench.train.{mod}"), name)
    globals()[name] = value
    return value
