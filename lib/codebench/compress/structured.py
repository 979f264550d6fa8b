"""Structured pruning: remove MLP channels or attention heads so the model really shrinks.

The Linear layers are rebuilt smaller and the config is rewritten to match
(`intermediate_size` / `n_inner` for MLP channels; `num_attention_heads`,
`num_key_value_heads` and an explicit `head_dim` for heads), so the result saves and
reloads with plain `from_pretrained`. Every block loses the same number of channels (heads),
because the config holds one size for all blocks.

Importance: with calibration batches, channel j scores ||X_j|| * ||W_out[:, j]|| (its input
norm over calibration tokens times the norm of the weights it writes with), computed block by
block on the already-pruned model; without, weight norms alone.
Supported: Llama-style blocks (gate/up/down_proj, q/k/v/o_proj: Llama, Mistral, Qwen2, ...),
GPT-J/CodeGen MLPs (fc_in/fc_out) and StarCoder2 / GPT-BigCode MLPs (c_fc/c_proj; StarCoder2's
separate q/k/v/o_proj attention is head-pruned like Llama's). CodeGen's fused, interleaved qkv_proj is not
head-pruned.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from codebench.compress.prune import decoder_layers, input_norms
from codebench.compress.variants import VariantUnavailable


def _linear_like(old: nn.Linear, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    new = nn.Linear(
        weight.shape[1],
        weight.shape[0],
        bias=bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    new.requires_grad_(old.weight.requires_grad)
    return new


def _keep_rows(lin: nn.Linear, idx: torch.Tensor) -> nn.Linear:
    return _linear_like(lin, lin.weight[idx], None if lin.bias is None else lin.bias[idx])


def _keep_cols(lin: nn.Linear, idx: torch.Tensor) -> nn.Linear:
    return _linear_like(lin, lin.weight[:, idx], lin.bias)


def _n_keep(n: int, amount: float) -> int:
    return max(1, n - round(amount * n))


# --------------------------------------------------------------------------- MLP channels
def _mlp_parts(block: nn.Module) -> tuple[nn.Module, list[str], str, str]:
    """(mlp module, input projection names, output projection name, config key)."""
    mlp = getattr(block, "mlp", None)
    if mlp is not None and all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
        return mlp, ["gate_proj", "up_proj"], "down_proj", "intermediate_size"
    if mlp is not None and all(hasattr(mlp, n) for n in ("up_proj", "down_proj")):
        return mlp, ["up_proj"], "down_proj", "intermediate_size"
    if mlp is not None and all(hasattr(mlp, n) for n in ("fc_in", "fc_out")):
        return mlp, ["fc_in"], "fc_out", "n_inner"
    if mlp is not None and all(
        isinstance(getattr(mlp, n, None), nn.Linear) for n in ("c_fc", "c_proj")
    ):
        # StarCoder2 (config intermediate_size) and GPT-BigCode/StarCoder (n_inner)
        return mlp, ["c_fc"], "c_proj", "intermediate_size|n_inner"
    raise VariantUnavailable(
        f"mlp-prune: unsupported block {type(block).__name__} (expected mlp.gate_proj/up_proj/down_proj, mlp.fc_in/fc_out or mlp.c_fc/c_proj)"
    )


def _config_key(config, key: str) -> str:
    """The config field holding the MLP width ('a|b': the first the config sets)."""
    options = key.split("|")
    return next((k for k in options if getattr(config, k, None) is not None), options[-1])


@torch.no_grad()
def prune_mlp_channels(
    model: nn.Module, amount: float, batches: Sequence[torch.Tensor] | None = None
) -> dict:
    """Remove `amount` of every block's MLP channels (lowest importance first); rewrite the config."""
    layers = decoder_layers(model)
    before = sum(p.numel() for p in model.parameters())
    report, key, width = [], None, None
    for i, block in enumerate(layers):
        mlp, ins, out, key = _mlp_parts(block)
        down = getattr(mlp, out)
        width = down.in_features
        col_norm = down.weight.float().norm(dim=0)
        if batches:
            name = next(n for n, m in model.named_modules() if m is down)
            score = input_norms(model, block, [name], batches)[name].to(col_norm.device) * col_norm
        else:
            score = col_norm * torch.stack(
                [getattr(mlp, n).weight.float().norm(dim=1) for n in ins]
            ).prod(0)
        keep = torch.topk(score, _n_keep(width, amount)).indices.sort().values
        for n in ins:
            setattr(mlp, n, _keep_rows(getattr(mlp, n), keep))
        setattr(mlp, out, _keep_cols(down, keep))
        report.append({"layer": i, "channels_before": width, "channels_after": int(keep.numel())})
    new_width = report[-1]["channels_after"]
    key = _config_key(model.config, key)
    setattr(model.config, key, new_width)
    after = sum(p.numel() for p in model.parameters())
    return {
        "method": "mlp-prune",
        "config_key": key,
        "before": width,
        "after": new_width,
        "params_before": before,
        "params_after": after,
        "layers": report,
    }


# --------------------------------------------------------------------------- attention heads
def _attn(block: nn.Module) -> nn.Module:
    attn = getattr(block, "self_attn", None)
    if attn is None or not all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")):
        raise VariantUnavailable(
            f"head-prune: unsupported attention in {type(block).__name__} (needs separate q/k/v/o_proj; CodeGen's fused qkv_proj is not supported)"
        )
    return attn


def _head_scores(model, block, attn, n_heads: int, head_dim: int, batches) -> torch.Tensor:
    o = attn.o_proj
    col = o.weight.float().norm(dim=0)
    if batches:
        name = next(n for n, m in model.named_modules() if m is o)
        col = col * input_norms(model, block, [name], batches)[name].to(col.device)
    else:
        col = col * attn.q_proj.weight.float().norm(dim=1)
    return col.view(n_heads, head_dim).sum(1)


@torch.no_grad()
def prune_attention_heads(
    model: nn.Module, amount: float, batches: Sequence[torch.Tensor] | None = None
) -> dict:
    """Remove `amount` of the attention heads of every block.

    Multi-head attention: whole heads (q, k, v rows and o_proj columns). Grouped-query
    attention: the same number of query heads from every key/value group, so the heads per
    group stay equal and the key/value heads stay; `head_dim` is written into the config.
    """
    cfg = model.config
    n_heads = cfg.num_attention_heads
    n_kv = getattr(cfg, "num_key_value_heads", None) or n_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads
    group = n_heads // n_kv
    mha = n_kv == n_heads
    drop = round(amount * (n_heads if mha else group))
    if drop < 1 or drop >= (n_heads if mha else group):
        unit = "heads" if mha else f"query heads per key/value group (of {group})"
        raise VariantUnavailable(
            f"head-prune-{amount * 100:g}: removes {drop} {unit}; needs at least 1 removed and 1 kept"
        )
    before = sum(p.numel() for p in model.parameters())
    report = []
    for i, block in enumerate(decoder_layers(model)):
        attn = _attn(block)
        score = _head_scores(model, block, attn, n_heads, head_dim, batches)
        if mha:
            heads = torch.topk(score, n_heads - drop).indices.sort().values
        else:
            per = score.view(n_kv, group)
            keep_in = torch.topk(per, group - drop, dim=1).indices.sort(dim=1).values
            heads = (keep_in + torch.arange(n_kv, device=keep_in.device)[:, None] * group).reshape(
                -1
            )
        dims = (
            heads[:, None] * head_dim + torch.arange(head_dim, device=heads.device)[None, :]
        ).reshape(-1)
        attn.q_proj = _keep_rows(attn.q_proj, dims)
        if mha:
            attn.k_proj = _keep_rows(attn.k_proj, dims)
            attn.v_proj = _keep_rows(attn.v_proj, dims)
        attn.o_proj = _keep_cols(attn.o_proj, dims)
        report.append({"layer": i, "heads_kept": heads.tolist()})
    new_heads = n_heads - drop if mha else n_kv * (group - drop)
    new_kv = new_heads if mha else n_kv
    cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim = new_heads, new_kv, head_dim
    for block in decoder_layers(model):
        attn = block.self_attn
        attn.num_key_value_groups = new_heads // new_kv
        for attr in ("num_heads", "num_attention_heads"):
            if hasattr(attn, attr):
                setattr(attn, attr, new_heads)
        if hasattr(attn, "num_key_value_heads"):
            attn.num_key_value_heads = new_kv
    after = sum(p.numel() for p in model.parameters())
    return {
        "method": "head-prune",
        "heads_before": n_heads,
        "heads_after": new_heads,
        "kv_heads_before": n_kv,
        "kv_heads_after": new_kv,
        "head_dim": head_dim,
        "params_before": before,
        "params_after": after,
        "layers": report,
    }
