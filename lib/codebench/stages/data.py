"""Stage 01_build_data: raw code -> checked input/output-prediction SFT data (CodeI/O, CodeI/O++).

`run(ctx, cfg)` picks the prediction model (`prediction_backend`: the run's base model by
default), runs the resumable build (`codebench.codeio.pipeline.build`) into `runs/<name>/data/`
with its summary in `results/build_data.json`, and returns the funnel and drop tables, the
saved figures (`codebench.plots.data`) and summary lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from codebench import results
from codebench.params import DataSection, StageContext
from codebench.records import read_jsonl
from codebench.runs import model_content_key

SAMPLE_FILES = ("ios.jsonl", "verified.jsonl", "sft.jsonl")


@dataclass
class DataResult:
    """What stage 01 produced: the build summary (results/build_data.json), the prediction
    model's id (None: stopped after the prompts), tables (records per step, drops by stage
    and reason, statuses by turn and direction: None before any prediction), the saved figures
    (None: nothing to draw), the first record of a few stage files, and summary lines."""

    summary: results.BuildDataResults
    model_id: str | None
    funnel: pd.DataFrame
    drops: pd.DataFrame
    statuses: pd.DataFrame | None
    figures: dict[str, Path | None]
    samples: dict[str, str]
    lines: list[str]


def run(ctx: StageContext, cfg: DataSection) -> DataResult:
    """What 01_build_data.ipynb runs."""
    from codebench.codeio import pipeline
    from codebench.plots import data as dplots

    backend, model_id = prediction_backend(cfg, ctx.run, ctx.device)
    print(f"prediction model: {model_id or 'none (stopping after the prompts)'}")
    written = pipeline.build(
        cfg,
        ctx.run.data,
        data_dir=ctx.data_dir,
        seed=ctx.seed,
        backend=backend,
        model_id=model_id,
        result_file=ctx.run.result_file("build_data"),
    )
    summary = results.BuildDataResults.model_validate(written)
    return DataResult(
        summary,
        model_id,
        funnel=pd.DataFrame({"records": summary.funnel}).T,
        drops=drops_table(summary),
        statuses=statuses_table(summary),
        figures=dplots.save_all(summary, ctx.figures_dir),
        samples=first_records(ctx.run.data),
        lines=summary_lines(summary, ctx.run.result_file("build_data")),
    )


def drops_table(summary: results.BuildDataResults) -> pd.DataFrame:
    """Dropped records by stage and reason, most first within a stage."""
    drops = pd.DataFrame(
        [
            {"stage": s, "reason": r, "records": n}
            for s, by in summary.drop_reasons.items()
            for r, n in by.items()
        ],
        columns=["stage", "reason", "records"],
    )
    if not len(drops):
        return drops
    return drops.sort_values(["stage", "records"], ascending=[True, False]).set_index(
        ["stage", "reason"]
    )


def statuses_table(summary: results.BuildDataResults) -> pd.DataFrame | None:
    """Verification statuses (rows) by (turn, direction) columns; None before any prediction."""
    if not summary.statuses:
        return None
    return (
        pd.DataFrame(
            {(t, d): c for t, by in summary.statuses.items() if t != "final" for d, c in by.items()}
        )
        .fillna(0)
        .astype(int)
    )


def first_records(data: Path, files: tuple[str, ...] = SAMPLE_FILES, chars: int = 600) -> dict:
    """The first record of each stage file that exists, as JSON cut at `chars` characters."""
    out = {}
    for name in files:
        path = Path(data) / name
        if path.exists():
            rec = next(iter(read_jsonl(path)), None)
            if rec is not None:
                out[name] = json.dumps(rec, ensure_ascii=False)[:chars] + " ..."
    return out


def summary_lines(summary: results.BuildDataResults, result_file: Path) -> list[str]:
    """The funnel in three lines: records per step, predictions and revisions, reproduction."""
    f, counts = summary.funnel, summary.counts
    lines = [
        f"{f['raw']} source records -> {f['unified']} unified -> {f['decontaminated']} decontaminated -> {f['with_io']} with checked I/O "
        f"({counts['pairs']} pairs) -> {f['prompts']} training prompts, {counts['heldout_prompts']} held out"
    ]
    if "predicted" in f:
        lines.append(
            f"{f['predicted']} predicted: {f['verified_turn1']} verified in turn 1, {f['fixed_turn2']} fixed in turn 2, "
            f"{summary.truncated_turn1} truncated; {f['sft']} SFT records, {counts['sft_plain']} plain"
        )
    lines.append(f"reproduction of stored CodeI/O outputs: {summary.reproduction}")
    lines.append(f"summary: {result_file} ({summary.seconds} s)")
    return lines


def prediction_backend(cfg: Any, run: Any, device: str = "cpu") -> tuple[Any, str | None]:
    """The prediction backend the parameters ask for, and an id naming its model.

    backend 'none' -> (None, None). 'hf': `cfg.model` is a variant of `run` ('base' is the run's
    base model from 00_base_model), a local path or a hub id, loaded with `codebench.models.load`
    and wrapped in `codebench.generate.make_backend('hf', ...)`. Other kinds ('openai', 'vllm')
    get `cfg.model` and `cfg.backend_options` as they are.
    """
    if cfg.backend == "none":
        return None, None
    from codebench import generate, models

    if cfg.backend != "hf":
        return generate.make_backend(
            cfg.backend, cfg.model, **cfg.backend_options
        ), f"{cfg.backend}:{cfg.model}"
    spec = cfg.model
    folder = Path(run.model_dir(spec)) if "/" not in spec else None
    target = str(folder) if folder is not None and folder.is_dir() else spec
    model, tok = models.load(target, device, run=run)
    options = {"batch_size": cfg.batch_size, **cfg.backend_options}
    resolved = models.resolve(target, run)
    local = Path(resolved)
    # a local model is named by its content, not its path: a retrained base in the same
    # folder changes the id, so the build's fingerprint drops the old model's predictions
    name = f"{spec}@{model_content_key(local)}" if local.is_dir() else resolved
    return generate.make_backend("hf", model, tokenizer=tok, **options), f"hf:{name}"
