"""PEFT and bitsandbytes configuration: LoRA adapters, QLoRA's 4-bit NF4 base, and the checks.

QLoRA needs a CUDA GPU and the `bitsandbytes` package (`pip install -e '.[gpu]'`). Without a
GPU it stops with `QLoRAUnavailable` unless the caller allows falling back to plain LoRA.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from typing import Any

import torch

from codebench.quiet import quiet_peft

log = logging.getLogger(__name__)


class QLoRAUnavailable(RuntimeError):
    """QLoRA was asked for where it cannot run (no CUDA GPU, or no bitsandbytes)."""


def qlora_method(method: str, device: str, *, allow_cpu_fallback: bool = False) -> str:
    """The method to actually run: 'qlora' where possible, else an error or (allowed) 'lora'."""
    if method != "qlora":
        return method
    if device != "cuda" or not torch.cuda.is_available():
        msg = (
            "QLoRA needs a CUDA GPU: bitsandbytes' 4-bit NF4 kernels do not run on this CPU-only "
            "machine. Use method: lora (full-precision adapters, same API), or set "
            "allow_qlora_cpu: true to fall back to plain LoRA in fp32 automatically."
        )
        if not allow_cpu_fallback:
            raise QLoRAUnavailable(msg)
        warnings.warn("QLoRA unavailable on CPU; training plain LoRA in fp32 instead", stacklevel=2)
        return "lora"
    if importlib.util.find_spec("bitsandbytes") is None:
        raise QLoRAUnavailable(
            "QLoRA needs the bitsandbytes package, which is not installed: pip install -e '.[gpu]' "
            "(or pip install bitsandbytes), or use method: lora"
        )
    return "qlora"


def bnb_config(compute_dtype: torch.dtype = torch.bfloat16) -> Any:
    """QLoRA's quantization: 4-bit NormalFloat weights, double quantization of the scales."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def lora_config(
    r: int = 16,
    alpha: float = 32,
    dropout: float = 0.05,
    target_modules: str | list[str] = "all-linear",
) -> Any:
    """A causal-LM LoRA config; 'all-linear' adapts every linear layer except the output head."""
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        bias="none",
    )


def attach_adapters(
    model: Any, cfg: Any, *, method: str, gradient_checkpointing: bool = False
) -> Any:
    """Wrap `model` for training: LoRA adapters (prepared for k-bit training under QLoRA).

    `cfg` carries lora_r, lora_alpha, lora_dropout and target_modules. 'full' returns the
    model unchanged (every weight trains).
    """
    if method == "full":
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    if method == "qlora":
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    with quiet_peft():
        peft_model = get_peft_model(
            model, lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules)
        )
    trainable, total = peft_model.get_nb_trainable_parameters()
    log.info(
        "LoRA adapters: %d trainable of %d parameters (%.2f%%)",
        trainable,
        total,
        100 * trainable / total,
    )
    return peft_model


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
