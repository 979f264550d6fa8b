"""LoRA and quantization: merge into the full-precision base first, then quantize.

Recommended order (what 02_finetune's `models/finetuned` plus 03_compress do):

    W_final = Q(W + B·A)            merge in full precision, quantize once

instead of quantize-then-merge, W_final = Q(Q(W) + B·A): the base is rounded twice, and a
delta B·A smaller than half a quantization step is rounded away. `compare_merge_orders`
measures both (and the unmerged Q(W) + B·A a QLoRA-style server would run) against the
full-precision merge, with int8 per-row rounding on every Linear layer; docs/compression.md
shows a measured comparison.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import torch
from torch import nn

from codebench.compress.quantize import fake_quantize_


def merge_lora(
    base: str | os.PathLike,
    adapter: str | os.PathLike,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Load `base` in full precision, apply the LoRA `adapter` and merge it into the weights."""
    from peft import PeftModel

    from codebench import models

    model = models.load_model(str(base), device, dtype)
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()


def _linear_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        n: m.weight.detach().float().clone()
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear)
    }


def weight_error(model: nn.Module, reference: dict[str, torch.Tensor]) -> float:
    """Relative Frobenius error of the Linear weights against `reference`, over all layers."""
    num = den = 0.0
    for n, m in model.named_modules():
        if n in reference and isinstance(m, nn.Linear):
            num += float((m.weight.detach().float() - reference[n]).norm() ** 2)
            den += float(reference[n].norm() ** 2)
    return (num / den) ** 0.5 if den else float("nan")


def compare_merge_orders(
    base: str | os.PathLike,
    adapter: str | os.PathLike,
    texts: Sequence[str],
    *,
    context: int = 256,
    stride: int = 128,
    device: str = "cpu",
) -> dict:
    """Perplexity and weight error of the merge orders, int8 per-row rounding on every Linear.

    merged_fp             W + B·A in fp32 (the reference)
    merge_then_quantize   Q(W + B·A)                 recommended
    quantize_then_merge   Q(Q(W) + B·A)              merged into a quantized base, stored int8 again
    quantized_plus_adapter Q(W) + B·A, adapter kept unmerged (extra matmuls at run time)
    base_quantized        Q(W), no adapter (how much of the fine-tune is left at all)
    """
    from peft import PeftModel

    from codebench import models

    tok = models.load_tokenizer(str(base))
    fp = merge_lora(base, adapter, device)
    ref = _linear_weights(fp)
    plain = models.load_model(str(base), device, torch.float32)
    base_w = _linear_weights(plain)
    adapted = [n for n in ref if not torch.equal(ref[n], base_w[n])]

    def ppl(m):
        return models.perplexity(m, tok, list(texts), context=context, stride=stride)["ppl"]

    out: dict[str, dict] = {}

    def record(name: str, m: nn.Module) -> None:
        out[name] = {"perplexity": ppl(m), "weight_error": weight_error(m, ref)}

    record("merged_fp", fp)
    mq = copy.deepcopy(fp)
    fake_quantize_(mq)
    record("merge_then_quantize", mq)
    del mq
    fake_quantize_(plain)
    record("base_quantized", plain)
    with_adapter = PeftModel.from_pretrained(plain, str(adapter)).eval()
    out["quantized_plus_adapter"] = {"perplexity": ppl(with_adapter)}
    qm = with_adapter.merge_and_unload()
    fake_quantize_(qm)
    record("quantize_then_merge", qm)
    base_model = models.load_model(str(base), device, torch.float32)
    out["base_fp"] = {"perplexity": ppl(base_model)}
    gain = out["base_fp"]["perplexity"] - out["merged_fp"]["perplexity"]
    for r in out.values():  # share of the fine-tune's perplexity gain each order keeps
        r["gain_kept"] = (
            (out["base_fp"]["perplexity"] - r["perplexity"]) / gain if gain else float("nan")
        )
    return {"adapted_layers": len(adapted), "orders": out}
