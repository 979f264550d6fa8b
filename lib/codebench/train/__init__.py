"""LoRA / QLoRA / full supervised fine-tuning (stage 02_finetune). See docs/finetune.md.

Training runs on trl's `SFTTrainer` (templating, assistant-only loss, packing, collation).
Modules: `data` (formats, split, the training chat template, drop-and-count of cut-away
responses), `attention` (varlen attention for packed rows and its numeric check), `lora` (peft / bitsandbytes configs), `schedule` (lr schedule
and its guard), `trainer` (the entry point), `merge` (adapter save, merge, hub), `inspect`
(mask inspector), `distributed` (accelerate launch).
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
    "training_template": "data",
    "DataFormatError": "data",
    "TemplateError": "data",
    "DroppedByTruncationWarning": "data",
    "IGNORE_INDEX": "data",
    "verify_packing": "attention",
    "resolve_packed_attention": "attention",
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
