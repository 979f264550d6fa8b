"""codebench.train data: formats, templates, completion-only masks, truncation, split, packing, inspector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codebench.records import RecordError
from codebench.train import data as D
from codebench.train.inspect import mask_html, mask_text, mask_tokens
from codebench.train.packing import pack
from codebench.train.testing import build_tokenizer, sft_records, tiny_tokenizer

FIX = Path(__file__).parent / "fixtures" / "train"
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def chat_tok():
    t = build_tokenizer()
    t.chat_template = CHATML
    return t


def _write(tmp_path: Path, records: list[dict], name: str = "sft.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in records))
    return p


def _loss_text(t: D.Tokenized, tok) -> str:
    return tok.decode(
        [i for i, lab in zip(t.input_ids, t.labels, strict=True) if lab != D.IGNORE_INDEX]
    )


# --------------------------------------------------------------------------- formats
def test_every_format_normalises_to_chat(tmp_path: Path) -> None:
    recs = [
        {"instruction": "Add.", "input": "a=1, b=2", "output": "3", "system": "Be brief."},
        {"prompt": "P1", "response": "R1"},
        {"prompt": "P2", "completion": "R2"},
        {"messages": [{"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]},
        {"text": "def f():\n    pass\n"},
    ]
    ex = D.load_examples(_write(tmp_path, recs))
    assert [e.fmt for e in ex] == [
        "instruction",
        "prompt-response",
        "prompt-completion",
        "chat",
        "text",
    ]
    assert ex[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Add.\n\na=1, b=2"},
        {"role": "assistant", "content": "3"},
    ]
    assert ex[2].messages[-1] == {"role": "assistant", "content": "R2"}
    assert ex[1].source.endswith("sft.jsonl:2")


def test_malformed_line_names_file_and_line() -> None:
    with pytest.raises(RecordError, match=r"malformed_line\.jsonl:4: malformed JSONL line"):
        D.load_examples(FIX / "malformed_line.jsonl")


def test_unknown_format_names_file_and_line() -> None:
    with pytest.raises(D.DataFormatError, match=r"unknown_format\.jsonl:2: unknown record format"):
        D.load_examples(FIX / "unknown_format.jsonl")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, r"messages\[0\]"),
        ({"messages": [{"role": "user", "content": "only a question"}]}, "no non-empty assistant"),
        ({"prompt": "p", "response": 3}, "'response' must be a string"),
        ({"instruction": "i", "output": ""}, "empty response"),
    ],
)
def test_bad_records_are_named(tmp_path: Path, record: dict, message: str) -> None:
    with pytest.raises(D.DataFormatError, match=message):
        D.load_examples(_write(tmp_path, [record]))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        D.load_examples(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------------- masks
def test_prompt_tokens_carry_no_loss_fallback(tok) -> None:
    ex = D.record_to_example(
        {"prompt": "Add two numbers.", "response": "def add(a, b):\n    return a + b\n"}, "x:1"
    )
    t = D.tokenize_example(ex, tok, "fallback")
    prompt = D.render_prompt("Add two numbers.", tok, "fallback")
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert (
        t.input_ids[:n_prompt] == tok(prompt, add_special_tokens=False)["input_ids"]
    )  # same as at generation
    assert all(lab == D.IGNORE_INDEX for lab in t.labels[:n_prompt])
    assert all(lab == i for lab, i in zip(t.labels[n_prompt:], t.input_ids[n_prompt:], strict=True))
    assert _loss_text(t, tok) == "def add(a, b):\n    return a + b\n" + tok.eos_token
    assert t.input_ids[-1] == tok.eos_token_id


def test_fallback_prompt_matches_models_apply_chat(tok) -> None:
    from codebench.models import apply_chat

    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    assert D.render_prompt(msgs, tok, "fallback") == apply_chat(
        tok, msgs, add_generation_prompt=True
    )


def test_multi_turn_history_at_inference_is_rendered_as_in_training(tok) -> None:
    # the second turn's prompt at generation time must be the exact prefix training used
    from codebench.models import apply_chat

    (ex,) = D.load_examples(FIX / "multi_turn_chat.jsonl")
    msgs = ex.messages
    last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    history = msgs[:last]
    trained = "".join(text for text, _ in D.segments(ex, tok, "fallback"))
    prompt = apply_chat(tok, history, add_generation_prompt=True)
    assert (
        trained.startswith(prompt)
        and trained[len(prompt) :] == msgs[last]["content"] + tok.eos_token
    )
    assert prompt.count(tok.eos_token) == sum(m["role"] == "assistant" for m in history) >= 1


def test_multi_turn_loss_on_every_assistant_turn(tok) -> None:
    (ex,) = D.load_examples(FIX / "multi_turn_chat.jsonl")
    t = D.tokenize_example(ex, tok, "fallback")
    loss = _loss_text(t, tok)
    assert (
        loss
        == "def add(a, b):\n    return a + b\n"
        + tok.eos_token
        + "def sub(a, b):\n    return a - b\n"
        + tok.eos_token
    )
    assert "Now subtract" not in loss and "careful" not in loss


def test_chat_template_masks_assistant_turns(chat_tok) -> None:
    (ex,) = D.load_examples(FIX / "multi_turn_chat.jsonl")
    assert D.resolve_template(chat_tok, "auto") == "chat"
    t = D.tokenize_example(ex, chat_tok, "chat")
    full = chat_tok.apply_chat_template(ex.messages, tokenize=False)
    assert chat_tok.decode(t.input_ids) == full
    loss = _loss_text(t, chat_tok)
    assert (
        loss
        == "def add(a, b):\n    return a + b\n<|im_end|>\ndef sub(a, b):\n    return a - b\n<|im_end|>\n"
    )


def test_chat_template_required_when_asked(tok) -> None:
    with pytest.raises(D.TemplateError, match="no chat template"):
        D.resolve_template(tok, "chat")


def test_text_records_learn_every_token(tok) -> None:
    ex = D.record_to_example({"text": "x = 1\ny = 2\n"}, "x:1")
    t = D.tokenize_example(ex, tok, "fallback")
    assert t.labels[0] == D.IGNORE_INDEX and all(lab != D.IGNORE_INDEX for lab in t.labels[1:])


# --------------------------------------------------------------------------- truncation
def test_response_cut_away_is_dropped_counted_and_warned(tok) -> None:
    ex = D.load_examples(FIX / "prompt_longer_than_window.jsonl")
    with pytest.warns(
        D.DroppedByTruncationWarning,
        match=r"1 of 3 examples dropped.*prompt_longer_than_window\.jsonl:2",
    ):
        kept, stats = D.tokenize_examples(ex, tok, max_length=64)
    assert stats.n_dropped == 1 and stats.dropped[0].endswith(":2")
    assert stats.n_kept == len(kept) == 2 and stats.n_in == 3
    assert len(stats.lengths) == 3 and max(stats.lengths) > 64
    assert all(len(t.input_ids) <= 64 for t in kept)


def test_partly_cut_response_is_kept_and_counted(tok) -> None:
    ex = [D.record_to_example({"prompt": "p", "response": "word " * 200}, "x:1")]
    kept, stats = D.tokenize_examples(ex, tok, max_length=32)
    assert stats.n_truncated == 1 and stats.n_dropped == 0
    assert len(kept[0].input_ids) == 32 and kept[0].n_loss > 0


# --------------------------------------------------------------------------- split and packing
def test_split_is_seeded_and_disjoint() -> None:
    ex = [D.Example([{"role": "text", "content": str(i)}], f"x:{i}", "text") for i in range(50)]
    tr1, va1 = D.split_examples(ex, 0.2, seed=1)
    tr2, va2 = D.split_examples(ex, 0.2, seed=1)
    _, va3 = D.split_examples(ex, 0.2, seed=2)
    assert [e.source for e in va1] == [e.source for e in va2] != [e.source for e in va3]
    assert len(va1) == 10 and len(tr1) == 40
    assert not {e.source for e in tr1} & {e.source for e in va1}
    assert len(D.split_examples(ex, 0.2, seed=1, max_val=3)[1]) == 3
    assert D.split_examples(ex, 0.0, seed=1)[1] == []


def test_pack_keeps_every_example_once_with_restarting_positions(tok, tmp_path: Path) -> None:
    ex = D.load_examples(_write(tmp_path, sft_records(40)))
    toks, _ = D.tokenize_examples(ex, tok, max_length=128)
    rows = pack(toks, 128)
    assert len(rows) < len(toks) and all(len(r) <= 128 for r in rows)
    assert sum(r.n_samples for r in rows) == len(toks)
    assert sorted(tuple(t.input_ids) for t in toks) == sorted(
        tuple(r.input_ids[s:e]) for r in rows for s, e in _spans(r.position_ids)
    )


def _spans(pos: list[int]) -> list[tuple[int, int]]:
    starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
    return list(zip(starts[:-1], starts[1:], strict=True))


# --------------------------------------------------------------------------- inspector
def test_mask_inspector(tok) -> None:
    ex = D.record_to_example({"prompt": "Say hi & <bye>", "response": "print('hi')\n"}, "x:1")
    t = D.tokenize_example(ex, tok, "fallback")
    pairs = mask_tokens(t, tok)
    assert len(pairs) == len(t.input_ids)
    assert "".join(s for s, loss in pairs if loss) == "print('hi')\n" + tok.eos_token
    assert not any(loss for s, loss in pairs if "Instruction" in s)
    text = mask_text(pairs)
    assert text.endswith("⟦print('hi')\n" + tok.eos_token + "⟧")
    html = mask_html(pairs, title="x:1")
    assert (
        html.count("<span title=") == len(pairs)
        and "&lt;" in html
        and "<b" not in html.replace("<br>", "")
    )
