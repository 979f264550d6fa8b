"""Figures of stage 04_evaluate, drawn from the tables of `codebench.bench.suite`.

Each function takes a long table, writes one PNG through `plots.savefig` and returns its path
(None when the table holds nothing to draw, so a notebook can say "no data" instead of failing):

- `passk_intervals`   pass@k per benchmark and variant, with the bootstrap intervals;
- `outcome_breakdown` share of samples per outcome (passed, failed, timeout, crashed, ...);
- `problem_heatmap`   per-problem pass rate, problems x variants, one panel per benchmark;
- `language_bars`     pass@1 of the HumanEval family per language (Python, JS, C++, Java, Bash).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from codebench.plots import savefig

OUTCOME_COLORS = {
    "passed": "#2ca02c",
    "failed": "#d62728",
    "timeout": "#ff7f0e",
    "crashed": "#8c564b",
    "out-of-memory": "#9467bd",
    "sandbox-error": "#7f7f7f",
    "toolchain-missing": "#bcbd22",
}
LANGUAGE_NAMES = {
    "python": "Python",
    "js": "JavaScript",
    "cpp": "C++",
    "java": "Java",
    "sh": "Bash",
}


def _variants(df: pd.DataFrame) -> list[str]:
    vs = list(dict.fromkeys(df["variant"]))
    return sorted(vs, key=lambda v: (v != "base", vs.index(v)))


def _k_of(metric: str) -> int:
    return (
        int(metric.split("@", 1)[1])
        if isinstance(metric, str) and "@" in metric and metric.split("@", 1)[1].isdigit()
        else 0
    )


def passk_intervals(
    table: pd.DataFrame, figures_dir: str | os.PathLike, name: str = "eval_passk"
) -> Path | None:
    """Grouped bars: x = benchmark, one bar per variant, one panel per pass@k, 95% CI whiskers."""
    df = (
        table[table["metric"].astype(str).str.startswith("pass@")].dropna(subset=["value"])
        if len(table)
        else table
    )
    if df is None or df.empty:
        return None
    metrics = sorted(df["metric"].unique(), key=_k_of)
    benches = list(dict.fromkeys(df["benchmark"]))
    variants = _variants(df)
    width = 0.8 / max(1, len(variants))
    fig, axes = plt.subplots(
        1,
        len(metrics),
        figsize=(max(4.5, 1.2 * len(benches) * len(metrics) + 2), 3.6),
        squeeze=False,
    )
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = df[df["metric"] == metric]
        for i, v in enumerate(variants):
            rows = [sub[(sub["variant"] == v) & (sub["benchmark"] == b)] for b in benches]
            vals = np.array([r["value"].iloc[0] if len(r) else np.nan for r in rows], dtype=float)
            lo = np.array([r["ci_low"].iloc[0] if len(r) else np.nan for r in rows], dtype=float)
            hi = np.array([r["ci_high"].iloc[0] if len(r) else np.nan for r in rows], dtype=float)
            x = np.arange(len(benches)) + (i - (len(variants) - 1) / 2) * width
            err = np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)])
            ax.bar(x, vals, width, label=v, yerr=np.nan_to_num(err), capsize=3)
        ax.set_xticks(np.arange(len(benches)), benches, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(metric)
        ax.set_ylabel("score (95% bootstrap CI)")
    axes[0][-1].legend(title="variant", fontsize=8, loc="upper right")
    fig.suptitle("pass@k per benchmark and variant")
    path = savefig(fig, figures_dir, name)
    plt.close(fig)
    return path


def outcome_breakdown(
    outcomes: pd.DataFrame, figures_dir: str | os.PathLike, name: str = "eval_outcomes"
) -> Path | None:
    """Stacked horizontal bars: share of samples per outcome, one bar per (variant, benchmark)."""
    if outcomes is None or outcomes.empty:
        return None
    df = outcomes.copy()
    df["label"] = df["variant"].astype(str) + " / " + df["benchmark"].astype(str)
    wide = df.pivot_table(
        index="label", columns="outcome", values="share", aggfunc="sum", fill_value=0.0
    )
    order = [o for o in OUTCOME_COLORS if o in wide.columns] + [
        o for o in wide.columns if o not in OUTCOME_COLORS
    ]
    wide = wide[order]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(wide) + 1.6))
    left = np.zeros(len(wide))
    for o in order:
        ax.barh(wide.index, wide[o], left=left, label=o, color=OUTCOME_COLORS.get(o))
        left += wide[o].to_numpy()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of samples")
    ax.invert_yaxis()
    ax.legend(
        fontsize=8,
        ncol=min(4, len(order)),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18 if len(wide) > 2 else -0.35),
    )
    ax.set_title("sample outcomes")
    path = savefig(fig, figures_dir, name)
    plt.close(fig)
    return path


def problem_heatmap(
    per_problem: pd.DataFrame,
    figures_dir: str | os.PathLike,
    name: str = "eval_problems",
    max_problems: int = 60,
) -> Path | None:
    """Pass rate per problem (rows) and variant (columns), a panel per benchmark."""
    if per_problem is None or per_problem.empty:
        return None
    benches = list(dict.fromkeys(per_problem["benchmark"]))
    variants = _variants(per_problem)
    heights = [
        min(max_problems, per_problem[per_problem["benchmark"] == b]["task_id"].nunique())
        for b in benches
    ]
    panel_w = 2.0 + 0.45 * len(variants)  # room for the problem labels of each panel
    fig, axes = plt.subplots(
        1,
        len(benches),
        figsize=(panel_w * len(benches) + 1.2, 0.18 * max(heights) + 2),
        squeeze=False,
        layout="constrained",
    )
    im = None
    for ax, b in zip(axes[0], benches, strict=True):
        sub = per_problem[per_problem["benchmark"] == b]
        ids = list(dict.fromkeys(sub["task_id"]))[:max_problems]
        grid = sub.pivot_table(
            index="task_id", columns="variant", values="rate", aggfunc="mean"
        ).reindex(index=ids, columns=variants)
        im = ax.imshow(
            grid.to_numpy(dtype=float),
            aspect="auto",
            cmap="viridis",
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
        ax.set_xticks(range(len(variants)), variants, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(ids)), [str(i)[-18:] for i in ids], fontsize=6)
        ax.set_title(b, fontsize=9)
        ax.grid(False)
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="pass rate (c / n)")
    path = savefig(fig, figures_dir, name)
    plt.close(fig)
    return path


def language_bars(
    table: pd.DataFrame,
    figures_dir: str | os.PathLike,
    metric: str = "pass@1",
    name: str = "eval_languages",
) -> Path | None:
    """pass@1 of HumanEval and its MultiPL-E translations, per language and variant."""
    if table is None or table.empty:
        return None
    fam = table[
        (table["metric"] == metric)
        & table["benchmark"].astype(str).str.match(r"^(humaneval|multiple-)")
    ]
    fam = fam.dropna(subset=["value"])
    if fam.empty:
        return None
    langs = [lang for lang in LANGUAGE_NAMES if lang in set(fam["language"])]
    variants = _variants(fam)
    width = 0.8 / max(1, len(variants))
    fig, ax = plt.subplots(figsize=(1.3 * len(langs) + 2.5, 3.4))
    for i, v in enumerate(variants):
        vals, errs = [], [[], []]
        for lang in langs:
            r = fam[(fam["variant"] == v) & (fam["language"] == lang)]
            val = float(r["value"].mean()) if len(r) else np.nan
            vals.append(val)
            errs[0].append(max(0.0, val - float(r["ci_low"].mean())) if len(r) else 0.0)
            errs[1].append(max(0.0, float(r["ci_high"].mean()) - val) if len(r) else 0.0)
        x = np.arange(len(langs)) + (i - (len(variants) - 1) / 2) * width
        ax.bar(x, vals, width, yerr=np.nan_to_num(np.array(errs)), capsize=3, label=v)
    ax.set_xticks(range(len(langs)), [LANGUAGE_NAMES[lang] for lang in langs])
    ax.set_ylim(0, 1)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per language (HumanEval / MultiPL-E)")
    ax.legend(title="variant", fontsize=8)
    path = savefig(fig, figures_dir, name)
    plt.close(fig)
    return path
