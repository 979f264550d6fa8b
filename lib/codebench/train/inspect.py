"""Mask inspector: which tokens of a training sample carry loss.

`mask_tokens` returns (token text, has_loss) pairs; `mask_text` renders them as plain text
with loss-carrying runs in ⟦...⟧; `mask_html` as coloured HTML for a notebook
(`IPython.display.HTML(mask_html(...))`): green = learned (response), grey = context (prompt).
"""

from __future__ import annotations

import html
from typing import Any

from codebench.train.data import IGNORE_INDEX, Tokenized

LOSS_STYLE = "background:#c8f7c5;color:#0b3d0b"
CONTEXT_STYLE = "background:#eeeeee;color:#555555"


def mask_tokens(sample: Tokenized, tokenizer: Any) -> list[tuple[str, bool]]:
    """(decoded token, carries loss) for every token of a sample, as SFTTrainer trains on it."""
    return [
        (tokenizer.decode([tid]), lab != IGNORE_INDEX)
        for tid, lab in zip(sample.input_ids, sample.labels, strict=True)
    ]


def _runs(pairs: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for text, loss in pairs:
        if out and out[-1][1] == loss:
            out[-1] = (out[-1][0] + text, loss)
        else:
            out.append((text, loss))
    return out


def mask_text(pairs: list[tuple[str, bool]]) -> str:
    """Plain-text rendering: loss-carrying runs wrapped in ⟦ ⟧."""
    return "".join(f"⟦{t}⟧" if loss else t for t, loss in _runs(pairs))


def mask_html(pairs: list[tuple[str, bool]], *, title: str | None = None) -> str:
    """Coloured HTML rendering, one span per token (hover shows the token's index)."""
    n_loss = sum(1 for _, loss in pairs if loss)
    head = (
        f"<div style='font:12px sans-serif;margin:4px 0'>{html.escape(title or '')} "
        f"{len(pairs)} tokens, {n_loss} carry loss "
        f"<span style='{LOSS_STYLE};padding:0 4px'>loss</span> "
        f"<span style='{CONTEXT_STYLE};padding:0 4px'>no loss</span></div>"
    )
    spans = []
    for i, (tok, loss) in enumerate(pairs):
        text = html.escape(tok).replace("\n", "↵<br>") or "∅"
        spans.append(
            f"<span title='{i}' style='{LOSS_STYLE if loss else CONTEXT_STYLE};"
            f"border-right:1px solid #fff'>{text}</span>"
        )
    body = "".join(spans)
    return (
        f"{head}<div style='font:12px monospace;white-space:pre-wrap;line-height:1.6'>{body}</div>"
    )
