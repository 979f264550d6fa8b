"""What stage 05_report shows: every stage's results of one run as tables and report.md text.

Inputs (each optional: a profile may run a subset of stages, and a missing or unreadable
file becomes a clear "not run" / "unreadable" entry instead of an error):

- `manifest.json`                         stage status and durations (the runner's)
- `results/base_model.json`               00: the base model (held-out perplexity)
- `results/build_data.json`               01: the CodeI/O data funnel (records per step)
- `results/finetune.json`                 02: training/eval loss curves, final numbers
- `results/compress.json`                 03: one entry per variant: size, latency, perplexity
- `eval/<variant>/<bench>/results.json`   04: metrics (pass@k with intervals, explain scores)
- `models/<variant>/`                     sizes on disk when no stage measured them

Every file is read through its schema (`codebench.results`); one that does not match is
reported as unreadable (a warning naming the file and field), never guessed at.
`codebench.stages.report.run` writes `runs/<name>/report.md` and `figures/<name>/report_*.png`
from these tables.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from codebench import passk, results
from codebench.results import R, ResultsError
from codebench.runs import RunLayout, model_content_key, read_variant_info

STAGE_RESULTS: dict[str, str | None] = {
    "model": "base_model",
    "data": "build_data",
    "finetune": "finetune",
    "compress": "compress",
    "evaluate": None,  # eval/<variant>/<bench>/results.json
}
STAGE_TITLES = {
    "model": "00 base model",
    "data": "01 build data",
    "finetune": "02 fine-tune",
    "compress": "03 compress",
    "evaluate": "04 evaluate",
}
NOT_RUN = "not run"
CANARY_COLUMNS = ["benchmark", "variant", "ref_ok", "ref_n", "wrong_ok", "wrong_n", "ok", "reason"]


@dataclass
class StageSummary:
    """One stage's state in the report: ok, not run, failed or unreadable, with a note."""

    stage: str
    status: str
    source: str | None = None
    note: str = ""
    duration_s: float | None = None


@dataclass
class ReportData:
    """Everything the report shows, as plain tables (pandas) read from one run folder."""

    profile: str
    stages: list[StageSummary]
    evals: pd.DataFrame  # variant, benchmark, metric, value, ci_low, ci_high, problems
    models: pd.DataFrame  # variant, kind, parent, size_mb, latency_ms, perplexity
    funnel: pd.DataFrame  # step, records
    training: pd.DataFrame  # step, series, loss
    manifest: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    eval_status: dict[tuple[str, str], str] = field(default_factory=dict)
    eval_reasons: dict[tuple[str, str], str] = field(default_factory=dict)
    canaries: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CANARY_COLUMNS))
    skipped_variants: dict[str, str] = field(default_factory=dict)  # compress: variant -> why
    data_summary: results.BuildDataResults | None = None  # results/build_data.json
    compress_source: str | None = None  # the model 03 compressed (compress.json source.name)
    grpo: dict[str, results.GRPOResults] = field(default_factory=dict)  # variant -> its results
    # (variant, benchmark) -> {"counts": {task_id: (n, c)}, "settings": "greedy" or "sampled at T=..."}
    eval_detail: dict[tuple[str, str], dict] = field(default_factory=dict)

    def stage(self, name: str) -> StageSummary:
        return next(s for s in self.stages if s.stage == name)


EVAL_COLUMNS = ["variant", "benchmark", "metric", "value", "ci_low", "ci_high", "problems"]

MODEL_COLUMNS = ["variant", "kind", "parent", "size_mb", "latency_ms", "perplexity"]


# --------------------------------------------------------------------------- reading


def _read(path: Path, model: type[R], warnings: list[str]) -> R | None:
    """The results file at `path` through its schema; None (and a warning naming the file)
    when it is unreadable or does not match."""
    try:
        return results.read(path, model)
    except ResultsError as e:
        warnings.append(f"{path}: unreadable ({str(e).removeprefix(f'{path}: ')})")
        return None


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def read_evals(
    run: RunLayout,
    warnings: list[str],
    statuses: dict | None = None,
    reasons: dict | None = None,
    canaries: list | None = None,
    detail: dict | None = None,
) -> pd.DataFrame:
    """Every eval/<variant>/<bench>/results.json (`results.BenchmarkResults`) as long rows
    (one per metric).

    A results.json whose `status` is not 'ok' (skipped, canary-failed, incomplete) is
    recorded in `statuses[(variant, bench)]` so the table can say so. `detail` collects each
    one's per-problem counts and sampling settings (for paired comparisons).
    """
    rows = []
    base = run.root / "eval"
    keys: dict[str, str | None] = {}
    for res in sorted(base.glob("*/*/results.json")) if base.is_dir() else []:
        variant, bench = res.parent.parent.name, res.parent.name
        obj = _read(res, results.BenchmarkResults, warnings)
        if obj is None:
            continue
        model = variant.split("@")[0]  # a named evaluation eval/<variant>@<tag>/
        now = _model_key(run, model, keys) if obj.model_key else None
        if now is not None and now != obj.model_key:
            warnings.append(
                f"{res}: made with other weights of {model!r} (model key {obj.model_key}, "
                f"now {now}); left out of the report"
            )
            continue
        if obj.status != "ok" and statuses is not None:
            statuses[(variant, bench)] = obj.status  # skipped, canary-failed, incomplete
            if reasons is not None and obj.reason:
                reasons[(variant, bench)] = obj.reason
        if canaries is not None and obj.canary is not None:
            canaries.append(_canary_row(variant, bench, obj.canary))
        if detail is not None and obj.status == "ok":
            detail[(variant, bench)] = _eval_detail(obj)
        for metric, m in obj.metrics.items():
            if _finite(m.value) is None:
                continue
            problems = m.problems if m.problems is not None else obj.problems
            rows.append(
                {
                    "variant": variant,
                    "benchmark": bench,
                    "metric": metric,
                    "value": _finite(m.value),
                    "ci_low": _finite(m.ci_low),
                    "ci_high": _finite(m.ci_high),
                    "problems": float(problems) if problems is not None else None,
                }
            )
    return pd.DataFrame(rows, columns=EVAL_COLUMNS)


def _model_key(run: RunLayout, name: str, keys: dict[str, str | None]) -> str | None:
    """The content key of models/<name> now (`runs.model_content_key`; stage 04 stamps each
    results.json with the key of the weights it evaluated), None when the folder is gone.
    `keys` caches one hash per model."""
    if name not in keys:
        folder = run.model_dir(name)
        keys[name] = model_content_key(folder) if folder.is_dir() else None
    return keys[name]


def _eval_detail(obj: results.BenchmarkResults) -> dict:
    """Per-problem (n, c) counts and a short form of the sampling settings of one results.json."""
    counts = {}
    for tid, pc in (obj.per_problem or {}).items():
        if isinstance(pc, dict) and isinstance(pc.get("n"), int) and isinstance(pc.get("c"), int):
            counts[tid] = (pc["n"], pc["c"])
    cfg = obj.config or {}
    t = cfg.get("temperature")
    if not t:
        settings = "greedy"
    else:
        settings = f"sampled at T={t}, top-p {cfg.get('top_p')}, n={cfg.get('n')}"
    return {"counts": counts, "settings": settings}


def _canary_row(variant: str, bench: str, canary: dict) -> dict:
    """Counts of one results.json's canary checks: references that passed, wrong answers that failed."""
    checks = [c for c in canary.get("checks") or [] if isinstance(c, dict)]
    refs = [c for c in checks if c.get("kind") == "reference"]
    wrong = [c for c in checks if c.get("kind") == "wrong"]
    return {
        "benchmark": bench,
        "variant": variant,
        "ref_ok": sum(bool(c.get("ok")) for c in refs),
        "ref_n": len(refs),
        "wrong_ok": sum(bool(c.get("ok")) for c in wrong),
        "wrong_n": len(wrong),
        "ok": bool(canary.get("ok")) and bool(checks),
        "reason": str(canary.get("reason") or ""),
    }


def _measure_row(name: str, m: results.ModelMeasure, kind=None, parent=None) -> dict:
    return {
        "variant": name,
        "kind": kind,
        "parent": parent,
        "size_mb": _finite(m.size_mb),
        "latency_ms": _finite(m.ms_per_token),
        "perplexity": _finite(m.perplexity),
    }


def model_rows(
    base: results.BaseModelResults | None, comp: results.CompressResults | None
) -> list[dict]:
    """Variant rows (MODEL_COLUMNS) from results/base_model.json (the base's held-out
    perplexity) and results/compress.json (the measured source model and every variant)."""
    rows = []
    if base is not None:
        rows.append(
            {
                "variant": "base",
                "kind": None,
                "parent": None,
                "size_mb": None,
                "latency_ms": None,
                "perplexity": _finite(base.heldout_perplexity.ppl),
            }
        )
    if comp is not None:
        rows.append(_measure_row(comp.source.name, comp.reference))
        rows += [_measure_row(v.name, v, v.kind, v.parent) for v in comp.variants]
    return rows


def skipped_variants(comp: results.CompressResults | None) -> dict[str, str]:
    """{variant: why} for compress.json variants that were not built (CUDA-only, unavailable)."""
    out = {}
    for v in comp.variants if comp is not None else []:
        if v.status != "ok":
            why = v.reason or v.error or v.status
            out[v.name] = f"{v.status}: {short_reason(why)}"
    return out


def short_reason(why: str) -> str:
    """'needs CUDA' for the CUDA-only variants, else the reason's first line (cut at 100)."""
    if "cuda" in why.lower() and any(w in why.lower() for w in ("need", "requires", "only")):
        return "needs CUDA"
    return why.splitlines()[0][:100] if why else ""


def _dir_mb(path: Path) -> float | None:
    if not path.is_dir():
        return None
    total = sum(
        f.stat().st_size
        for f in path.rglob("*")
        if f.is_file() and f.name.endswith((".safetensors", ".bin", ".pt", ".pth", ".gguf"))
    )
    return total / 1e6 if total else None


def read_models(
    run: RunLayout,
    base: results.BaseModelResults | None,
    comp: results.CompressResults | None,
) -> pd.DataFrame:
    """One row per model variant: size, latency, perplexity from 00/03 results, disk sizes as fallback."""
    rows: dict[str, dict] = {}
    for r in model_rows(base, comp):
        merged = rows.setdefault(r["variant"], {c: None for c in MODEL_COLUMNS})
        merged.update({k: v for k, v in r.items() if v is not None})
    for v in run.variants():
        merged = rows.setdefault(v, {c: None for c in MODEL_COLUMNS} | {"variant": v})
        info = read_variant_info(run.model_dir(v)) or {}
        merged["kind"] = merged["kind"] or info.get("kind")
        merged["parent"] = merged["parent"] or info.get("parent")
        if merged["size_mb"] is None:
            merged["size_mb"] = _dir_mb(run.model_dir(v))
    return pd.DataFrame(list(rows.values()), columns=MODEL_COLUMNS)


def funnel_rows(data: results.BuildDataResults | None) -> list[dict]:
    """[{step, records}] from build_data.json's funnel, in order."""
    if data is None:
        return []
    return [{"step": step, "records": float(n)} for step, n in data.funnel.items()]


def curve_rows(ft: results.FinetuneResults | None) -> list[dict]:
    """[{step, series, loss}] from finetune.json's log history (train `loss`, `eval_loss`)."""
    rows = []
    for p in ft.log_history if ft is not None else []:
        if not isinstance(p.get("step"), int | float):
            continue
        if "train_runtime" in p or "total_flos" in p:
            continue  # the Trainer's end-of-run summary: `train_loss` is the run's average loss
        for key, series in (("loss", "train"), ("eval_loss", "eval")):
            v = p.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                rows.append({"step": p["step"], "series": series, "loss": v})
    return rows


def _read_manifest(path: Path, warnings: list[str]) -> dict:
    """The runner's manifest.json ({} when absent; a warning when unreadable)."""
    if not path.is_file():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        warnings.append(f"{path}: unreadable ({e})")
        return {}
    return obj if isinstance(obj, dict) else {}


def collect(run: RunLayout, profile: str | None = None) -> ReportData:
    """Read every stage's results in `run` through `codebench.results`; absent stages become
    'not run' entries, files that do not match their schema 'unreadable' ones."""
    warnings: list[str] = []
    manifest = _read_manifest(run.manifest, warnings)
    mstages = manifest.get("stages", {}) if isinstance(manifest.get("stages"), dict) else {}
    statuses: dict[tuple[str, str], str] = {}
    reasons: dict[tuple[str, str], str] = {}
    canary_rows: list[dict] = []
    detail: dict[tuple[str, str], dict] = {}
    evals = read_evals(run, warnings, statuses, reasons, canary_rows, detail)
    base = _read(run.result_file("base_model"), results.BaseModelResults, warnings)
    comp = _read(run.result_file("compress"), results.CompressResults, warnings)
    data_obj = _read(run.result_file("build_data"), results.BuildDataResults, warnings)
    ft_obj = _read(run.result_file("finetune"), results.FinetuneResults, warnings)
    models = read_models(run, base, comp)
    funnel = pd.DataFrame(funnel_rows(data_obj), columns=["step", "records"])
    training = pd.DataFrame(curve_rows(ft_obj), columns=["step", "series", "loss"])
    stages = []
    for stage, stem in STAGE_RESULTS.items():
        entry = mstages.get(stage, {}) if isinstance(mstages.get(stage), dict) else {}
        if stem is None:
            present = not evals.empty
            source = str(run.root / "eval") if present else None
        else:
            present = run.result_file(stem).is_file()
            source = str(run.result_file(stem)) if present else None
        status = (
            entry.get("status")
            if entry.get("status") in ("failed", "running")
            else ("ok" if present else NOT_RUN)
        )
        if status == NOT_RUN and entry.get("status") == "ok":
            status = "ok (no results file)"
        if present and any(w.startswith(str(source)) for w in warnings):
            status = "unreadable"
        duration = entry.get("duration_s")
        stages.append(
            StageSummary(
                stage,
                status,
                source,
                _stage_note(stage, status, evals, models, funnel, training, entry),
                float(duration) if isinstance(duration, int | float) else None,
            )
        )
    comp_stage = next(s for s in stages if s.stage == "compress")
    skipped = skipped_variants(comp)
    if comp_stage.status == "ok" and comp is not None:
        named = [v.name for v in comp.variants if v.name not in skipped]
        comp_stage.note = f"{len(named)} variants: {', '.join(named)}"
        if skipped:
            comp_stage.note += "; " + ", ".join(f"{v} {why}" for v, why in skipped.items())
    return ReportData(
        profile or run.root.name,
        stages,
        evals,
        models,
        funnel,
        training,
        manifest,
        warnings,
        statuses,
        reasons,
        pd.DataFrame(canary_rows, columns=CANARY_COLUMNS),
        skipped,
        data_obj,
        comp.source.name if comp is not None else None,
        _grpo_results(run, warnings),
        detail,
    )


def _grpo_lines(data: Any, metric: str = "pass@1") -> list[str]:
    """Bullets for report.md's "What this run shows": each GRPO variant's training (tasks,
    decontamination, reward per step, reward throughput) and its `metric` against base and
    SFT ('finetuned'), with whether the 95% intervals are apart."""
    out = []
    for v, res in data.grpo.items():
        tasks, train, settings = res.tasks, res.train, res.settings
        curve = [c for c in res.curve if c.get("completions")]
        bits = [
            f"{train.get('steps', '?')} steps from '{settings.get('base', '?')}' on "
            f"{tasks.get('used', '?')} '{settings.get('tasks', '?')}' tasks "
            f"({len(tasks.get('contaminated') or [])} dropped by decontamination against every "
            f"evaluated set, {len(tasks.get('reference_failed') or [])} whose reference fails)"
        ]
        if curve:
            k = max(1, len(curve) // 10)
            first, last = curve[:k], curve[-k:]

            def mean(xs: Sequence[Mapping[str, Any]], key: str) -> float:
                return sum(c[key] for c in xs) / len(xs)

            bits.append(
                f"sampled pass rate {mean(first, 'pass_rate'):.2f} -> {mean(last, 'pass_rate'):.2f}"
                f", mean reward {mean(first, 'mean_reward'):.2f} -> {mean(last, 'mean_reward'):.2f}"
                f" (first / last {k} steps)"
            )
            secs = sum(c.get("reward_seconds") or 0 for c in curve)
            n = sum(c["completions"] for c in curve)
            if secs:
                bits.append(f"{n} completions scored in the sandbox at {n / secs:.0f}/s")
        out.append(f"- GRPO '{v}': " + "; ".join(bits) + ".")
        for b in sorted(set(data.evals.benchmark)):
            g = _ci_of(data, v, b, metric)
            if g is None:
                continue
            cmp = []
            for ref in ("base", "finetuned"):
                r = _ci_of(data, ref, b, metric)
                if r is None:
                    continue
                apart = (
                    "intervals apart"
                    if r.ci_low is not None
                    and g.ci_low is not None
                    and (g.ci_low > r.ci_high or r.ci_low > g.ci_high)
                    else "intervals overlap"
                )
                cmp.append(f"{ref} {_fmt_ci(r)} ({apart})")
            if cmp:
                how = (data.eval_detail.get((v, b)) or {}).get("settings")
                out.append(
                    f"- {b} {metric}{f' ({how})' if how else ''}: {v} {_fmt_ci(g)} vs "
                    + ", ".join(cmp)
                    + "."
                )
                paired = _paired_line(data, v, b, metric)
                if paired:
                    out.append(paired)
    return out


def _paired_line(data: Any, variant: str, bench: str, metric: str) -> str | None:
    """The paired difference of `variant` against base on the same problems (problems
    resampled together: `passk.paired_difference`), when both results carry per-problem counts
    taken with the same settings."""
    if not metric.startswith("pass@") or not metric[5:].isdigit():
        return None
    mine, ref = data.eval_detail.get((variant, bench)), data.eval_detail.get(("base", bench))
    if not mine or not ref or mine["settings"] != ref["settings"]:
        return None
    d = passk.paired_difference(mine["counts"], ref["counts"], int(metric[5:]))
    if d is None:
        return None
    verdict = "above 0" if d["ci_low"] > 0 else ("below 0" if d["ci_high"] < 0 else "includes 0")
    return (
        f"- {bench} {metric}, {variant} minus base on the same {d['problems']} problems: "
        f"{d['value']:+.3f}, paired 95% interval [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] ({verdict})."
    )


def _grpo_results(run: RunLayout, warnings: list[str]) -> dict:
    """results/<variant>.json (`results.GRPOResults`) of every GRPO variant in models/
    (docs/grpo.md)."""
    out = {}
    for v in run.variants() if run.models.is_dir() else []:
        info = read_variant_info(run.model_dir(v)) or {}
        name = v.removesuffix("-lora") if info.get("kind") == "lora" else v
        if info.get("method") == "grpo" and name not in out:
            obj = _read(run.result_file(name), results.GRPOResults, warnings)
            if obj is not None:
                out[name] = obj
    return out


def _stage_note(stage: str, status: str, evals, models, funnel, training, entry: dict) -> str:
    if status == "failed":
        return str(entry.get("error", "failed")).splitlines()[0][:160]
    if status == NOT_RUN:
        return "no results (stage not in this profile, or not run yet)"
    if status != "ok":
        return ""
    if stage == "model":
        base = models[models.variant == "base"]
        if len(base) and pd.notna(base.iloc[0].perplexity):
            return f"held-out perplexity {_fmt(base.iloc[0].perplexity, 2)}"
    if stage == "data" and not funnel.empty:
        return " -> ".join(f"{r.step} {_fmt(r.records, 0)}" for r in funnel.itertuples())
    if stage == "finetune" and not training.empty:
        last = training[training.series == training.series.iloc[0]].iloc[-1]
        return f"final {last.series} loss {last.loss:.3f} at step {int(last.step)}"
    if stage == "compress":
        return ""  # filled in by collect() from compress.json
    if stage == "evaluate":
        return f"{evals.variant.nunique()} variants x {evals.benchmark.nunique()} benchmarks"
    return ""


# --------------------------------------------------------------------------- tables


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.{digits}f}" if digits else f"{x:,.0f}"


def ordered_variants(data: ReportData, variants: list[str] | None = None) -> list[str]:
    """`variants` if given, else base, lora, finetuned, then the rest alphabetically."""
    if variants:
        return list(variants)
    found = set(data.evals.variant) | set(data.models.variant) | {v for v, _ in data.eval_status}
    head = [v for v in ("base", "lora", "finetuned", "grpo") if v in found]
    return head + sorted(found - set(head))


def variant_table(
    data: ReportData,
    metric: str = "pass@1",
    variants: list[str] | None = None,
    benchmarks: list[str] | None = None,
) -> pd.DataFrame:
    """Variants x (each benchmark's `metric` with its interval, size MB, latency ms, perplexity).

    Benchmarks that lack `metric` (e.g. explain) show their first metric instead, named in
    the column header.
    """
    benches = benchmarks or sorted(set(data.evals.benchmark) | {b for _, b in data.eval_status})
    rows = []
    for v in ordered_variants(data, variants):
        row: dict[str, Any] = {"variant": v}
        for b in benches:
            sub = data.evals[(data.evals.variant == v) & (data.evals.benchmark == b)]
            col_metric = (
                metric
                if metric in set(data.evals[data.evals.benchmark == b].metric)
                else _first_metric(data, b)
            )
            m = sub[sub.metric == col_metric]
            row[f"{b} {col_metric}" if col_metric else b] = (
                _fmt_ci(m.iloc[0]) if len(m) else missing_cell(data, v, b)
            )
        mr = data.models[data.models.variant == v]
        mr = mr.iloc[0] if len(mr) else None
        row["size MB"] = _fmt(mr.size_mb, 1) if mr is not None else "—"
        row["latency ms/token"] = _fmt(mr.latency_ms, 2) if mr is not None else "—"
        row["perplexity"] = _fmt(mr.perplexity, 2) if mr is not None else "—"
        rows.append(row)
    return pd.DataFrame(rows)


def missing_cell(data: ReportData, variant: str, bench: str) -> str:
    """Why a (variant, benchmark) cell has no score: the variant was skipped (e.g. 'skipped:
    needs CUDA'), the evaluation was skipped or failed its canaries, or it did not run."""
    if variant in data.skipped_variants:
        return data.skipped_variants[variant]
    status = data.eval_status.get((variant, bench))
    if status is None:
        evaluated = set(data.evals.variant) | {v for v, _ in data.eval_status}
        return NOT_RUN if variant in evaluated else "not evaluated"
    why = data.eval_reasons.get((variant, bench))
    return f"{status}: {short_reason(why)}" if why else status


def _first_metric(data: ReportData, bench: str) -> str | None:
    ms = list(data.evals[data.evals.benchmark == bench].metric)
    return ms[0] if ms else None


def _fmt_ci(r) -> str:
    s = _fmt(r.value)
    if (
        r.ci_low is not None
        and r.ci_high is not None
        and not (pd.isna(r.ci_low) or pd.isna(r.ci_high))
    ):
        s += f" [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]"
    return s


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub markdown table (no `tabulate` dependency); pipes in cells are escaped."""
    if df.empty:
        return "_(none)_"
    cols = [str(c) for c in df.columns]
    esc = lambda x: str(x).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = [
        "| " + " | ".join(esc(c) for c in cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    lines += ["| " + " | ".join(esc(x) for x in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- report


def stage_table(data: ReportData) -> pd.DataFrame:
    """One row per stage: status (ok / not run / failed / unreadable), duration, summary."""
    return pd.DataFrame(
        [
            {
                "stage": STAGE_TITLES[s.stage],
                "status": s.status,
                "duration": f"{s.duration_s:,.1f} s" if s.duration_s is not None else "—",
                "summary": s.note,
            }
            for s in data.stages
        ]
    )


def canary_table(data: ReportData) -> pd.DataFrame:
    """One row per benchmark: references that passed and wrong answers that failed, per variant.

    Canaries are the evidence that the harness works: a benchmark whose reference solutions
    pass and whose deliberately wrong answers fail can score a model; a zero from it is real.
    """
    if data.canaries.empty:
        return pd.DataFrame(
            columns=["benchmark", "references passed", "wrong answers failed", "status"]
        )
    rows = []
    for bench, sub in data.canaries.groupby("benchmark", sort=True):
        first = sub.iloc[0]
        same = sub[["ref_ok", "ref_n", "wrong_ok", "wrong_n", "ok"]].drop_duplicates().shape[0] == 1
        where = f" (each of {len(sub)} variants)" if same and len(sub) > 1 else ""
        if same:
            refs = f"{first.ref_ok} of {first.ref_n}{where}"
            wrong = f"{first.wrong_ok} of {first.wrong_n}{where}"
        else:
            refs = ", ".join(f"{r.variant} {r.ref_ok}/{r.ref_n}" for r in sub.itertuples())
            wrong = ", ".join(f"{r.variant} {r.wrong_ok}/{r.wrong_n}" for r in sub.itertuples())
        bad = sub[~sub.ok]
        status = (
            "ok"
            if bad.empty
            else "FAILED: " + "; ".join(f"{r.variant}: {r.reason[:120]}" for r in bad.itertuples())
        )
        rows.append(
            {
                "benchmark": bench,
                "references passed": refs,
                "wrong answers failed": wrong,
                "status": status,
            }
        )
    return pd.DataFrame(rows)


def skipped_lines(data: ReportData) -> list[str]:
    """What did not run and why: variants not built, evaluations skipped, stages not run."""
    out = [f"- variant `{v}`: {why}" for v, why in data.skipped_variants.items()]
    by_reason: dict[str, list[str]] = {}
    for (variant, bench), status in sorted(data.eval_status.items()):
        why = data.eval_reasons.get((variant, bench), "")
        by_reason.setdefault(f"{status}: {short_reason(why)}" if why else status, []).append(
            f"{variant}/{bench}"
        )
    out += [f"- evaluation {', '.join(cells)}: {why}" for why, cells in by_reason.items()]
    out += [
        f"- stage {STAGE_TITLES[s.stage]}: {s.status}"
        + (f" ({s.note})" if s.note and s.status != NOT_RUN else "")
        for s in data.stages
        if s.status != "ok"
    ]
    return out


def _ci_of(data: ReportData, variant: str, bench: str, metric: str):
    r = data.evals[
        (data.evals.variant == variant)
        & (data.evals.benchmark == bench)
        & (data.evals.metric == metric)
    ]
    return r.iloc[0] if len(r) else None


def highlights(data: ReportData, metric: str = "pass@1") -> list[str]:
    """Markdown bullets: what this run shows, in numbers, before any table."""
    out = []
    base = data.models[data.models.variant == "base"]
    if len(base) and pd.notna(base.iloc[0].perplexity):
        out.append(f"- base model: held-out perplexity {_fmt(base.iloc[0].perplexity, 1)}.")
    ft = data.stage("finetune")
    if ft.status == "ok" and ft.note:
        out.append(f"- fine-tuning: {ft.note}.")
    ev = data.evals[data.evals.metric == metric]
    if not ev.empty:
        benches = sorted(ev.benchmark.unique())
        zero = [b for b in benches if (ev[ev.benchmark == b].value == 0).all()]
        scored = [b for b in benches if b not in zero]
        for b in scored:
            sub = ev[ev.benchmark == b].sort_values("value", ascending=False)
            cells = ", ".join(f"{r.variant} {_fmt_ci(r)}" for r in sub.itertuples())
            out.append(f"- {b} {metric}: {cells}.")
        if zero:
            n = ev[ev.benchmark.isin(zero)].problems.dropna()
            lo, hi = (int(n.min()), int(n.max())) if len(n) else (0, 0)
            size = f" ({lo}{'' if lo == hi else f'-{hi}'} problems each)" if len(n) else ""
            out.append(
                f"- {metric} is 0 for every variant on {', '.join(zero)}{size}: the model solves "
                "none of them; the canaries below show the harness would have counted a solution."
            )
        diffs = []
        for b in benches:
            r0, r1 = _ci_of(data, "base", b, metric), _ci_of(data, "finetuned", b, metric)
            if r0 is None or r1 is None or pd.isna(r0.ci_low) or pd.isna(r1.ci_low):
                continue
            if r1.ci_low > r0.ci_high or r0.ci_low > r1.ci_high:
                diffs.append(f"{b} (base {_fmt_ci(r0)}, finetuned {_fmt_ci(r1)})")
        if "base" in set(ev.variant) and "finetuned" in set(ev.variant):
            out.append(
                "- fine-tuned vs base, intervals apart on: " + "; ".join(diffs) + "."
                if diffs
                else f"- fine-tuned vs base: no benchmark's {metric} differs beyond the 95% intervals."
            )
    if data.grpo:
        out += _grpo_lines(data, metric)
    out += _compression_lines(data)
    if not data.canaries.empty:
        ok = data.canaries.groupby("benchmark").ok.all()
        out.append(
            f"- canaries: {int(ok.sum())} of {len(ok)} benchmarks pass theirs"
            + ("" if ok.all() else f" (failed: {', '.join(ok[~ok].index)}: no score from those)")
            + "."
        )
    if data.skipped_variants:
        out.append(
            "- skipped: "
            + ", ".join(f"{v} ({why})" for v, why in data.skipped_variants.items())
            + "."
        )
    return out


def _compression_lines(data: ReportData) -> list[str]:
    """One bullet: each compressed variant's size and perplexity against its source's."""
    src = data.compress_source
    m = data.models.set_index("variant") if not data.models.empty else None
    if not src or m is None or src not in m.index:
        return []
    s_mb, s_ppl = m.loc[src].size_mb, m.loc[src].perplexity
    parts = []
    for v, r in m.iterrows():
        if v in (src, "base", "lora", "finetuned") or v in data.skipped_variants:
            continue
        if pd.isna(r.size_mb):
            continue
        bits = [f"{_fmt(r.size_mb, 2)} MB"]
        if pd.notna(s_mb) and r.size_mb:
            bits[0] += f" ({s_mb / r.size_mb:.1f}x smaller)"
        if pd.notna(r.perplexity):
            change = f" ({r.perplexity / s_ppl - 1:+.1%})" if pd.notna(s_ppl) and s_ppl else ""
            bits.append(f"perplexity {_fmt(r.perplexity, 2)}{change}")
        parts.append(f"{v} " + ", ".join(bits))
    if not parts:
        return []
    head = f"{src}, {_fmt(s_mb, 2)} MB" + (
        f", perplexity {_fmt(s_ppl, 2)}" if pd.notna(s_ppl) else ""
    )
    return [f"- compression of {head}: " + "; ".join(parts) + "."]


def render_markdown(
    data: ReportData,
    table: pd.DataFrame,
    figures: dict[str, Path | None],
    report_path: Path,
    title: str = "",
    metric: str = "pass@1",
) -> str:
    """report.md: what the run shows, its canaries, what was skipped and why; then the stage
    status, the variant table, every metric, the data funnel and the figures (relative links)."""
    title = title or f"codebench report: {data.profile}"
    out = [f"# {title}", ""]
    prov = data.manifest.get("provenance", {}) if isinstance(data.manifest, dict) else {}
    if prov:
        out += [
            f"Commit `{prov.get('git_commit')}`, Python {prov.get('python')}, seed {prov.get('seed')}.",
            "",
        ]
    shows = highlights(data, metric)
    if shows:
        out += ["## What this run shows", "", *shows, ""]
    out += [
        "## Canaries",
        "",
        "Before scoring, each benchmark runs its reference solutions (they must pass) and "
        "deliberately wrong answers (they must fail); a benchmark that fails them reports no score.",
        "",
        to_markdown(canary_table(data)),
        "",
    ]
    skipped = skipped_lines(data)
    out += [
        "## Skipped, and why",
        "",
        *(skipped or ["- nothing: every stage and variant ran."]),
        "",
    ]
    out += ["## Stages", ""]
    st = stage_table(data)
    out += [to_markdown(st), ""]
    out += [
        f"## Variants × benchmarks ({metric}, 95% bootstrap interval over problems)",
        "",
        to_markdown(table),
        "",
        "Perplexity is measured on held-out code: the base model's by 00 (its `eval_chars`), "
        "the others by 03 on 03's held-out text, so compare within one source.",
        "",
    ]
    if not data.evals.empty:
        wide = data.evals.assign(cell=[_fmt_ci(r) for r in data.evals.itertuples()])
        wide = wide.pivot_table(
            index=["benchmark", "metric"], columns="variant", values="cell", aggfunc="first"
        ).reset_index()
        wide = wide[
            ["benchmark", "metric"] + [v for v in ordered_variants(data) if v in wide.columns]
        ].fillna(NOT_RUN)
        out += ["## All metrics", "", to_markdown(wide), ""]
    if not data.funnel.empty:
        out += ["## Data funnel (01)", "", to_markdown(funnel_table(data)), ""]
        from codebench.plots.data import sft_mix

        mix = sft_mix(data.data_summary) if data.data_summary is not None else ""
        if mix:
            out += [mix + ".", ""]
    out += ["## Figures", ""]
    for name, path in figures.items():
        if path is None:
            out.append(f"- {name}: not run (no data)")
        else:
            rel = os.path.relpath(path, report_path.parent)
            out.append(f"![{name}]({rel})")
    if data.warnings:
        out += ["", "## Warnings", ""] + [f"- {w}" for w in data.warnings]
    return "\n".join(out) + "\n"


def funnel_table(data: ReportData) -> pd.DataFrame:
    """The funnel with each step's share of its own denominator: functions as a share of the
    source records, prediction samples as a share of the training prompts."""
    from codebench.plots.data import FUNCTION_STEPS, SAMPLE_STEPS

    groups = {k: ("functions", "raw") for k, _ in FUNCTION_STEPS}
    groups |= {k: ("samples", "prompts") for k, _ in SAMPLE_STEPS}
    counts = dict(zip(data.funnel.step, data.funnel.records, strict=True))
    rows = []
    for step, n in counts.items():
        group, denom = groups.get(step, ("", None))
        d = counts.get(denom) if denom else None
        share = f"{n / d:.0%} of {denom}" if d and n is not None else "—"
        rows.append({"step": step, "counts": group, "records": _fmt(n, 0), "share": share})
    return pd.DataFrame(rows)
