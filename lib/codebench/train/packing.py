"""Packing several examples into one row without letting them see each other.

A packed row concatenates examples; `position_ids` restart at 0 for every example. Samples
are kept apart in attention one of three ways (`PackedAttention`):

- ``varlen``: attention computed per sample (`sdpa_varlen_forward`, registered with
  transformers' AttentionInterface as ``codebench_sdpa_varlen``): each sample's slice goes
  through causal sdpa alone, so the cost is the sum of squared sample lengths, not the
  squared row length, and the result is the sample's own attention exactly. For models on
  the attention interface with sdpa/eager attention (CPU, or GPUs without flash-attention).
- ``position_ids``: pass no attention mask. transformers 5.x derives a block-diagonal causal
  mask from the restarting position ids (`masking_utils.find_packed_sequence_indices`) for
  sdpa/eager/flex attention, and flash-attention uses them as varlen boundaries. Needs a
  model whose code builds its mask with `create_causal_mask`, and `use_cache=False`.
- ``4d``: an explicit (batch, 1, L, L) block-diagonal causal mask, for models that do neither.

`verify_packing` checks any of them numerically: the logits of a packed row must equal the
logits of each sample run alone.
"""

from __future__ import annotations

import bisect
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch

from codebench.train.data import IGNORE_INDEX, Tokenized

PackedAttention = Literal["auto", "varlen", "position_ids", "4d"]
VARLEN = "codebench_sdpa_varlen"


@dataclass
class Row:
    """One training row: a single example, or several packed ones."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    n_samples: int = 1

    def __len__(self) -> int:
        return len(self.input_ids)


def as_row(t: Tokenized) -> Row:
    return Row(list(t.input_ids), list(t.labels), list(range(len(t.input_ids))))


def pack(examples: list[Tokenized], max_length: int) -> list[Row]:
    """Best-fit-decreasing bin packing of examples into rows of at most `max_length` tokens.

    Deterministic for a given input order. Every example must already fit (`tokenize_examples`
    truncates); position ids restart at 0 for each example.
    """
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i].input_ids), i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (space left, bin index)
    for i in order:
        n = len(examples[i].input_ids)
        if n > max_length:
            raise ValueError(
                f"{examples[i].source}: {n} tokens exceed max_length={max_length}; truncate first"
            )
        j = bisect.bisect_left(free, (n, -1))
        if j < len(free):
            space, b = free.pop(j)
            bins[b].append(i)
            bisect.insort(free, (space - n, b))
        else:
            bins.append([i])
            bisect.insort(free, (max_length - n, len(bins) - 1))
    rows = []
    for members in bins:
        ids: list[int] = []
        labels: list[int] = []
        pos: list[int] = []
        for i in members:
            t = examples[i]
            ids += t.input_ids
            labels += t.labels
            pos += range(len(t.input_ids))
        rows.append(Row(ids, labels, pos, len(members)))
    return rows


def packing_efficiency(rows: list[Row], max_length: int) -> float:
    """Share of row slots (rows x max_length) holding real tokens."""
    return sum(len(r) for r in rows) / max(1, len(rows) * max_length)


def segment_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """Per-token sample index within each row: a new sample starts wherever positions restart."""
    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
    return starts.long().cumsum(-1)


def block_diagonal_mask(
    position_ids: torch.Tensor, *, additive_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """A (batch, 1, L, L) causal mask that only lets tokens attend within their own sample.

    Boolean (True = attend, what sdpa takes) or, with `additive_dtype`, 0/-inf-like floats
    (what eager attention adds to its scores).
    """
    seg = segment_ids(position_ids)
    length = position_ids.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=position_ids.device).tril()
    allowed = (seg[:, :, None] == seg[:, None, :]) & causal
    allowed = allowed[:, None]
    if additive_dtype is None:
        return allowed
    mask = torch.zeros(allowed.shape, dtype=additive_dtype, device=position_ids.device)
    return mask.masked_fill(~allowed, torch.finfo(additive_dtype).min)


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
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

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
    from transformers.masking_utils import sdpa_mask

    return None if kwargs.get("attention_mask") is None else sdpa_mask(*args, **kwargs)


def _register_varlen() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

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
    """'auto' -> 'varlen' where supported, else 'position_ids' (flash, or mask-from-positions), else '4d'."""
    if mode == "auto":
        if "flash" in _attn_impl(model) and uses_position_id_packing(model):
            return "position_ids"
        if supports_varlen(model):
            return "varlen"
        return "position_ids" if uses_position_id_packing(model) else "4d"
    if mode not in ("varlen", "position_ids", "4d"):
        raise ValueError(f"packed attention must be auto, varlen, position_ids or 4d, got {mode!r}")
    if mode == "varlen" and not supports_varlen(model):
        raise ValueError(
            f"packed_attention 'varlen' needs a model on the attention interface running sdpa/eager ({type(_base_model(model)).__name__} with {_attn_impl(model)!r})"
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


def mask_kind(model: Any) -> torch.dtype | None:
    """None for a boolean 4D mask (sdpa), else the float dtype of an additive one (eager)."""
    base = _base_model(model)
    impl = getattr(base.config, "_attn_implementation", "eager")
    return None if impl == "sdpa" else base.dtype


@torch.no_grad()
def verify_packing(model: Any, samples: list[list[int]], mode: str = "position_ids") -> float:
    """Max |logit difference| between a packed row and each sample run alone (should be ~0)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = torch.tensor([sum(samples, [])], device=device)
    pos = torch.tensor([[p for s in samples for p in range(len(s))]], device=device)
    kw: dict[str, Any] = {"position_ids": pos, "use_cache": False}
    if mode == "4d":
        kw["attention_mask"] = block_diagonal_mask(pos, additive_dtype=mask_kind(model))
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


def real_tokens(labels: list[int] | torch.Tensor) -> int:
    """Loss-carrying tokens in a label list."""
    if isinstance(labels, torch.Tensor):
        return int((labels != IGNORE_INDEX).sum())
    return sum(1 for t in labels if t != IGNORE_INDEX)
