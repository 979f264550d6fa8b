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

from codebench.plots import all_zero, message_figure, savefig, shorten

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


def mark_zeros(ax, xs, vals, fontsize: float = 7) -> None:
    """Write '0' on bars of height 0, so a zero reads as a measured zero, not a missing bar."""
    for x, v in zip(xs, vals, strict=True):
        if v == 0:
            ax.text(x, 0.01, "0", ha="center", va="bottom", fontsize=fontsize, color="0.3")


def _all_zero_message(df: pd.DataFrame, benches: list[str], variants: list[str]) -> str:
    probs = df["problems"].dropna() if "problems" in df else pd.Series(dtype=float)
    lo, hi = (int(probs.min()), int(probs.max())) if len(probs) else (0, 0)
    n = f" ({lo}{'' if lo == hi else f'-{hi}'} problems each)" if len(probs) else ""
    return (
        f"Every pass@k is 0: no variant ({', '.join(variants)}) solved any problem of "
        f"{', '.join(benches)}{n}.\nThe canaries in report.md show whether the harness "
        "itself works (references pass, wrong answers fail)."
    )


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
    if all_zero(df["value"].tolist()):
        fig = message_figure(
            "pass@k per benchmark and variant",
            _all_zero_message(df, benches, variants),
        )
        path = savefig(fig, figures_dir, name)
        plt.close(fig)
        return path
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
            mark_zeros(ax, x, vals)
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
    fig, ax = plt.subplots(figsize=(7.5, 0.26 * len(wide) + 1.2))
    left = np.zeros(len(wide))
    for o in order:
        ax.barh(wide.index, wide[o], left=left, label=o, color=OUTCOME_COLORS.get(o))
        left += wide[o].to_numpy()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of samples")
    ax.invert_yaxis()
    ax.margins(y=0.01)
    ax.tick_params(axis="y", labelsize=8)
    ax.legend(fontsize=8, title="outcome", loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("sample outcomes")
    path = savefig(fig, figures_dir, name)
    plt.close(fig)
    return path


def _short_ids(ids: list[str], width: int = 18) -> tuple[list[str], str]:
    """Problem ids without their common prefix, each at most `width` characters; and the prefix."""
    import os.path

    texts = [str(i) for i in ids]
    prefix = os.path.commonprefix(texts) if len(texts) > 1 else ""
    # cut the prefix back to a separator, so 'HumanEval/1' and 'HumanEval/10' keep their numbers
    cut = max(prefix.rfind(c) for c in "/_:-.") + 1 if prefix else 0
    prefix = prefix[:cut]
    return [shorten(t[len(prefix) :] or t, width) for t in texts], prefix


def problem_heatmap(
    per_problem: pd.DataFrame,
    figures_dir: str | os.PathLike,
    name: str = "eval_problems",
    max_problems: int = 60,
) -> Path | None:
    """Pass rate per variant (rows) and problem (columns), one panel per benchmark, stacked.

    Cells are square and the same size in every panel, labels readable (7-8 pt); problem ids
    lose their common prefix (named in the panel title) and long ones are cut in the middle.
    """
    if per_problem is None or per_problem.empty:
        return None
    benches = list(dict.fromkeys(per_problem["benchmark"]))
    variants = _variants(per_problem)
    panels = []
    for b in benches:
        sub = per_problem[per_problem["benchmark"] == b]
        ids = list(dict.fromkeys(sub["task_id"]))
        shown = ids[:max_problems]
        grid = sub.pivot_table(
            index="variant", columns="task_id", values="rate", aggfunc="mean"
        ).reindex(index=variants, columns=shown)
        labels, prefix = _short_ids(shown)
        solved = int((sub.groupby("task_id")["rate"].max() > 0).sum())
        title = f"{b}: {solved} of {len(ids)} problems passed by some variant"
        if len(ids) > len(shown):
            title += f" (first {len(shown)} shown)"
        if prefix:
            title += f"; ids start '{prefix}'"
        panels.append((grid, labels, title))
    # explicit layout in inches: every cell 0.2 in square in every panel, labels 7-8 pt
    cell, gap, title_in = 0.2, 0.2, 0.3
    label_in = [0.07 * max(len(lbl) for lbl in labels) + 0.15 for _, labels, _ in panels]
    left = 0.07 * max(len(str(v)) for v in variants) + 0.35
    cols = max(grid.shape[1] for grid, _, _ in panels)
    title_w = 0.065 * max(len(t) for _, _, t in panels)
    width = left + max(cols * cell + 1.2, title_w)
    rows_in = len(variants) * cell
    height = sum(title_in + rows_in + li + gap for li in label_in) + 0.1
    fig = plt.figure(figsize=(width, height))
    im = None
    top = height - 0.05
    for (grid, labels, title), li in zip(panels, label_in, strict=True):
        y0 = top - title_in - rows_in
        ax = fig.add_axes(
            (left / width, y0 / height, grid.shape[1] * cell / width, rows_in / height)
        )
        im = ax.imshow(
            grid.to_numpy(dtype=float),
            aspect="auto",
            cmap="viridis",
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
        ax.set_yticks(range(len(variants)), variants, fontsize=8)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_title(title, fontsize=9, loc="left")
        ax.grid(False)
        top = y0 - li - gap
    if im is not None:
        bar_h = min(2.5, height - 0.6)
        x = left + cols * cell + 0.3
        cax = fig.add_axes(
            (x / width, (height - 0.35 - bar_h) / height, 0.15 / width, bar_h / height)
        )
        fig.colorbar(im, cax=cax, label="pass rate (c / n)")
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
    title = f"{metric} per language (HumanEval / MultiPL-E)"
    if all_zero(fam["value"].tolist()):
        benches = list(dict.fromkeys(fam["benchmark"]))
        fig = message_figure(title, _all_zero_message(fam, benches, variants))
        path = savefig(fig, figures_dir, name)
        plt.close(fig)
        return path
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
        mark_zeros(ax, x, vals)
    ax.set_xticks(range(len(langs)), [LANGUAGE_NAMES[lang] for lang in langs])
    ax.set_ylim(0, 1)
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend(title="variant", fontsize=8)
    path = savefig(fig, figures_dir, name)
    plt.close(fig)
    return path
