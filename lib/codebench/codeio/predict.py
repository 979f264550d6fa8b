"""Model predictions through any `codebench.generate` Backend, resumable by sample id.

Each prompt's chat messages are rendered with `backend.chat_prompt` (the tokenizer's chat
template, or its documented fallback for base models), generated in batches, and appended
to a `JsonlStore` keyed by id as soon as each batch returns: a killed run continues where
it stopped, without duplicates. Every completion is kept with its `finish_reason`;
``"length"`` (cut off at `max_new_tokens`) is stored as ``truncated: true`` and verified as
such, never dropped silently. A backend exception stops the stage (nothing is recorded for
that batch, so a rerun retries it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codebench.records import JsonlStore


def prediction_record(item: dict, completion: Any, turn: int) -> dict:
    """One predictions.jsonl / revisions.jsonl line."""
    reason = getattr(completion, "finish_reason", "error")
    return {
        "id": item["id"],
        "fid": item["fid"],
        "idx": item["idx"],
        "direction": item["direction"],
        "turn": turn,
        "text": getattr(completion, "text", "") or "",
        "finish_reason": reason,
        "truncated": reason == "length",
        "n_tokens": int(getattr(completion, "n_tokens", 0) or 0),
        "error": getattr(completion, "error", None),
    }


def predict(
    items: list[dict],
    backend: Any,
    gen_cfg: Any,
    store: JsonlStore,
    *,
    turn: int = 1,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Generate one completion per item (`id`, `messages`, ...) not yet in `store`.

    Returns how many were generated now. `progress(n)` is called after each batch.
    """
    todo = [it for it in items if not store.has(store.key_of({"id": it["id"]}))]
    done = 0
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        prompts = [backend.chat_prompt(it["messages"]) for it in batch]
        outs = backend.generate(prompts, gen_cfg)
        if len(outs) != len(batch):
            raise RuntimeError(f"backend returned {len(outs)} results for {len(batch)} prompts")
        store.extend(
            prediction_record(it, samples[0] if samples else None, turn)
            for it, samples in zip(batch, outs, strict=True)
        )
        done += len(batch)
        if progress:
            progress(len(batch))
    return done
