"""Private shim over `codebench.models` for training.

Tokenizers and plain models come from `codebench.models` (which owns tokenizer quirks and
variant loading). QLoRA's 4-bit base needs options it does not take (a quantization config and
a device map), so that one is loaded with transformers directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer of a resolved model path or hub id (pad token guaranteed)."""
    from codebench.models import load_tokenizer as _load

    return _load(str(path))


def load_causal_lm(
    path: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    quantization_config: Any = None,
    device_map: Any = None,
    trust_remote_code: bool = False,
) -> Any:
    """The base model in the training dtype on CPU (4-bit on the GPU for QLoRA)."""
    if quantization_config is None:
        from codebench.models import load_model

        return load_model(str(path), "cpu", dtype, trust_remote_code)
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        str(path),
        dtype=dtype,
        quantization_config=quantization_config,
        device_map=device_map,
        trust_remote_code=trust_remote_code,
    )


def align(model: Any, tokenizer: Any) -> None:
    """Grow the embedding if the tokenizer gained a pad token; set generation ids."""
    from codebench.models import align_model_and_tokenizer

    align_model_and_tokenizer(model, tokenizer)


def pad_id(tokenizer: Any) -> int:
    """Token used for padding rows (labels there are masked, so eos is fine when pad is missing)."""
    for t in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if t is not None:
            return int(t)
    return 0
