"""Figures of the 01_build_data stage, as functions of its summary (results/build_data.json,
read through `codebench.results.BuildDataResults`).

Each function returns a matplotlib Figure (or None when there is nothing to draw); save it
with `codebench.plots.savefig`. `save_all` draws and saves every figure.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from codebench.plots import savefig
from codebench.results import BuildDataResults

FUNCTION_STEPS = (
    ("raw", "source records"),
    ("unified", "unified functions"),
    ("decontaminated", "after decontamination"),
    ("with_io", "with checked I/O"),
)
SAMPLE_STEPS = (
    ("prompts", "training prompts"),
    ("predicted", "predicted (turn 1)"),
    ("verified_turn1", "verified in turn 1"),
    ("fixed_turn2", "fixed in turn 2"),
    ("sft", "SFT records"),
)
STATUS_COLORS = {
    "success": "#2ca02c",
    "wrong": "#d62728",
    "no-answer": "#7f7f7f",
    "truncated": "#bcbd22",
    "exception": "#ff7f0e",
    "timeout": "#9467bd",
}


def _bars(ax, labels: list[str], values: list[int], color: str, percent: bool = False) -> None:
    """Horizontal bars, first on top, each labelled with its count (and % of the first bar)."""
    y = np.arange(len(labels))[::-1]
    ax.barh(y, values, color=color)
    ax.set_yticks(y, labels)
    top = max(values + [1])
    first = values[0] if values else 0
    for yi, v in zip(y, values, strict=True):
        text = f"{v:,}" + (f" ({v / first:.0%})" if percent and first else "")
        ax.text(v + top * 0.01, yi, text, va="center", fontsize=8)
    ax.set_xlim(0, top * 1.3)


def sft_mix(summary: BuildDataResults) -> str:
    """How the SFT records were made, from the summary's `assembly` counts, e.g.
    '32 SFT records: 0 verified in turn 1, 0 fixed in turn 2, 32 gold fallback'."""
    f = summary.funnel
    sft = {k.split(":", 1)[1]: v for k, v in summary.assembly.items() if k.startswith("sft:")}
    if "sft" not in f:
        return ""
    gold = sum(v for k, v in sft.items() if "gold" in k)
    parts = [
        f"{int(f.get('verified_turn1', 0))} verified in turn 1",
        f"{int(f.get('fixed_turn2', 0))} fixed in turn 2",
    ]
    if sft:
        parts.append(f"{gold} gold fallback (the executed answer, as never solved)")
    text = f"{int(f['sft'])} SFT records: " + ", ".join(parts)
    why = turn1_failures(summary)
    if why:
        text += f"\nturn 1 answers: {why}"
    fam = summary.family_sft
    if fam.get("kept"):
        text += (
            f"\n+ {int(fam['kept']):,} pyfamilies training functions as prompt-completion SFT records "
            f"({int(fam.get('removed', 0))} removed by decontamination; no evaluation pair)"
        )
    return text


STATUS_WHY = {
    "no-answer": "no ```json answer block",
    "truncated": "cut at max_new_tokens",
    "wrong": "a wrong value",
    "exception": "an input that raised",
    "timeout": "an input that timed out",
}


def turn1_failures(summary: BuildDataResults) -> str:
    """Why turn-1 answers failed, from the summary's statuses, e.g. '30 with no ```json
    answer block, 2 wrong'."""
    counts: dict[str, int] = {}
    for by in summary.statuses.get("turn1", {}).values():
        for status, n in by.items():
            if status != "success":
                counts[status] = counts.get(status, 0) + int(n)
    order = sorted(counts, key=lambda s: -counts[s])
    return ", ".join(f"{counts[s]} {STATUS_WHY.get(s, s)}" for s in order if counts[s])


def funnel(summary: BuildDataResults) -> plt.Figure | None:
    """Two panels, each with its own denominator: functions (raw -> unified -> decontaminated ->
    with I/O, % of the source records) and prediction samples (prompts -> predicted -> verified
    in turn 1 -> fixed in turn 2 -> SFT records, % of the training prompts), and how the SFT
    records were made."""
    f = summary.funnel
    if not f:
        return None
    fsteps = [(label, int(f[k])) for k, label in FUNCTION_STEPS if k in f]
    ssteps = [(label, int(f[k])) for k, label in SAMPLE_STEPS if k in f]
    panels = [p for p in ((fsteps, "functions", "#1f77b4", "% of source records"),
                          (ssteps, "prediction samples (training split)", "#2ca02c",
                           "% of training prompts")) if p[0]]  # fmt: skip
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.3), squeeze=False)
    for ax, (steps, title, color, pct) in zip(axes[0], panels, strict=True):
        _bars(ax, [a for a, _ in steps], [b for _, b in steps], color, percent=True)
        ax.set_title(title)
        ax.set_xlabel(f"count ({pct})")
    mix = sft_mix(summary)
    fig.suptitle("CodeI/O data funnel", fontsize=11)
    fig.tight_layout()
    if mix:
        fig.text(0.5, -0.02, mix, ha="center", va="top", fontsize=9)
    return fig


def drop_reasons(summary: BuildDataResults) -> plt.Figure | None:
    """Horizontal bars: why records were dropped, per stage (unify, decontam, I/O generation)."""
    rows = [
        (f"{stage}: {reason}", n)
        for stage, by in summary.drop_reasons.items()
        for reason, n in by.items()
        if n
    ]
    if not rows:
        return None
    order = {"unify": 0, "decontam": 1, "io": 2}
    rows.sort(key=lambda r: (order.get(r[0].split(":")[0], 3), -r[1]))
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.2))
    _bars(ax, [r[0] for r in rows], [r[1] for r in rows], "#d62728")
    ax.set_xlabel("records dropped")
    ax.set_title("drop reasons")
    fig.tight_layout()
    return fig


def statuses(summary: BuildDataResults) -> plt.Figure | None:
    """Stacked bars: verification statuses by direction, turn 1 and turn 2 (revisions)."""
    st = summary.statuses
    groups = [
        (f"{d}\nturn {t[-1]}", counts)
        for t in ("turn1", "turn2")
        for d, counts in sorted((st.get(t) or {}).items())
    ]
    if not groups:
        return None
    names = list(STATUS_COLORS) + sorted({s for _, c in groups for s in c} - set(STATUS_COLORS))
    fig, ax = plt.subplots(figsize=(1.3 * len(groups) + 2.5, 3.4))
    x = np.arange(len(groups))
    bottom = np.zeros(len(groups))
    for s in names:
        vals = np.array([c.get(s, 0) for _, c in groups], dtype=float)
        if vals.any():
            ax.bar(x, vals, bottom=bottom, label=s, color=STATUS_COLORS.get(s))
            bottom += vals
    ax.set_xticks(x, [g for g, _ in groups])
    ax.set_ylabel("samples")
    ax.set_title("verification status by direction")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def save_all(summary: BuildDataResults, figures_dir: str | os.PathLike) -> dict[str, Path | None]:
    """Draw and save every figure of the stage; None for figures with nothing to draw."""
    out: dict[str, Path | None] = {}
    for name, fn in (
        ("data_funnel", funnel),
        ("data_drop_reasons", drop_reasons),
        ("data_statuses", statuses),
    ):
        fig = fn(summary)
        out[name] = savefig(fig, figures_dir, name) if fig is not None else None
        if fig is not None:
            plt.close(fig)
    return out
