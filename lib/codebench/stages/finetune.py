"""Stage 02_finetune: supervised fine-tuning of the base model, then GRPO when the profile asks.

`run(ctx, cfg)`: the job (`train.make_job`: base model and data resolved, clear errors), the
data (`train.prepare_data`: template, completion-only masks, truncation counts, split,
packing), the mask inspector's rendering of one example, training in this process
(`train.finetune`) or through `accelerate launch` (`train.launch`, when `distributed` is set),
and the figures. With `method: grpo` the section's LoRA SFT runs first (`sft_section`: the
'finetuned' variant, the SFT row of the report), then GRPO (`run_grpo`, `codebench.train.grpo`).
Writes models/lora, models/finetuned, results/finetune.json (and for GRPO models/<variant>-lora,
models/<variant>, results/<variant>.json and its rewards log).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codebench import results
from codebench.params import FinetuneSection, StageContext


@dataclass
class FinetuneResult:
    """What stage 02 produced: the job, the prepared data's summary, the training result
    (results/finetune.json), the saved figures, the mask inspector's HTML and text for one
    example, summary lines, and the GRPO result (results/<variant>.json) for `method: grpo`."""

    job: Any
    data: dict
    train: results.FinetuneResults
    figures: dict[str, Path]
    mask_html: str
    mask_text: str
    lines: list[str] = field(default_factory=list)
    grpo: results.GRPOResults | None = None


def sft_section(cfg: FinetuneSection) -> FinetuneSection:
    """The finetune section as the SFT part of stage 02 uses it: method grpo trains the
    section's LoRA SFT first (the 'finetuned' variant, the SFT row of the report)."""
    return cfg.model_copy(update={"method": "lora"}) if cfg.method == "grpo" else cfg


def run(
    ctx: StageContext,
    cfg: FinetuneSection,
    *,
    log: Callable[[str], None] = print,
    grpo_callbacks: Sequence[Any] = (),
) -> FinetuneResult:
    """What 02_finetune.ipynb runs. Each summary line is logged as soon as it is known."""
    from codebench import train
    from codebench.plots import savefig
    from codebench.plots import train as tplots

    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        log(line)

    sft = sft_section(cfg)
    job = train.make_job(ctx, sft)
    data = train.prepare_data(job)
    s = data.summary()
    say(f"{s['records']} records {s['formats']} from {job.data_path}")
    say(
        f"template: {s['template']}; train {s['train_examples']} examples -> {s['train_rows']} rows "
        f"(packing efficiency {s['packing_efficiency']:.0%}), validation {s['val_examples']}"
    )
    say(
        f"max_length {s['max_length']}: {s['n_truncated']} truncated, {s['n_dropped']} dropped (response cut away)"
    )
    figures = {
        "finetune_lengths": savefig(
            tplots.length_histogram(
                data.stats.lengths, sft.max_length, n_dropped=data.stats.n_dropped
            ),
            ctx.figures_dir,
            "finetune_lengths",
        )
    }
    sample = (data.val or data.train)[0]
    pairs = train.mask_tokens(sample, data.tokenizer)
    mask_html, mask_text = (
        train.mask_html(pairs, title=sample.source),
        train.mask_text(pairs)[-300:],
    )

    written = train.finetune(job, data=data) if sft.distributed == "none" else train.launch(job)
    result = results.FinetuneResults.model_validate(written)  # results/finetune.json
    log_history = result.log_history
    figures |= {
        "finetune_loss": savefig(tplots.loss_curves(log_history), ctx.figures_dir, "finetune_loss"),
        "finetune_lr": savefig(
            tplots.lr_curve(log_history, result.expected_lr), ctx.figures_dir, "finetune_lr"
        ),
        "finetune_ppl": savefig(
            tplots.perplexity_bars(result.val_ppl_before, result.val_ppl_after),
            ctx.figures_dir,
            "finetune_ppl",
        ),
    }
    for line in train_lines(result, ctx.run.result_file("finetune")):
        say(line)
    grpo = None
    if cfg.method == "grpo":
        grpo, grpo_figures = run_grpo(ctx, cfg, callbacks=grpo_callbacks)
        figures |= grpo_figures
        for line in grpo_lines(grpo):
            say(line)
    return FinetuneResult(job, s, result, figures, mask_html, mask_text, lines, grpo)


def train_lines(result: results.FinetuneResults, result_file: Path) -> list[str]:
    """The training run in a few lines: method, device, steps, speed, schedule, perplexity."""
    t = result.train
    ppl = [
        f"{p:.3f}" if p is not None else "n/a"
        for p in (result.val_ppl_before, result.val_ppl_after)
    ]
    return [
        f"method {result.method} on {result.device} ({result.dtype}), attention {result.attention}, "
        f"packing check max |diff| {result.packing_check_max_abs_diff}",
        f"{t['steps']} steps in {t['seconds']:.1f}s ({t['cpu_seconds']:.1f}s CPU), {t['tokens_per_second']} real tokens/s, "
        f"train loss {t['train_loss']:.4f}"
        + (f", resumed from {result.resumed_from}" if result.resumed_from else ""),
        f"lr schedule {result.schedule}",
        f"validation perplexity (response tokens) {ppl[0]} -> {ppl[1]}",
        f"saved: {result.artifacts}",
        f"results: {result_file}",
    ]


def run_grpo(
    ctx: StageContext, cfg: FinetuneSection, *, callbacks: Sequence[Any] = ()
) -> tuple[results.GRPOResults, dict[str, Path]]:
    """The GRPO part of stage 02 (`finetune.method: grpo`): GRPO per `cfg.grpo` from
    `cfg.grpo.base` ('base', or 'finetuned' = the LoRA SFT result this stage just wrote), with
    the stage's seed, device and data folder. Writes models/<variant>-lora, models/<variant>,
    results/<variant>.json and the rewards log, and the figures grpo_reward / grpo_throughput
    under the stage's figures folder. Returns results/<variant>.json (through its schema) and
    the figures."""
    if cfg.method != "grpo":
        raise ValueError(f"finetune.method is {cfg.method!r}, not 'grpo'")
    from codebench.plots import grpo as gplots
    from codebench.plots import savefig
    from codebench.train.grpo import GRPOSettings, grpo_finetune

    settings = GRPOSettings(**cfg.grpo.model_dump())
    written = grpo_finetune(
        ctx.run,
        settings,
        seed=ctx.seed,
        device=ctx.device,
        data_dir=ctx.data_dir,
        callbacks=callbacks,
    )
    result = results.GRPOResults.model_validate(written)
    figures = {
        "grpo_reward": savefig(gplots.reward_curve(result.curve), ctx.figures_dir, "grpo_reward"),
        "grpo_throughput": savefig(
            gplots.reward_throughput(result.curve), ctx.figures_dir, "grpo_throughput"
        ),
    }
    return result, figures


def grpo_lines(g: results.GRPOResults) -> list[str]:
    """The GRPO run in a few lines: tasks kept and dropped, steps, pass rate, artifacts."""
    tk, tr = g.tasks, g.train
    return [
        f"{tk['used']} training tasks of {tk['rows']} ({len(tk.get('contaminated', []))} dropped by "
        f"decontamination, {len(tk.get('reference_failed', []))} whose reference fails)",
        f"{tr['steps']} GRPO steps, {tr['completions']} completions scored in {tr['seconds']:.1f}s; "
        f"pass rate {g.curve[0]['pass_rate']:.2f} at the first step, {g.curve[-1]['pass_rate']:.2f} at the last",
        f"saved: {g.artifacts}; rewards log: {g.rewards_log}",
    ]
