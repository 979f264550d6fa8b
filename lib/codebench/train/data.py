"""SFT data: read instruction/chat JSONL, template it, mask prompts, truncate, split.

Accepted line formats (one JSON object per line; the format is decided per line):

- chat:         ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``
                (CodeI/O's ``sft.jsonl``); loss on every assistant turn.
- instruction:  ``{"instruction": str, "output": str}`` (optional ``"input"``, ``"system"``)
- prompt/resp.: ``{"prompt": str, "response": str}`` or ``{"prompt": str, "completion": str}``
- plain text:   ``{"text": str}``: language-model loss on every token (no prompt to mask).

Templating: the tokenizer's chat template when it has one, else the workbench's plain-text
fallback for base models (`codebench.models.FALLBACK_CHAT_FORMAT`, so a fine-tuned model is
prompted at evaluation exactly as it was trained)::

    {system}\\n\\n                       (only when there is a system message)
    ### Instruction:\\n{user}\\n\\n       (no loss)
    ### Response:\\n                   (no loss)
    {assistant}<eos>                   (loss; "\\n\\n" follows when another turn comes)

Each text piece is tokenized on its own and concatenated, so the prompt tokens are exactly
what the same prompt tokenizes to at generation time and the loss mask is exact.
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
    fmt: str  # chat | instruction | prompt-response | prompt-completion | text


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
    elif "prompt" in rec and ("response" in rec or "completion" in rec):
        key = "response" if "response" in rec else "completion"
        pair, fmt = (_text(rec, "prompt", where), _text(rec, key, where)), f"prompt-{key}"
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
def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def resolve_template(tokenizer: Any, template: Template = "auto") -> str:
    """'auto' -> 'chat' when the tokenizer has a chat template, else 'fallback'."""
    if template == "auto":
        return "chat" if has_chat_template(tokenizer) else "fallback"
    if template == "chat" and not has_chat_template(tokenizer):
        raise TemplateError(
            "template='chat' but the tokenizer has no chat template (use 'auto' or 'fallback')"
        )
    if template not in ("chat", "fallback"):
        raise ValueError(f"template must be auto, chat or fallback, got {template!r}")
    return template


def _fallback_segments(messages: list[dict], eos: str) -> list[tuple[str, bool]]:
    from codebench.models import fallback_segments

    return fallback_segments(messages, eos)


def _chat_segments(messages: list[dict], tokenizer: Any, where: str) -> list[tuple[str, bool]]:
    """Split the chat-template rendering into (text, is_assistant) pieces via prefix renders."""

    def render(msgs: list[dict], gen: bool) -> str:
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)

    segs: list[tuple[str, bool]] = []
    done = ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt, full = render(messages[:i], True), render(messages[: i + 1], False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise TemplateError(
                f"{where}: the tokenizer's chat template does not render turn by turn as a prefix of the "
                "whole conversation, so prompt and response cannot be told apart; use template='fallback'"
            )
        segs += [(prompt[len(done) :], False), (full[len(prompt) :], True)]
        done = full
    return segs


def segments(example: Example, tokenizer: Any, template: str) -> list[tuple[str, bool]]:
    """The example as (text, carries_loss) pieces under the resolved template.

    Adjacent pieces with the same flag are joined, so a prompt is tokenized as one string,
    exactly as it is at generation time.
    """
    if example.fmt == "text":
        return [(example.messages[0]["content"] + (tokenizer.eos_token or ""), True)]
    if template == "chat":
        segs = _chat_segments(example.messages, tokenizer, example.source)
    elif not tokenizer.eos_token:
        raise TemplateError("the fallback template needs an eos token; the tokenizer has none")
    else:
        segs = _fallback_segments(example.messages, tokenizer.eos_token)
    joined: list[tuple[str, bool]] = []
    for text, loss in segs:
        if joined and joined[-1][1] == loss:
            joined[-1] = (joined[-1][0] + text, loss)
        elif text:
            joined.append((text, loss))
    return joined


def render_prompt(messages: list[dict] | str, tokenizer: Any, template: Template = "auto") -> str:
    """The generation prompt for `messages` (or one user prompt), matching training exactly."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if resolve_template(tokenizer, template) == "chat":
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    from codebench.models import fallback_prompt

    return fallback_prompt(messages, tokenizer.eos_token or "")


def _adds_bos(tokenizer: Any) -> bool:
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    return (
        bool(with_special)
        and with_special[0] == bos
        and tokenizer("a", add_special_tokens=False)["input_ids"][:1] != [bos]
    )


def tokenize_example(
    example: Example, tokenizer: Any, template: str, *, bos: bool | None = None
) -> Tokenized:
    """Token ids and labels of one example (untruncated); prompt tokens get IGNORE_INDEX."""
    ids: list[int] = []
    labels: list[int] = []
    for text, loss in segments(example, tokenizer, template):
        piece = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        ids += piece
        labels += piece if loss else [IGNORE_INDEX] * len(piece)
    if (_adds_bos(tokenizer) if bos is None else bos) and ids[:1] != [tokenizer.bos_token_id]:
        ids.insert(0, tokenizer.bos_token_id)
        labels.insert(0, IGNORE_INDEX)
    if labels:
        labels[0] = (
            IGNORE_INDEX  # never predicted from inside its own sample; keeps packed samples apart
        )
    return Tokenized(ids, labels, example.source, len(ids))


def tokenize_examples(
    examples: list[Example],
    tokenizer: Any,
    max_length: int,
    template: Template = "auto",
    *,
    warn: bool = True,
) -> tuple[list[Tokenized], TokenizeStats]:
    """Tokenize, mask and right-truncate to `max_length`.

    Examples with no loss-carrying token left after truncation (the response lies entirely
    past the window) are dropped, counted in the stats, and reported with one warning.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    tmpl = resolve_template(tokenizer, template)
    bos = _adds_bos(tokenizer)
    stats = TokenizeStats(max_length=max_length)
    out = []
    for ex in examples:
        t = tokenize_example(ex, tokenizer, tmpl, bos=bos)
        stats.n_in += 1
        stats.lengths.append(t.full_length)
        if t.full_length > max_length:
            t = Tokenized(t.input_ids[:max_length], t.labels[:max_length], t.source, t.full_length)
            if t.n_loss == 0:
                stats.dropped.append(t.source)
                continue
            stats.n_truncated += 1
        if t.n_loss == 0:
            stats.dropped.append(t.source)
            continue
        out.append(t)
    stats.n_kept = len(out)
    if stats.dropped and warn:
        msg = (
            f"{stats.n_dropped} of {stats.n_in} examples dropped: their response lies entirely past "
            f"max_length={max_length} (first: {stats.dropped[0]}); raise max_length or shorten prompts"
        )
        log.warning(msg)
        warnings.warn(msg, DroppedByTruncationWarning, stacklevel=2)
    return out, stats


def format_counts(examples: list[Example]) -> dict[str, int]:
    return dict(Counter(e.fmt for e in examples))
