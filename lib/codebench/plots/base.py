"""Figures of stage 00 (base model): training and held-out loss, learning rate."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt

from codebench.plots import savefig
from codebench.results import BaseModelResults


def _ema(values: list[float], alpha: float = 0.1) -> list[float]:
    out, acc = [], None
    for v in values:
        acc = v if acc is None else (1 - alpha) * acc + alpha * v
        out.append(acc)
    return out


def training_curves(
    record: BaseModelResults, figures_dir: str | os.PathLike, name: str = "base_loss"
) -> Path:
    """Train loss (raw and smoothed), held-out loss and the learning-rate schedule of the tiny model.

    `record`: results/base_model.json of a base trained here (`codebench.tiny.build`).
    """
    h = record.history
    if h is None:
        raise ValueError("training_curves: the base model was loaded, not trained (no history)")
    fig, (ax_loss, ax_lr) = plt.subplots(
        1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [2, 1]}
    )
    ax_loss.plot(
        h["step"], h["train_loss"], color="tab:blue", alpha=0.25, lw=0.8, label="train (per step)"
    )
    ax_loss.plot(
        h["step"], _ema(h["train_loss"]), color="tab:blue", lw=1.6, label="train (smoothed)"
    )
    ax_loss.plot(
        h["eval_step"],
        h["heldout_loss"],
        "o-",
        color="tab:orange",
        ms=3.5,
        lw=1.6,
        label="held-out",
    )
    ppl = record.heldout_perplexity.ppl
    title = f"tiny model: {record.parameters / 1e6:.2f}M params, {(record.tokens_seen or 0) / 1e6:.2f}M tokens"
    if ppl:
        title += f", held-out ppl {ppl:.1f}"
    ax_loss.set(xlabel="step", ylabel="cross-entropy (nats/token)", title=title)
    ax_loss.legend(frameon=False)
    ax_lr.plot(h["step"], h["lr"], color="tab:green")
    ax_lr.set(xlabel="step", ylabel="learning rate", title="schedule (warm-up + cosine)")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    fig.tight_layout()
    return savefig(fig, figures_dir, name)
