"""Figures of stage 02_finetune, as functions of the results dict (results/finetune.json)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt

from codebench.results import FinetuneResults


def _series(log_history: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(h["step"], h[key]) for h in log_history if key in h and "step" in h]
    return [p[0] for p in pts], [p[1] for p in pts]


def loss_curves(log_history: Sequence[dict], *, title: str = "Fine-tuning loss") -> plt.Figure:
    """Training loss per logged step and validation loss per evaluation."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs, ys = _series(log_history, "loss")
    ax.plot(xs, ys, marker=".", label="train")
    xs, ys = _series(log_history, "eval_loss")
    if xs:
        ax.plot(xs, ys, marker="o", label="validation")
    ax.set(xlabel="optimizer step", ylabel="loss (response tokens)", title=title)
    ax.legend()
    return fig


def lr_curve(
    log_history: Sequence[dict],
    expected: Sequence[float] | None = None,
    *,
    title: str = "Learning rate",
) -> plt.Figure:
    """Logged learning rate per step, over the configured schedule (`expected[s]` = lr after s steps).

    The Trainer logs at step s the rate used for that step, i.e. `expected[s - 1]`.
    """
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if expected is not None:
        ax.plot(
            range(1, len(expected)),
            list(expected)[:-1],
            color="0.6",
            lw=3,
            alpha=0.6,
            label="configured schedule",
        )
    xs, ys = _series(log_history, "learning_rate")
    ax.plot(xs, ys, marker=".", lw=1, label="trainer (logged)")
    ax.set(xlabel="optimizer step", ylabel="learning rate", title=title)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.legend()
    return fig


def length_histogram(
    lengths: Sequence[int],
    max_length: int,
    *,
    n_dropped: int | None = None,
    title: str = "Example length (tokens)",
) -> plt.Figure:
    """Full (untruncated) token lengths with the max_length cut-off marked."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    if lengths:
        ax.hist(lengths, bins=min(50, max(5, len(lengths) // 5)), color="#4c72b0", alpha=0.85)
    ax.axvline(max_length, color="#c44e52", ls="--", label=f"max_length = {max_length}")
    over = sum(1 for n in lengths if n > max_length)
    note = f"{over} of {len(lengths)} longer than max_length"
    if n_dropped is not None:
        note += f", {n_dropped} dropped (no response left)"
    ax.set(xlabel="tokens", ylabel="examples", title=f"{title}\n{note}")
    ax.legend()
    return fig


def perplexity_bars(
    before: float | None,
    after: float | None,
    *,
    title: str = "Validation perplexity (response tokens)",
) -> plt.Figure:
    """Validation perplexity of the base model and of the fine-tuned model."""
    fig, ax = plt.subplots(figsize=(4.2, 3.4))
    labels, values = ["before", "after"], [before or 0.0, after or 0.0]
    bars = ax.bar(labels, values, color=["#8c8c8c", "#55a868"])
    for b, v in zip(bars, values, strict=True):
        ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom")
    ax.set(ylabel="perplexity", title=title)
    return fig


def all_figures(result: FinetuneResults) -> dict[str, plt.Figure]:
    """Every 02_finetune figure from results/finetune.json, keyed by file name."""
    return {
        "finetune_loss": loss_curves(result.log_history),
        "finetune_lr": lr_curve(result.log_history, result.expected_lr),
        "finetune_lengths": length_histogram(
            result.lengths,
            result.data.get("max_length", 0),
            n_dropped=result.data.get("n_dropped"),
        ),
        "finetune_ppl": perplexity_bars(result.val_ppl_before, result.val_ppl_after),
    }
