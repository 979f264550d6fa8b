"""Packed samples never see each other: logits of a packed batch equal each sample run alone."""

from __future__ import annotations

import pytest
import torch

from codebench.train.collate import PackedCollator, PaddedCollator
from codebench.train.data import IGNORE_INDEX, Tokenized
from codebench.train.packing import (
    as_row,
    block_diagonal_mask,
    mask_kind,
    pack,
    packed_attention,
    resolve_packed_attention,
    segment_ids,
    verify_packing,
)
from codebench.train.testing import random_codegen, random_llama

VOCAB = 300


def _samples(lengths: list[int], seed: int = 0) -> list[Tokenized]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(lengths):
        ids = torch.randint(2, VOCAB, (n,), generator=g).tolist()
        labels = [IGNORE_INDEX] * (n // 2) + ids[n // 2 :]
        labels[0] = IGNORE_INDEX
        out.append(Tokenized(ids, labels, f"s:{i}", n))
    return out


def _models():
    llama_sdpa = random_llama(VOCAB)
    llama_eager = random_llama(VOCAB, attn="eager", seed=1)
    codegen = random_codegen(VOCAB)
    return {"llama-sdpa": llama_sdpa, "llama-eager": llama_eager, "codegen": codegen}


MODELS = _models()


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("mode", ["varlen", "position_ids", "4d"])
def test_packed_batch_logits_equal_each_sample_alone(name: str, mode: str) -> None:
    model = MODELS[name].eval()
    if (
        mode == "varlen" and name == "codegen"
    ):  # CodeGen's attention is not on the attention interface
        with pytest.raises(ValueError, match="varlen"):
            resolve_packed_attention(model, "varlen")
        return
    samples = _samples([9, 5, 13, 3, 7, 11])
    rows = pack(samples, max_length=24)
    assert any(r.n_samples > 1 for r in rows)
    collate = PackedCollator(
        pad_token_id=1, mode=mode, mask_dtype=mask_kind(model) if mode == "4d" else None
    )
    batch = collate(rows)  # rows of different lengths: padding forms its own segment
    with torch.no_grad(), packed_attention(model, mode):
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits
    assert model.config._attn_implementation == (
        "eager" if name != "llama-sdpa" else "sdpa"
    )  # restored
    with torch.no_grad():
        worst = 0.0
        for b, row in enumerate(rows):
            start = 0
            for n in _lengths(row.position_ids):
                alone = model(
                    input_ids=torch.tensor([row.input_ids[start : start + n]]), use_cache=False
                ).logits[0]
                worst = max(worst, (packed[b, start : start + n] - alone).abs().max().item())
                start += n
    assert worst < 1e-4


def _lengths(pos: list[int]) -> list[int]:
    starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
    return [b - a for a, b in zip(starts[:-1], starts[1:], strict=True)]


def test_negative_control_plain_concatenation_leaks() -> None:
    """Without restarting positions the second sample sees the first: the check must notice."""
    model = MODELS["llama-sdpa"].eval()
    a, b = _samples([8, 6])
    with torch.no_grad():
        joined = model(input_ids=torch.tensor([a.input_ids + b.input_ids]), use_cache=False).logits[
            0, 8:
        ]
        alone = model(input_ids=torch.tensor([b.input_ids]), use_cache=False).logits[0]
    assert (joined - alone).abs().max().item() > 1e-3
    for mode in ("varlen", "position_ids", "4d"):
        assert verify_packing(model, [a.input_ids, b.input_ids], mode) < 1e-4


def test_packed_loss_equals_per_sample_losses() -> None:
    """No label crosses a boundary: packed mean loss == token-weighted mean of per-sample losses."""
    model = MODELS["llama-sdpa"].eval()
    samples = _samples([10, 7, 12, 5])
    rows = pack(samples, max_length=40)
    with torch.no_grad(), packed_attention(model, "varlen"):
        packed_loss = model(**PackedCollator(pad_token_id=1)(rows), use_cache=False).loss.item()
    with torch.no_grad():
        total = count = 0.0
        for s in samples:
            n = sum(1 for x in s.labels[1:] if x != IGNORE_INDEX)
            out = model(
                input_ids=torch.tensor([s.input_ids]),
                labels=torch.tensor([s.labels]),
                use_cache=False,
            )
            total += out.loss.item() * n
            count += n
    assert packed_loss == pytest.approx(total / count, abs=1e-5)


def test_padded_collator_matches_alone() -> None:
    model = MODELS["llama-sdpa"].eval()
    samples = _samples([6, 10])
    batch = PaddedCollator(pad_token_id=1)([as_row(s) for s in samples])
    assert batch["attention_mask"].tolist()[0] == [1] * 6 + [0] * 4
    with torch.no_grad():
        out = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
        ).logits
        alone = model(input_ids=torch.tensor([samples[0].input_ids]), use_cache=False).logits
    assert (out[0, :6] - alone[0]).abs().max().item() < 1e-4


def test_block_diagonal_mask_shape_and_content() -> None:
    pos = torch.tensor([[0, 1, 2, 0, 1, 0]])
    assert segment_ids(pos).tolist() == [[1, 1, 1, 2, 2, 3]]
    m = block_diagonal_mask(pos)[0, 0]
    assert m.shape == (6, 6) and m[4, 3] and not m[3, 2] and not m[1, 2] and m[5, 5] and not m[5, 4]
    add = block_diagonal_mask(pos, additive_dtype=torch.float32)[0, 0]
    assert add[4, 3] == 0 and add[3, 2] == torch.finfo(torch.float32).min


def test_auto_mode_picks_the_fastest_supported() -> None:
    assert resolve_packed_attention(MODELS["llama-sdpa"]) == "varlen"
    assert resolve_packed_attention(MODELS["llama-eager"]) == "varlen"
    assert resolve_packed_attention(MODELS["codegen"]) == "position_ids"
    assert resolve_packed_attention(_Opaque()) == "4d"


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
