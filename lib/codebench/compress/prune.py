"""Unstructured and 2:4 pruning: magnitude (per layer / global), Wanda, N:M; exact sparsity.

Targets are the Linear layers inside the transformer blocks; the token embedding and the
output head (lm_head) are never pruned. Pruning zeroes weights in place: the tensors stay
dense, so memory and speed do not change until a sparse format or kernel uses the zeros
(`io` can store them as bitmask + values, which does save bytes on disk).

Counts are exact: a layer of n weights pruned at p loses exactly round(p * n) of them
(ties at the threshold are broken by position), Wanda removes round(p * in_features) per
output row, and 2:4 removes exactly two of every four consecutive input weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn


# --------------------------------------------------------------------------- targets
def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of transformer blocks (Llama `model.layers`, CodeGen `transformer.h`, ...)."""
    n = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    best = None
    for mod in model.modules():
        if (
            isinstance(mod, nn.ModuleList)
            and len(mod)
            and any(isinstance(m, nn.Linear) for m in mod[0].modules())
        ):
            if len(mod) == n:
                return mod
            best = best if best is not None and len(best) >= len(mod) else mod
    if best is None:
        raise ValueError(
            f"{type(model).__name__}: no list of transformer blocks with Linear layers found"
        )
    return best


def prunable_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """(name, module) of every Linear inside the transformer blocks (never lm_head / embeddings)."""
    head = model.get_output_embeddings()
    layers = decoder_layers(model)
    inside = {id(m) for m in layers.modules()}
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and id(m) in inside and m is not head
    ]


# --------------------------------------------------------------------------- masks
def smallest_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask (same shape) marking exactly the k smallest entries; ties broken by position."""
    flat = scores.reshape(-1)
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if k <= 0:
        return mask.view_as(scores)
    if k >= flat.numel():
        return torch.ones_like(scores, dtype=torch.bool)
    t = torch.kthvalue(flat.float().cpu(), k).values.to(flat.device)
    mask = flat < t
    need = k - int(mask.sum())
    if need > 0:
        mask[(flat == t).nonzero().flatten()[:need]] = True
    return mask.view_as(scores)


def magnitude_masks(
    weights: dict[str, torch.Tensor], amount: float, scope: str = "layer"
) -> dict[str, torch.Tensor]:
    """Masks of the weights to remove by |w|: the smallest `amount` of each layer, or of all together."""
    if scope == "layer":
        return {
            n: smallest_mask(w.detach().abs(), round(amount * w.numel()))
            for n, w in weights.items()
        }
    if scope != "global":
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    names = list(weights)
    flat = torch.cat([weights[n].detach().abs().float().reshape(-1).cpu() for n in names])
    mask = smallest_mask(flat, round(amount * flat.numel()))
    out, start = {}, 0
    for n in names:
        w = weights[n]
        out[n] = mask[start : start + w.numel()].view(w.shape).to(w.device)
        start += w.numel()
    return out


def row_masks(scores: torch.Tensor, amount: float) -> torch.Tensor:
    """Remove the round(amount * in_features) lowest-scoring weights of every output row."""
    k = round(amount * scores.shape[1])
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if k > 0:
        mask.scatter_(1, torch.topk(scores, k, dim=1, largest=False).indices, True)
    return mask


def nm_mask(scores: torch.Tensor, n: int = 2, m: int = 4) -> torch.Tensor:
    """N:M semi-structured mask: in every group of m consecutive inputs of a row, remove the m - n lowest."""
    rows, cols = scores.shape
    if cols % m:
        raise ValueError(f"{n}:{m} sparsity needs in_features divisible by {m}, got {cols}")
    groups = scores.reshape(rows, cols // m, m)
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(2, torch.topk(groups, m - n, dim=2, largest=False).indices, True)
    return mask.reshape(rows, cols)


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked weights in place."""
    for name, mask in masks.items():
        model.get_submodule(name).weight.masked_fill_(mask, 0)


# --------------------------------------------------------------------------- calibration
def calibration_batches(
    tokenizer, texts: Sequence[str], n_sequences: int = 16, seq_len: int = 256, batch_size: int = 4
) -> list[torch.Tensor]:
    """Token windows of `seq_len` cut from `texts` (joined by end-of-text), batched, no padding."""
    sep = tokenizer.eos_token or "\n"
    ids = tokenizer(sep.join(texts), verbose=False)["input_ids"]
    rows = [ids[i : i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)][:n_sequences]
    if not rows:
        if not ids:
            raise ValueError("calibration texts are empty")
        rows = [ids[:seq_len]]
    data = torch.tensor(rows, dtype=torch.long)
    return list(data.split(batch_size))


class _StopForward(Exception):
    pass


@torch.no_grad()
def input_norms(
    model: nn.Module, block: nn.Module, names: list[str], batches: Sequence[torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Per input feature, sqrt(sum over calibration tokens of x^2) at each named Linear of `block`.

    The forward pass stops after `block`, so calibrating block i costs i + 1 blocks.
    """
    sums = {n: None for n in names}
    hooks = []

    def pre_hook(name):
        def hook(_mod, args):
            x = args[0].detach().float().reshape(-1, args[0].shape[-1])
            s = (x * x).sum(0)
            sums[name] = s if sums[name] is None else sums[name] + s

        return hook

    def stop(_mod, _args, _out):
        raise _StopForward

    for n in names:
        hooks.append(model.get_submodule(n).register_forward_pre_hook(pre_hook(n)))
    hooks.append(block.register_forward_hook(stop))
    device = next(model.parameters()).device
    try:
        for b in batches:
            with contextlib.suppress(_StopForward):
                model(input_ids=b.to(device), use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return {n: s.sqrt() for n, s in sums.items() if s is not None}


def wanda_scores(
    model: nn.Module, batches: Sequence[torch.Tensor], apply, names: set[str] | None = None
) -> None:
    """Wanda: score |W_ij| * ||X_j||, block by block, each block calibrated on the outputs of the
    blocks already pruned before it (as in Sun et al., 2023). `apply(name, scores)` prunes one layer."""
    targets = dict(prunable_linears(model))
    for block in decoder_layers(model):
        inside = {id(m) for m in block.modules()}
        names_b = [
            n for n, m in targets.items() if id(m) in inside and (names is None or n in names)
        ]
        norms = input_norms(model, block, names_b, batches)
        for n in names_b:
            w = targets[n].weight
            apply(n, w.detach().abs().float() * norms[n].to(w.device)[None, :])


# --------------------------------------------------------------------------- methods
def prune_magnitude(
    model: nn.Module, amount: float, scope: str = "layer"
) -> dict[str, torch.Tensor]:
    """L1 (magnitude) unstructured pruning, per layer or global. Returns the masks applied."""
    weights = {n: m.weight for n, m in prunable_linears(model)}
    masks = magnitude_masks(weights, amount, scope)
    apply_masks(model, masks)
    return masks


def prune_wanda(
    model: nn.Module, amount: float, batches: Sequence[torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Wanda unstructured pruning (per output row) calibrated on `batches`. Returns the masks."""
    masks: dict[str, torch.Tensor] = {}

    def apply(name, scores):
        masks[name] = row_masks(scores, amount)
        apply_masks(model, {name: masks[name]})

    wanda_scores(model, batches, apply)
    return masks


def prune_semi_structured(
    model: nn.Module,
    score: str = "magnitude",
    batches: Sequence[torch.Tensor] | None = None,
    n: int = 2,
    m: int = 4,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """N:M (default 2:4) pruning by magnitude or Wanda score. Returns (masks, skipped layer notes)."""
    masks: dict[str, torch.Tensor] = {}
    skipped: list[str] = []

    def apply(name, scores):
        if scores.shape[1] % m:
            skipped.append(f"{name}: in_features {scores.shape[1]} not divisible by {m}")
            return
        masks[name] = nm_mask(scores, n, m)
        apply_masks(model, {name: masks[name]})

    if score == "wanda":
        if not batches:
            raise ValueError("wanda 2:4 needs calibration batches")
        wanda_scores(model, batches, apply)
    elif score == "magnitude":
        for name, mod in prunable_linears(model):
            apply(name, mod.weight.detach().abs())
    else:
        raise ValueError(f"2:4 score must be 'magnitude' or 'wanda', got {score!r}")
    return masks, skipped


# --------------------------------------------------------------------------- reporting
def sparsity_report(model: nn.Module, names: Sequence[str] | None = None) -> dict:
    """Exact zero counts: per pruned layer, over the pruned layers, and over all parameters."""
    names = list(names) if names is not None else [n for n, _ in prunable_linears(model)]
    layers, zeros, total = [], 0, 0
    for n in names:
        w = model.get_submodule(n).weight
        z, t = int((w == 0).sum()), w.numel()
        layers.append(
            {
                "name": n,
                "shape": list(w.shape),
                "zeros": z,
                "numel": t,
                "sparsity": z / t if t else 0.0,
            }
        )
        zeros, total = zeros + z, total + t
    all_zeros = all_total = 0
    seen = set()
    for p in model.parameters():
        if id(p) in seen or p.device.type == "meta":
            continue
        seen.add(id(p))
        all_zeros += int((p == 0).sum())
        all_total += p.numel()
    return {
        "layers": layers,
        "pruned_zeros": zeros,
        "pruned_numel": total,
        "overall": zeros / total if total else 0.0,
        "all_params_zeros": all_zeros,
        "all_params_numel": all_total,
        "overall_all_params": all_zeros / all_total if all_total else 0.0,
    }
