"""Pruning: exact sparsity on planted matrices, targets, Wanda, 2:4, structured shrinking."""

from __future__ import annotations

import pytest
import torch
from helpers.compress import (
    CODE,
    codegen_config,
    llama_config,
    random_model,
    tiny_tokenizer,
)

from codebench.compress import prune, structured
from codebench.compress.variants import VariantUnavailable


# --------------------------------------------------------------------------- planted matrices
def test_smallest_mask_exact_with_ties() -> None:
    scores = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 5.0, 6.0]])
    mask = prune.smallest_mask(scores, 3)
    assert int(mask.sum()) == 3
    assert not mask[1, 2] and not mask[1, 3]


def test_magnitude_layer_and_global_on_planted_weights() -> None:
    a = torch.arange(1, 11, dtype=torch.float32).view(2, 5)  # |w| 1..10
    b = torch.arange(101, 111, dtype=torch.float32).view(2, 5) * -1  # |w| 101..110
    per_layer = prune.magnitude_masks({"a": a, "b": b}, 0.3, "layer")
    assert per_layer["a"].reshape(-1).tolist() == [True] * 3 + [False] * 7
    assert per_layer["b"].reshape(-1).tolist() == [True] * 3 + [False] * 7
    glob = prune.magnitude_masks({"a": a, "b": b}, 0.5, "global")
    assert bool(glob["a"].all()) and not bool(glob["b"].any())  # the 10 smallest all live in a


def test_row_masks_and_two_four_exact() -> None:
    scores = torch.tensor(
        [[4.0, 3.0, 2.0, 1.0, 8.0, 7.0, 6.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]]
    )
    rows = prune.row_masks(scores, 0.25)
    assert rows.sum(1).tolist() == [2, 2]
    assert rows[0].tolist() == [False, False, True, True, False, False, False, False]
    nm = prune.nm_mask(scores)
    assert nm.view(2, 2, 4).sum(-1).tolist() == [[2, 2], [2, 2]]
    assert nm[1].tolist() == [True, True, False, False, True, True, False, False]
    with pytest.raises(ValueError, match="divisible by 4"):
        prune.nm_mask(torch.ones(2, 6))


def test_sparsity_report_counts_exactly() -> None:
    model = random_model(llama_config(layers=1))
    name, lin = prune.prunable_linears(model)[0]
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.weight.view(-1)[:100] = 0
    rep = prune.sparsity_report(model, [name])
    assert rep["layers"][0]["zeros"] == 100 and rep["pruned_zeros"] == 100
    assert rep["overall"] == 100 / lin.weight.numel()


# --------------------------------------------------------------------------- on models
@pytest.fixture(scope="module")
def batches():
    return prune.calibration_batches(
        tiny_tokenizer(), list(CODE) * 8, n_sequences=4, seq_len=32, batch_size=2
    )


def _head_and_embedding(model):
    return model.get_output_embeddings().weight.clone(), model.get_input_embeddings().weight.clone()


@pytest.mark.parametrize("arch", ["llama", "codegen"])
def test_targets_exclude_head_and_embeddings(arch) -> None:
    model = random_model(llama_config() if arch == "llama" else codegen_config())
    names = [n for n, _ in prune.prunable_linears(model)]
    assert names and not any("lm_head" in n or "embed" in n or "wte" in n for n in names)


@pytest.mark.parametrize("method", ["layer", "global", "wanda", "2:4", "wanda-2:4"])
def test_unstructured_methods_exact_and_leave_head_alone(method, batches) -> None:
    model = random_model(llama_config(tied=False))
    head, emb = _head_and_embedding(model)
    if method in ("layer", "global"):
        prune.prune_magnitude(model, 0.5, method)
    elif method == "wanda":
        prune.prune_wanda(model, 0.5, batches)
    else:
        prune.prune_semi_structured(
            model, "wanda" if method.startswith("wanda") else "magnitude", batches
        )
    rep = prune.sparsity_report(model)
    assert rep["overall"] == 0.5
    if method != "global":
        assert all(layer["sparsity"] == 0.5 for layer in rep["layers"])
    assert torch.equal(model.get_output_embeddings().weight, head) and torch.equal(
        model.get_input_embeddings().weight, emb
    )
    assert 0 < rep["overall_all_params"] < 0.5  # embeddings and norms stay dense


def test_wanda_uses_activations(batches) -> None:
    """Same weights, different input statistics -> different masks than magnitude."""
    a, b = random_model(llama_config()), random_model(llama_config())
    ma = prune.prune_magnitude(a, 0.5, "layer")
    mb = prune.prune_wanda(b, 0.5, batches)
    assert any(not torch.equal(ma[n], mb[n]) for n in ma)


# --------------------------------------------------------------------------- structured
def _runs(model) -> None:
    with torch.no_grad():
        out = model(torch.randint(2, 300, (1, 10)))
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize("arch, key", [("llama", "intermediate_size"), ("codegen", "n_inner")])
def test_mlp_prune_shrinks_and_reloads(arch, key, batches, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    model = random_model(llama_config(inter=128) if arch == "llama" else codegen_config())
    width = getattr(model.config, key) or 4 * model.config.n_embd
    rep = structured.prune_mlp_channels(model, 0.25, batches)
    assert rep["after"] == width - width // 4 == getattr(model.config, key)
    assert rep["params_after"] < rep["params_before"]
    _runs(model)
    model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert sum(p.numel() for p in again.parameters()) == rep["params_after"]
    x = torch.randint(2, 300, (1, 8))
    with torch.no_grad():
        assert torch.allclose(again(x).logits, model(x).logits, atol=1e-5)


@pytest.mark.parametrize("kv, heads_after, kv_after", [(4, 2, 2), (2, 2, 2)])
def test_head_prune_mha_and_gqa(kv, heads_after, kv_after, batches, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    model = random_model(llama_config(heads=4, kv_heads=kv))
    rep = structured.prune_attention_heads(model, 0.5, batches)
    cfg = model.config
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (
        heads_after,
        kv_after,
        16,
    )
    assert rep["params_after"] < rep["params_before"]
    _runs(model)
    model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    x = torch.randint(2, 300, (1, 8))
    with torch.no_grad():
        assert torch.allclose(again(x).logits, model(x).logits, atol=1e-5)


def test_head_prune_unsupported_cases() -> None:
    with pytest.raises(VariantUnavailable, match="fused qkv_proj"):
        structured.prune_attention_heads(random_model(codegen_config()), 0.5)
    with pytest.raises(VariantUnavailable, match="removes 0"):
        structured.prune_attention_heads(random_model(llama_config(heads=4, kv_heads=2)), 0.1)
