"""SFT data: read instruction/chat JSONL, split it, and drop rows whose response truncation cuts away.

Accepted line formats (one JSON object per line; the format is decided per line):

- chat:         ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``
                (CodeI/O's ``sft.jsonl``); loss on every assistant turn.
- instruction:  ``{"instruction": str, "output": str}`` (optional ``"input"``, ``"system"``)
- prompt/resp.: ``{"prompt": str, "response": str}``: one user turn and one assistant reply.
- completion:   ``{"prompt": str, "completion": str}`` (trl's standard prompt-completion): the
                completion *continues* the prompt, no chat template; prompt and completion are
                tokenized separately (``encode_prompt(prompt) + completion + eos``) so training
                sees the prompt's tokens exactly as generation does (BPE merges across the joint,
                e.g. a docstring's last newline with the body's indent, would otherwise teach a
                context the model never gets); loss on the completion and eos. This is the
                base-protocol form of a HumanEval-style task (prompt = signature + docstring).
- plain text:   ``{"text": str}``: language-model loss on every token (no prompt to mask).

Templating and masking are the tokenizer's chat template (`codebench.models.use_chat_template`:
its own, else the workbench's Jinja fallback `FALLBACK_CHAT_TEMPLATE`, the one generation uses
too) with `{% generation %}` markers for the assistant mask -- what trl's SFTTrainer renders with
`assistant_only_loss=True`. `tokenize_examples` renders every example the same way first, so that
examples whose whole response lies past `max_length` are dropped and counted (trl would keep
them silently, with no loss) and the mask inspector shows exactly what training sees.
"""

from __future__ import annotations

import logging
import random
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trl.chat_template_utils import get_training_chat_template, has_generation_markers
from trl.data_utils import common_prefix_length

from codebench.models import encode_prompt, use_chat_template
from codebench.records import read_jsonl

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
ROLES = ("system", "user", "assistant")
Template = Literal["auto", "chat", "fallback"]


class DataFormatError(ValueError):
    """A training record is unusable; the message names file and line."""


class TemplateError(ValueError):
    """The chat template cannot be split into prompt and response pieces."""


class DroppedByTruncationWarning(UserWarning):
    """Examples whose whole response lies past max_length were dropped."""


@dataclass
class Example:
    """One training conversation, normalised to chat messages (or plain text)."""

    messages: list[dict[str, str]]
    source: str  # "file:line", for error messages and the mask inspector
    fmt: str  # chat | instruction | prompt-response | completion | text


@dataclass
class Tokenized:
    """Token ids and labels (IGNORE_INDEX where no loss) of one example, after truncation."""

    input_ids: list[int]
    labels: list[int]
    source: str
    full_length: int  # tokens before truncation

    @property
    def n_loss(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


@dataclass
class TokenizeStats:
    """What truncation did: counts, and the full-length distribution for the histogram."""

    max_length: int
    n_in: int = 0
    n_kept: int = 0
    n_truncated: int = 0  # cut but still carrying loss
    dropped: list[str] = field(default_factory=list)  # sources cut to no loss at all
    lengths: list[int] = field(default_factory=list)  # full lengths of every input example

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_length": self.max_length,
            "n_in": self.n_in,
            "n_kept": self.n_kept,
            "n_truncated": self.n_truncated,
            "n_dropped": self.n_dropped,
            "dropped_sources": self.dropped[:20],
        }


# --------------------------------------------------------------------------- reading
def _text(rec: dict, key: str, where: str) -> str:
    v = rec.get(key)
    if not isinstance(v, str):
        raise DataFormatError(f"{where}: field {key!r} must be a string, got {type(v).__name__}")
    return v


def record_to_example(rec: dict, where: str) -> Example:
    """Normalise one JSON record to an `Example`; raise DataFormatError naming `where`."""
    if "messages" in rec:
        msgs = rec["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise DataFormatError(f"{where}: 'messages' must be a non-empty list")
        out = []
        for i, m in enumerate(msgs):
            if (
                not isinstance(m, dict)
                or m.get("role") not in ROLES
                or not isinstance(m.get("content"), str)
            ):
                raise DataFormatError(
                    f"{where}: messages[{i}] must be {{'role': one of {list(ROLES)}, 'content': str}}, got {m!r:.120}"
                )
            out.append({"role": m["role"], "content": m["content"]})
        if not any(m["role"] == "assistant" and m["content"] for m in out):
            raise DataFormatError(f"{where}: no non-empty assistant message to learn from")
        return Example(out, where, "chat")
    system = (
        [{"role": "system", "content": _text(rec, "system", where)}] if rec.get("system") else []
    )
    if "instruction" in rec and "output" in rec:
        user = _text(rec, "instruction", where)
        if rec.get("input"):
            user += "\n\n" + _text(rec, "input", where)
        pair, fmt = (user, _text(rec, "output", where)), "instruction"
    elif "prompt" in rec and "response" in rec:
        pair, fmt = (_text(rec, "prompt", where), _text(rec, "response", where)), "prompt-response"
    elif "prompt" in rec and "completion" in rec:
        prompt, completion = _text(rec, "prompt", where), _text(rec, "completion", where)
        if not completion:
            raise DataFormatError(f"{where}: empty completion")
        return Example(
            [{"role": "prompt", "content": prompt}, {"role": "completion", "content": completion}],
            where,
            "completion",
        )
    elif "text" in rec:
        return Example([{"role": "text", "content": _text(rec, "text", where)}], where, "text")
    else:
        raise DataFormatError(
            f"{where}: unknown record format with keys {sorted(rec)[:8]}; expected 'messages', "
            "'instruction'+'output', 'prompt'+'response', 'prompt'+'completion' or 'text'"
        )
    if not pair[1]:
        raise DataFormatError(f"{where}: empty response")
    return Example(
        [*system, {"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}],
        where,
        fmt,
    )


def load_examples(
    paths: str | Path | Iterable[str | Path], *, limit: int | None = None
) -> list[Example]:
    """Read SFT examples from one or more JSONL files.

    A malformed JSON line raises `codebench.records.RecordError` ("file:line: ..."); a valid
    JSON object in no known format raises DataFormatError naming file and line.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    out: list[Example] = []
    for p in map(Path, paths):
        if not p.is_file():
            raise FileNotFoundError(f"training data not found: {p}")
        with p.open(encoding="utf-8") as fh:
            lines = [i for i, line in enumerate(fh, 1) if line.strip()]
        for lineno, rec in zip(lines, read_jsonl(p), strict=True):
            out.append(record_to_example(rec, f"{p}:{lineno}"))
            if limit is not None and len(out) >= limit:
                return out
    return out


def split_examples(
    examples: list[Example], val_fraction: float, seed: int, max_val: int | None = None
) -> tuple[list[Example], list[Example]]:
    """Seeded train/validation split by example (same seed and data -> same split)."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    idx = list(range(len(examples)))
    random.Random(seed).shuffle(idx)
    n_val = round(len(idx) * val_fraction) if len(idx) > 1 else 0
    if val_fraction > 0 and len(idx) > 1:
        n_val = max(1, n_val)
    if max_val is not None:
        n_val = min(n_val, max_val)
    val = sorted(idx[:n_val])
    train = sorted(idx[n_val:])
    return [examples[i] for i in train], [examples[i] for i in val]


# --------------------------------------------------------------------------- templating
def training_template(tokenizer: Any, template: Template = "auto") -> str:
    """Set the chat template to train with on `tokenizer` and return 'chat' or 'fallback'.

    The template gets `{% generation %}` markers for the assistant mask: the fallback has them;
    a model's own template without them is swapped for trl's training version of it (known
    families). A template trl does not know stays as it is: examples then train as trl's
    prompt-completion pairs (loss on the last assistant turn, see `marks_assistant`).
    """
    try:
        name = use_chat_template(tokenizer, template)
    except ValueError as e:
        raise TemplateError(str(e)) from None
    if name == "chat" and not marks_assistant(tokenizer):
        try:
            patched = get_training_chat_template(tokenizer)
        except Exception as e:  # noqa: BLE001 - trl raises on templates it does not know
            log.warning(
                "the chat template marks no assistant turns and trl has no training version of it "
                "(%s): training on the last assistant turn of each example only",
                e,
            )
        else:
            if patched:
                tokenizer.chat_template = patched
    return name


def marks_assistant(tokenizer: Any) -> bool:
    """Whether the template marks assistant turns ({% generation %}): assistant-only loss on
    every assistant turn; else prompt-completion loss on the last one."""
    template = getattr(tokenizer, "chat_template", None)
    return bool(template) and has_generation_markers(template)


def render_prompt(messages: list[dict] | str, tokenizer: Any, template: Template = "auto") -> str:
    """The generation prompt for `messages` (or one user prompt), matching training exactly."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    training_template(tokenizer, template)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _last_turn(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    i = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:i], messages[i : i + 1]


def trl_record(example: Example, tokenizer: Any) -> dict[str, Any]:
    """The example as trl would render it itself: conversational ``messages`` (assistant-only
    loss), a conversational ``prompt``/``completion`` pair (template without assistant markers),
    a standard ``prompt``/``completion`` pair, or language-modeling ``text``. Training passes
    trl the tokens `tokenize_example` renders (input_ids + labels, which trl keeps as they
    are); tests check that both renderings agree where trl's joint tokenization is exact."""
    if example.fmt == "text":
        return {"text": example.messages[0]["content"]}
    if example.fmt == "completion":
        return {
            "prompt": example.messages[0]["content"],
            "completion": example.messages[1]["content"],
        }
    if marks_assistant(tokenizer):
        return {"messages": example.messages}
    prompt, completion = _last_turn(example.messages)
    return {"prompt": prompt, "completion": completion}


def _chat_ids(tokenizer: Any, messages: list[dict], **kw: Any) -> dict[str, Any]:
    return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kw)


def tokenize_example(example: Example, tokenizer: Any) -> Tokenized:
    """Token ids and labels of one example (untruncated), rendered as trl renders it (see
    `trl_record`): the chat template with the assistant mask, the prompt-completion pair with
    loss after the prompt, or plain text + eos with loss on every token."""
    if example.fmt == "text":
        text = example.messages[0]["content"]
        eos = tokenizer.eos_token or ""
        ids = list(tokenizer(text if text.endswith(eos) else text + eos)["input_ids"])
        labels = list(ids)
    elif example.fmt == "completion":
        head = encode_prompt(tokenizer, example.messages[0]["content"])
        tail = list(
            tokenizer(example.messages[1]["content"], add_special_tokens=False)["input_ids"]
        )
        if tokenizer.eos_token_id is not None:
            tail.append(tokenizer.eos_token_id)
        ids = head + tail
        labels = [IGNORE_INDEX] * len(head) + tail
    elif marks_assistant(tokenizer):
        out = _chat_ids(tokenizer, example.messages, return_assistant_tokens_mask=True)
        ids = list(out["input_ids"])
        labels = [
            t if m else IGNORE_INDEX for t, m in zip(ids, out["assistant_masks"], strict=True)
        ]
    else:
        prompt, completion = _last_turn(example.messages)
        head = _chat_ids(tokenizer, prompt, add_generation_prompt=True)["input_ids"]
        ids = list(_chat_ids(tokenizer, prompt + completion)["input_ids"])
        n = common_prefix_length(list(head), ids)
        labels = [IGNORE_INDEX] * n + ids[n:]
    if labels:
        labels[0] = IGNORE_INDEX  # never predicted from inside its own sample
    return Tokenized(ids, labels, example.source, len(ids))


def tokenize_examples(
    examples: list[Example], tokenizer: Any, max_length: int, *, warn: bool = True
) -> tuple[list[Example], list[Tokenized], TokenizeStats]:
    """Render, mask and right-truncate to `max_length` (the tokenizer's template must be set:
    `training_template`); return the kept examples, their tokens and the stats.

    Examples with no loss-carrying token left after truncation (the response lies entirely
    past the window) are dropped, counted in the stats, and reported with one warning.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    stats = TokenizeStats(max_length=max_length)
    kept: list[Example] = []
    out: list[Tokenized] = []
    for ex in examples:
        t = tokenize_example(ex, tokenizer)
        stats.n_in += 1
        stats.lengths.append(t.full_length)
        if t.full_length > max_length:
            t = Tokenized(t.input_ids[:max_length], t.labels[:max_length], t.source, t.full_length)
            if t.n_loss:
                stats.n_truncated += 1
        if t.n_loss == 0:
            stats.dropped.append(t.source)
            continue
        kept.append(ex)
        out.append(t)
    stats.n_kept = len(out)
    if stats.dropped and warn:
        msg = (
            f"{stats.n_dropped} of {stats.n_in} examples dropped: their response lies entirely past "
            f"max_length={max_length} (first: {stats.dropped[0]}); raise max_length or shorten prompts"
        )
        log.warning(msg)
        warnings.warn(msg, DroppedByTruncationWarning, stacklevel=2)
    return kept, out, stats


def format_counts(examples: list[Example]) -> dict[str, int]:
    return dict(Counter(e.fmt for e in examples))
