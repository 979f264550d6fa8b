"""Attention that keeps packed samples apart.

trl's SFTTrainer packs examples (`packing_strategy="bfd"`) and collates them padding-free: one
row per batch, `position_ids` restarting at 0 for every example and no attention mask. Samples
are kept apart in attention one of two ways (`PackedAttention`):

- ``varlen``: attention computed per sample (`sdpa_varlen_forward`, registered with
  transformers' AttentionInterface as ``codebench_sdpa_varlen``): each sample's slice goes
  through causal sdpa alone, so the cost is the sum of squared sample lengths, not the
  squared row length, and the result is the sample's own attention exactly. For models on
  the attention interface with sdpa/eager attention (CPU, or GPUs without flash-attention).
- ``position_ids``: pass no attention mask. transformers 5.x derives a block-diagonal causal
  mask from the restarting position ids (`masking_utils.find_packed_sequence_indices`) for
  sdpa/eager/flex attention, and flash-attention uses them as varlen boundaries. Needs a
  model whose code builds its mask with `create_causal_mask`, and `use_cache=False`.
`verify_packing` checks either numerically: the logits of a packed row must equal the
logits of each sample run alone.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Literal

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

PackedAttention = Literal["auto", "varlen", "position_ids"]
VARLEN = "codebench_sdpa_varlen"


def _base_model(model: Any) -> Any:
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def _segments(pos: list[int]) -> list[tuple[int, int]]:
    starts = [i for i in range(len(pos)) if i == 0 or pos[i] != pos[i - 1] + 1] + [len(pos)]
    return list(zip(starts[:-1], starts[1:], strict=True))


def sdpa_varlen_forward(
    module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs
):
    """Attention per packed sample (from restarting `position_ids`); plain sdpa otherwise.

    query/key/value: (batch, heads, L, head_dim) as transformers passes them. Returns
    (batch, L, heads, head_dim) like `sdpa_attention_forward`.
    """
    pos = kwargs.get("position_ids")
    if pos is None or query.shape[2] != key.shape[2] or query.shape[2] == 1:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    rows = pos.expand(query.shape[0], -1).tolist()
    segs = [_segments(r) for r in rows]
    if all(len(s) == 1 for s in segs):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    out = [
        torch.cat(
            [
                sdpa(
                    query[b : b + 1, :, s:e],
                    key[b : b + 1, :, s:e],
                    value[b : b + 1, :, s:e],
                    dropout_p=dropout,
                    scale=scaling,
                    is_causal=e - s > 1,
                )
                for s, e in segs[b]
            ],
            dim=2,
        )
        for b in range(query.shape[0])
    ]
    return torch.cat(out, dim=0).transpose(1, 2).contiguous(), None


def _varlen_mask(*args, **kwargs):
    """No dense mask without a padding mask: causality and packing are handled per sample."""
    return None if kwargs.get("attention_mask") is None else sdpa_mask(*args, **kwargs)


def _register_varlen() -> None:
    AttentionInterface.register(VARLEN, sdpa_varlen_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(VARLEN, _varlen_mask)


def _attn_impl(model: Any) -> str:
    return str(getattr(_base_model(model).config, "_attn_implementation", "eager") or "eager")


def uses_position_id_packing(model: Any) -> bool:
    """Whether the model's own code derives packed-sequence masks from position ids."""
    base = _base_model(model)
    mod = sys.modules.get(type(base).__module__)
    if mod is None or not hasattr(mod, "create_causal_mask"):
        return False
    impl = _attn_impl(model)
    return impl in ("sdpa", "eager", "flex_attention", VARLEN) or "flash" in impl


def supports_varlen(model: Any) -> bool:
    """Models on transformers' attention interface, running sdpa or eager attention, whose
    masks are plain causal (no sliding window or chunked attention, which only masks encode)."""
    base = _base_model(model)
    cfg = base.config
    windowed = (
        getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True)
    ) or getattr(cfg, "attention_chunk_size", None)
    return (
        bool(getattr(base, "_supports_attention_backend", False))
        and not windowed
        and _attn_impl(model) in ("sdpa", "eager", VARLEN)
    )


def resolve_packed_attention(model: Any, mode: PackedAttention = "auto") -> str:
    """'auto' -> 'varlen' where supported, else 'position_ids' (flash, or mask-from-positions).

    A model that supports neither (remote code that builds its own masks) cannot train on
    padding-free packed rows: ValueError naming `packing: false`.
    """
    if mode not in ("auto", "varlen", "position_ids"):
        raise ValueError(f"packed attention must be auto, varlen or position_ids, got {mode!r}")
    name = f"{type(_base_model(model)).__name__} with {_attn_impl(model)!r}"
    if mode == "auto":
        if "flash" in _attn_impl(model) and uses_position_id_packing(model):
            return "position_ids"
        if supports_varlen(model):
            return "varlen"
        if uses_position_id_packing(model):
            return "position_ids"
        raise ValueError(
            f"packing needs per-sample attention, and {name} keeps packed samples apart neither by "
            "varlen attention nor by restarting position ids; set finetune.packing: false"
        )
    if mode == "varlen" and not supports_varlen(model):
        raise ValueError(
            f"packed_attention 'varlen' needs a model on the attention interface running sdpa/eager ({name})"
        )
    return mode


@contextmanager
def packed_attention(model: Any, mode: str):
    """Switch the model to per-sample attention while inside ('varlen'); restore it after."""
    base = _base_model(model)
    before = _attn_impl(model)
    if mode == "varlen" and before != VARLEN:
        _register_varlen()
        base.set_attn_implementation(VARLEN)
    try:
        yield model
    finally:
        if _attn_impl(model) != before:
            base.set_attn_implementation(before)


@torch.no_grad()
def verify_packing(model: Any, samples: list[list[int]], mode: str = "position_ids") -> float:
    """Max |logit difference| between a packed row and each sample run alone (should be ~0)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = torch.tensor([sum(samples, [])], device=device)
    pos = torch.tensor([[p for s in samples for p in range(len(s))]], device=device)
    kw: dict[str, Any] = {"position_ids": pos, "use_cache": False}
    try:
        with packed_attention(model, mode):
            packed = model(input_ids=ids, **kw).logits[0].float()
        diff, start = 0.0, 0
        for s in samples:
            alone = (
                model(input_ids=torch.tensor([s], device=device), use_cache=False).logits[0].float()
            )
            diff = max(diff, (packed[start : start + len(s)] - alone).abs().max().item())
            start += len(s)
        return diff
    finally:
        model.train(was_training)
