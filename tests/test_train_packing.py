"""Packed samples never see each other: trl's packed, padding-free batches give the logits (and the
loss) of the same samples run unpacked. This guards trl upgrades: the packing, the collator's
position ids and the workbench's varlen attention must keep agreeing."""

from __future__ import annotations

import pytest
import torch
from helpers.train import random_codegen, random_llama
from trl.data_utils import pack_dataset
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from codebench.train.attention import packed_attention, resolve_packed_attention, verify_packing
from codebench.train.data import IGNORE_INDEX

VOCAB = 300
PAD = 1


def _samples(lengths: list[int], seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(2, VOCAB, (n,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [IGNORE_INDEX] * (n // 2) + ids[n // 2 :]})
    return out


def _packed_batches(samples: list[dict], max_length: int, batch_size: int) -> list[dict]:
    """What SFTTrainer feeds the model with packing=True, packing_strategy='bfd'."""
    from datasets import Dataset

    rows = pack_dataset(Dataset.from_list(samples), max_length, "bfd").to_list()
    collate = DataCollatorForLanguageModeling(pad_token_id=PAD, padding_free=True)
    return [collate(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]


def _unpacked_logits(model, samples: list[dict]) -> dict[tuple, torch.Tensor]:
    """Per-sample logits from trl's ordinary padded batch (packing=False)."""
    batch = DataCollatorForLanguageModeling(pad_token_id=PAD)(samples)
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
        ).logits
    return {tuple(s["input_ids"]): logits[i, : len(s["input_ids"])] for i, s in enumerate(samples)}


def _models():
    return {
        "llama-sdpa": random_llama(VOCAB),
        "llama-eager": random_llama(VOCAB, attn="eager", seed=1),
        "codegen": random_codegen(VOCAB),
    }


MODELS = _models()


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("mode", ["varlen", "position_ids"])
def test_packed_logits_equal_unpacked(name: str, mode: str) -> None:
    model = MODELS[name].eval()
    if mode == "varlen" and name == "codegen":  # CodeGen's attention is not on the interface
        with pytest.raises(ValueError, match="varlen"):
            resolve_packed_attention(model, "varlen")
        return
    samples = _samples([9, 5, 13, 3, 7, 11])
    batches = _packed_batches(samples, max_length=24, batch_size=2)
    assert any(int((b["position_ids"] == 0).sum()) > 1 for b in batches)  # really packed
    want = _unpacked_logits(model, samples)
    seen = 0
    for batch in batches:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        assert "attention_mask" not in inputs  # padding-free: positions alone separate samples
        with torch.no_grad(), packed_attention(model, mode):
            packed = model(**inputs, use_cache=False).logits[0]
        ids, pos = batch["input_ids"][0].tolist(), batch["position_ids"][0].tolist()
        starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
        for s, e in zip(starts[:-1], starts[1:], strict=True):
            assert (packed[s:e] - want[tuple(ids[s:e])]).abs().max().item() < 1e-4
            seen += 1
    assert seen == len(samples)
    restored = "sdpa" if name == "llama-sdpa" else "eager"
    assert model.config._attn_implementation == restored


def test_negative_control_plain_concatenation_leaks() -> None:
    """Without restarting positions the second sample sees the first: the check must notice."""
    model = MODELS["llama-sdpa"].eval()
    a, b = (s["input_ids"] for s in _samples([8, 6]))
    with torch.no_grad():
        joined = model(input_ids=torch.tensor([a + b]), use_cache=False).logits[0, 8:]
        alone = model(input_ids=torch.tensor([b]), use_cache=False).logits[0]
    assert (joined - alone).abs().max().item() > 1e-3
    for mode in ("varlen", "position_ids"):
        assert verify_packing(model, [a, b], mode) < 1e-4


def test_packed_loss_equals_per_sample_losses() -> None:
    """No label crosses a boundary: packed mean loss == token-weighted mean of per-sample losses."""
    model = MODELS["llama-sdpa"].eval()
    samples = _samples([10, 7, 12, 5])
    (batch,) = _packed_batches(samples, max_length=40, batch_size=8)
    with torch.no_grad(), packed_attention(model, "varlen"):
        packed_loss = model(**batch, use_cache=False).loss.item()
    with torch.no_grad():
        total = count = 0.0
        for s in samples:
            n = sum(1 for x in s["labels"][1:] if x != IGNORE_INDEX)
            out = model(
                input_ids=torch.tensor([s["input_ids"]]),
                labels=torch.tensor([s["labels"]]),
                use_cache=False,
            )
            total += out.loss.item() * n
            count += n
    assert packed_loss == pytest.approx(total / count, abs=1e-5)


def test_auto_mode_picks_the_fastest_supported() -> None:
    assert resolve_packed_attention(MODELS["llama-sdpa"]) == "varlen"
    assert resolve_packed_attention(MODELS["llama-eager"]) == "varlen"
    assert resolve_packed_attention(MODELS["codegen"]) == "position_ids"
    with pytest.raises(ValueError, match="packing: false"):
        resolve_packed_attention(_Opaque())


class _Opaque:
    """A model from code transformers does not own (e.g. remote code): no create_causal_mask."""

    config = type("C", (), {"_attn_implementation": "sdpa"})()


def test_varlen_mode_keeps_padding_masks_and_skips_windowed_models() -> None:
    """Under 'varlen', a left-padded batch with a 2D mask still gets its mask (generation-style)."""
    from transformers import MistralConfig, MistralForCausalLM

    model = MODELS["llama-sdpa"].eval()
    ids = torch.tensor([[1, 1, 5, 6, 7], [8, 9, 10, 11, 12]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        with packed_attention(model, "varlen"):
            got = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    assert (got[:, 2:] - want[:, 2:]).abs().max().item() < 1e-5
    cfg = MistralConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=8,
    )
    assert (
        resolve_packed_attention(MistralForCausalLM(cfg)) == "position_ids"
    )  # the mask carries the window
