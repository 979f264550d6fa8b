"""codebench.train data: formats, the training chat template and its assistant masks (what trl's
SFTTrainer trains on), drop-and-count truncation, split, inspector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.train import build_tokenizer

from codebench.records import RecordError
from codebench.train import data as D
from codebench.train.inspect import mask_html, mask_text, mask_tokens

FIX = Path(__file__).parent / "fixtures" / "train"
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|im_end|>\n{% endgeneration %}"
    "{% else %}{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tok():
    t = build_tokenizer()
    assert D.training_template(t, "auto") == "fallback"
    return t


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
def test_every_format_is_read(tmp_path: Path) -> None:
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
        "completion",
        "chat",
        "text",
    ]
    assert ex[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Add.\n\na=1, b=2"},
        {"role": "assistant", "content": "3"},
    ]
    assert ex[1].messages[-1] == {"role": "assistant", "content": "R1"}
    assert ex[2].messages == [  # trl's standard prompt-completion: a continuation, no template
        {"role": "prompt", "content": "P2"},
        {"role": "completion", "content": "R2"},
    ]
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
    t = D.tokenize_example(ex, tok)
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
    trained = tok.apply_chat_template(msgs, tokenize=False)
    prompt = apply_chat(tok, history, add_generation_prompt=True)
    assert (
        trained.startswith(prompt)
        and trained[len(prompt) :] == msgs[last]["content"] + tok.eos_token
    )
    assert prompt.count(tok.eos_token) == sum(m["role"] == "assistant" for m in history) >= 1


def test_multi_turn_loss_on_every_assistant_turn(tok) -> None:
    (ex,) = D.load_examples(FIX / "multi_turn_chat.jsonl")
    t = D.tokenize_example(ex, tok)
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
    assert D.training_template(chat_tok, "auto") == "chat"
    t = D.tokenize_example(ex, chat_tok)
    full = chat_tok.apply_chat_template(ex.messages, tokenize=False)
    assert chat_tok.decode(t.input_ids) == full
    loss = _loss_text(t, chat_tok)
    assert (
        loss
        == "def add(a, b):\n    return a + b\n<|im_end|>\ndef sub(a, b):\n    return a - b\n<|im_end|>\n"
    )


def test_chat_template_required_when_asked() -> None:
    with pytest.raises(D.TemplateError, match="no chat template"):
        D.training_template(build_tokenizer(), "chat")


def test_template_without_assistant_markers_learns_the_last_reply() -> None:
    """A template trl has no training version of: prompt-completion loss on the last turn."""
    t = build_tokenizer()
    t.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    assert D.training_template(t, "auto") == "chat" and not D.marks_assistant(t)
    (ex,) = D.load_examples(FIX / "multi_turn_chat.jsonl")
    assert set(D.trl_record(ex, t)) == {"prompt", "completion"}
    loss = _loss_text(D.tokenize_example(ex, t), t)  # the prompt's last space may merge in
    assert loss.strip() == "def sub(a, b):\n    return a - b" and "def add" not in loss


def test_fallback_template_gives_bos_where_the_tokenizer_adds_it() -> None:
    from tokenizers.processors import TemplateProcessing

    from codebench.models import adds_bos, apply_chat, encode_prompt

    t = build_tokenizer()
    t._tokenizer.post_processor = TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", t.bos_token_id)]
    )
    assert adds_bos(t)
    D.training_template(t, "fallback")
    ex = D.record_to_example({"prompt": "Q", "response": "A"}, "x:1")
    ids = D.tokenize_example(ex, t).input_ids
    prompt = encode_prompt(t, apply_chat(t, ex.messages[:1]))
    assert ids[:1] == [t.bos_token_id] and ids[1:2] != [t.bos_token_id]  # one BOS
    assert ids[: len(prompt)] == prompt  # generation sees the ids training saw


def test_completion_records_train_on_the_prompt_tokens_generation_sees(tok) -> None:
    """A HumanEval-style prompt and its body: the prompt is encoded alone, exactly as the base
    protocol's generation encodes it (joint tokenization would merge the docstring's last
    newline with the body's indent into tokens the model never sees at inference)."""
    from codebench.models import encode_prompt

    prompt = 'def add(a, b):\n    """Add."""\n'
    body = "    return a + b\n"
    assert tok(prompt + body)["input_ids"] != encode_prompt(tok, prompt) + list(
        tok(body, add_special_tokens=False)["input_ids"]
    ), "the fixture must have a BPE merge across the joint, or this test proves nothing"
    ex = D.record_to_example({"prompt": prompt, "completion": body}, "x:1")
    t = D.tokenize_example(ex, tok)
    head = encode_prompt(tok, prompt)
    assert t.input_ids[: len(head)] == head
    assert all(lab == D.IGNORE_INDEX for lab in t.labels[: len(head)])
    assert _loss_text(t, tok) == body + tok.eos_token
    assert D.trl_record(ex, tok) == {"prompt": prompt, "completion": body}


def test_chat_rendering_equals_trls_own(tmp_path: Path, tok, chat_tok) -> None:
    """Training hands trl the tokens `tokenize_example` renders; for chat records they must
    be exactly what trl's SFTTrainer renders itself (guards a trl or template change)."""
    from helpers.train import random_llama
    from trl import SFTConfig, SFTTrainer

    recs = [
        {"prompt": "Add two numbers.", "response": "def add(a, b):\n    return a + b\n"},
        *[json.loads(line) for line in (FIX / "multi_turn_chat.jsonl").read_text().splitlines()],
    ]
    for t in (tok, chat_tok):
        examples = [D.record_to_example(r, f"x:{i}") for i, r in enumerate(recs)]
        mine = [D.tokenize_example(e, t) for e in examples]
        import datasets

        ds = datasets.Dataset.from_list([D.trl_record(e, t) for e in examples])
        trainer = SFTTrainer(
            model=random_llama(len(t)),
            args=SFTConfig(
                output_dir=str(tmp_path / "trl"),
                assistant_only_loss=True,
                report_to=[],
                use_cpu=True,
                max_length=None,
                activation_checkpointing=False,
            ),
            processing_class=t,
            train_dataset=ds,
        )
        theirs = trainer.train_dataset
        assert any(-100 in labels for labels in theirs["labels"])  # trl masked the prompts
        for m, ids, labels in zip(mine, theirs["input_ids"], theirs["labels"], strict=True):
            assert m.input_ids == ids
            assert m.labels[1:] == labels[1:]  # the first token is never a target in ours


def test_text_records_learn_every_token(tok) -> None:
    ex = D.record_to_example({"text": "x = 1\ny = 2\n"}, "x:1")
    t = D.tokenize_example(ex, tok)
    assert t.labels[0] == D.IGNORE_INDEX and all(lab != D.IGNORE_INDEX for lab in t.labels[1:])


# --------------------------------------------------------------------------- truncation
def test_response_cut_away_is_dropped_counted_and_warned(tok) -> None:
    ex = D.load_examples(FIX / "prompt_longer_than_window.jsonl")
    with pytest.warns(
        D.DroppedByTruncationWarning,
        match=r"1 of 3 examples dropped.*prompt_longer_than_window\.jsonl:2",
    ):
        kept_ex, kept, stats = D.tokenize_examples(ex, tok, max_length=64)
    assert stats.n_dropped == 1 and stats.dropped[0].endswith(":2")
    assert stats.n_kept == len(kept) == len(kept_ex) == 2 and stats.n_in == 3
    assert [e.source for e in kept_ex] == [t.source for t in kept]
    assert len(stats.lengths) == 3 and max(stats.lengths) > 64
    assert all(len(t.input_ids) <= 64 for t in kept)


def test_partly_cut_response_is_kept_and_counted(tok) -> None:
    ex = [D.record_to_example({"prompt": "p", "response": "word " * 200}, "x:1")]
    _, kept, stats = D.tokenize_examples(ex, tok, max_length=32)
    assert stats.n_truncated == 1 and stats.n_dropped == 0
    assert len(kept[0].input_ids) == 32 and kept[0].n_loss > 0


# --------------------------------------------------------------------------- split
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


# --------------------------------------------------------------------------- inspector
def test_mask_inspector(tok) -> None:
    ex = D.record_to_example({"prompt": "Say hi & <bye>", "response": "print('hi')\n"}, "x:1")
    t = D.tokenize_example(ex, tok)
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
