"""Figures of a GRPO run (stage 02 with `finetune.method: grpo`), from `result["curve"]`.

`curve` is results/<variant>.json's per-step list (`codebench.rewards.SandboxReward.history`,
or `codebench.rewards.step_curve` over the rewards log): step, completions, mean_reward,
pass_rate, outcomes, reward_seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt

from codebench.plots import message_figure
from codebench.results import GRPOResults


def _rate(c: Mapping[str, Any], outcome: str) -> float | None:
    n = c.get("completions") or 0
    return (c.get("outcomes") or {}).get(outcome, 0) / n if n else None


def reward_curve(curve: Sequence[Mapping[str, Any]], *, title: str = "") -> plt.Figure:
    """Mean reward, pass rate and malformed share of the sampled completions, per GRPO step."""
    title = title or "GRPO: sandbox reward of the sampled completions per step"
    pts = [c for c in curve if c.get("completions")]
    if not pts:
        return message_figure(title, "no scored completions in this run")
    steps = [c["step"] for c in pts]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    w = max(1, len(pts) // 10)  # each step samples other prompts: a running mean shows the trend
    for key, label, color in (
        ("mean_reward", "mean reward", "C0"),
        ("pass_rate", "pass rate", "C1"),
    ):
        ys = [c[key] for c in pts]
        ax.plot(steps, ys, color=color, lw=0.8, alpha=0.35 if w > 1 else 1.0, marker=".")
        avg = [
            sum(ys[max(0, i - w + 1) : i + 1]) / len(ys[max(0, i - w + 1) : i + 1])
            for i in range(len(ys))
        ]
        ax.plot(steps, avg, color=color, lw=2, label=label + (f" ({w}-step mean)" if w > 1 else ""))
    ax.plot(
        steps, [_rate(c, "malformed") for c in pts], ls=":", color="C2", label="malformed share"
    )
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set(xlabel="GRPO step", ylabel="per-step value", title=title)
    ax.legend(fontsize=8)
    return fig


def reward_throughput(curve: Sequence[Mapping[str, Any]], *, title: str = "") -> plt.Figure:
    """Completions scored per second in the reward call (the sandbox batch), per GRPO step."""
    title = title or "GRPO: reward-call throughput (sandbox, completions/s)"
    pts = [c for c in curve if c.get("completions") and c.get("reward_seconds")]
    if not pts:
        return message_figure(title, "no reward timings in this run (a curve rebuilt from the log)")
    steps = [c["step"] for c in pts]
    rate = [c["completions"] / c["reward_seconds"] for c in pts]
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.plot(steps, rate, marker=".")
    total = sum(c["completions"] for c in pts) / sum(c["reward_seconds"] for c in pts)
    ax.axhline(total, color="grey", ls="--", lw=0.8, label=f"whole run: {total:.0f}/s")
    ax.set(xlabel="GRPO step", ylabel="completions / s", title=title, ylim=(0, None))
    ax.legend(fontsize=8)
    return fig


def report_figures(grpo: Mapping[str, GRPOResults], figures_dir: Any) -> dict[str, Any]:
    """report_grpo_<variant>_reward.png and ..._throughput.png for each GRPO variant."""
    from codebench.plots import savefig

    out = {}
    for v, res in grpo.items():
        curve = res.curve
        title = f"GRPO '{v}': sandbox reward of the sampled completions per step"
        out[f"GRPO {v}: reward per step"] = savefig(
            reward_curve(curve, title=title), figures_dir, f"report_grpo_{v}_reward"
        )
        plt.close("all")
        out[f"GRPO {v}: reward-call throughput"] = savefig(
            reward_throughput(curve), figures_dir, f"report_grpo_{v}_throughput"
        )
        plt.close("all")
    return out
