"""Stage 05_report: gather every stage's results of one run into tables, figures and report.md.

Inputs (each optional: a profile may run a subset of stages, and a missing or unreadable
file becomes a clear "not run" / "unreadable" entry instead of an error):

- `manifest.json`                         stage status and durations (the runner's)
- `results/base_model.json`               00: the base model (size, latency, perplexity)
- `results/build_data.json`               01: the CodeI/O data funnel (records per step)
- `results/finetune.json`                 02: training/eval loss curves, final numbers
- `results/compress.json`                 03: one entry per variant: size, latency, perplexity
- `eval/<variant>/<bench>/results.json`   04: metrics (pass@k with intervals, explain scores)
- `models/<variant>/`                     sizes on disk when no stage measured them

The result files' layouts are read tolerantly (`_metrics_of`, `_model_rows`, `_funnel_rows`,
`_curve_rows` accept the shapes the stage modules write and a few obvious variants), so the
report keeps working while those formats evolve. Output: `runs/<name>/report.md` and
`figures/<name>/report_*.png`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from codebench.runs import RunLayout, read_variant_info

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

    def stage(self, name: str) -> StageSummary:
        return next(s for s in self.stages if s.stage == name)


EVAL_COLUMNS = ["variant", "benchmark", "metric", "value", "ci_low", "ci_high", "problems"]
MODEL_COLUMNS = ["variant", "kind", "parent", "size_mb", "latency_ms", "perplexity"]


# --------------------------------------------------------------------------- reading


def _read_json(path: Path, warnings: list[str]) -> Any | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        warnings.append(f"{path}: unreadable ({e})")
        return None


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, int | float):
        return float(x) if math.isfinite(float(x)) else None
    return None


def _metrics_of(obj: dict) -> dict[str, dict[str, float | None]]:
    """{metric: {value, ci_low, ci_high, problems}} from a results.json, tolerant of layout.

    Accepts a `metrics` (or `scores`/`summary`) mapping, or metrics at the top level; each
    metric is a number or a mapping with `value` (or `mean`/`score`) and optional `ci_low`,
    `ci_high` (or `ci: [lo, hi]`) and `problems`.
    """
    src = next(
        (obj[k] for k in ("metrics", "scores", "summary") if isinstance(obj.get(k), dict)), obj
    )
    out: dict[str, dict[str, float | None]] = {}
    for name, v in src.items():
        if isinstance(v, dict):
            val = next((_num(v[k]) for k in ("value", "mean", "score") if k in v), None)
            if val is None:
                continue
            ci = (
                v.get("ci")
                if isinstance(v.get("ci"), list | tuple) and len(v.get("ci")) == 2
                else (None, None)
            )
            out[name] = {
                "value": val,
                "ci_low": _num(v.get("ci_low", ci[0])),
                "ci_high": _num(v.get("ci_high", ci[1])),
                "problems": _num(v.get("problems", v.get("n_problems", obj.get("problems")))),
            }
        elif (val := _num(v)) is not None and name not in (
            "n",
            "k",
            "seed",
            "limit",
            "problems",
            "n_samples",
            "duration_s",
        ):
            out[name] = {
                "value": val,
                "ci_low": None,
                "ci_high": None,
                "problems": _num(obj.get("problems")),
            }
    return out


def read_evals(run: RunLayout, warnings: list[str], statuses: dict | None = None) -> pd.DataFrame:
    """Every eval/<variant>/<bench>/results.json as long rows (one per metric).

    A results.json whose `status` is not 'ok' (skipped, canary-failed, incomplete) is
    recorded in `statuses[(variant, bench)]` so the table can say so.
    """
    rows = []
    base = run.root / "eval"
    for res in sorted(base.glob("*/*/results.json")) if base.is_dir() else []:
        variant, bench = res.parent.parent.name, res.parent.name
        obj = _read_json(res, warnings)
        if not isinstance(obj, dict):
            if obj is not None:
                warnings.append(f"{res}: expected a JSON object")
            continue
        status = obj.get("status")
        if isinstance(status, str) and status != "ok" and statuses is not None:
            statuses[(variant, bench)] = status  # skipped, canary-failed, incomplete
        for metric, m in _metrics_of(obj).items():
            rows.append({"variant": variant, "benchmark": bench, "metric": metric, **m})
    return pd.DataFrame(rows, columns=EVAL_COLUMNS)


_SIZE_KEYS = (
    ("size_mb", 1.0),
    ("disk_mb", 1.0),
    ("model_size_mb", 1.0),
    ("size_mib", 1.048576),
    ("size_bytes", 1e-6),
    ("weight_bytes", 1e-6),
    ("disk_bytes", 1e-6),
    ("bytes", 1e-6),
)
_LAT_KEYS = (
    ("latency_ms", 1.0),
    ("ms_per_token", 1.0),
    ("latency_ms_per_token", 1.0),
    ("decode_ms_per_token", 1.0),
    ("latency_s", 1000.0),
    ("seconds_per_token", 1000.0),
)


def _pick(d: dict, keys: tuple[tuple[str, float], ...]) -> float | None:
    for k, scale in keys:
        v = d.get(k)
        if isinstance(v, dict):  # {"mean": ..} / {"value": ..}
            v = v.get("mean", v.get("value"))
        if (x := _num(v)) is not None:
            return x * scale
    return None


def _model_rows(obj: Any) -> list[dict]:
    """Variant rows from compress.json / base_model.json: a list, a {variant: {...}} map, or one dict.

    compress.json's `reference` (the measured source model, named in `source.name`) is a row too.
    """
    extra: list[dict] = []
    if (
        isinstance(obj, dict)
        and isinstance(obj.get("reference"), dict)
        and isinstance(obj.get("source"), dict)
    ):
        extra = _model_rows({"variant": obj["source"].get("name"), **obj["reference"]})
    if isinstance(obj, dict) and isinstance(obj.get("variants"), list | dict):
        obj = obj["variants"]
    if (
        isinstance(obj, dict)
        and all(isinstance(v, dict) for v in obj.values())
        and obj
        and not ({"size_mb", "variant", "name"} & set(obj))
    ):
        obj = [{"variant": k, **v} for k, v in obj.items()]
    if isinstance(obj, dict):
        obj = [obj]
    rows = []
    for d in obj if isinstance(obj, list) else []:
        if not isinstance(d, dict):
            continue
        name = d.get("variant") or d.get("name")
        if not name:
            continue
        rows.append(
            {
                "variant": str(name),
                "kind": d.get("kind") or d.get("method"),
                "parent": d.get("parent"),
                "size_mb": _pick(d, _SIZE_KEYS),
                "latency_ms": _pick(d, _LAT_KEYS),
                "perplexity": next(
                    (
                        _num(d[k])
                        for k in ("perplexity", "ppl", "heldout_perplexity")
                        if _num(d.get(k)) is not None
                    ),
                    None,
                ),
            }
        )
    return extra + rows


def _dir_mb(path: Path) -> float | None:
    if not path.is_dir():
        return None
    total = sum(
        f.stat().st_size
        for f in path.rglob("*")
        if f.is_file() and f.name.endswith((".safetensors", ".bin", ".pt", ".pth", ".gguf"))
    )
    return total / 1e6 if total else None


def read_models(run: RunLayout, warnings: list[str]) -> pd.DataFrame:
    """One row per model variant: size, latency, perplexity from 00/03 results, disk sizes as fallback."""
    rows: dict[str, dict] = {}
    for stage in ("base_model", "compress"):
        obj = _read_json(run.result_file(stage), warnings)
        if obj is None:
            continue
        if (
            stage == "base_model"
            and isinstance(obj, dict)
            and not obj.get("variant")
            and not obj.get("variants")
        ):
            obj = {"variant": "base", **obj}
        for r in _model_rows(obj):
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


def _funnel_rows(obj: Any) -> list[dict]:
    """[{step, records}] from build_data.json: `funnel` as a list or mapping, or `counts`."""
    if not isinstance(obj, dict):
        return []
    src = next(
        (obj[k] for k in ("funnel", "counts", "stages") if isinstance(obj.get(k), list | dict)),
        None,
    )
    if isinstance(src, dict):
        return [
            {
                "step": str(k),
                "records": _num(v if not isinstance(v, dict) else v.get("records", v.get("count"))),
            }
            for k, v in src.items()
        ]
    rows = []
    for d in src or []:
        if isinstance(d, dict):
            step = d.get("step") or d.get("stage") or d.get("name")
            n = d.get("records", d.get("count", d.get("n")))
            if step is not None:
                rows.append({"step": str(step), "records": _num(n)})
    return rows


def _curve_rows(obj: Any) -> list[dict]:
    """[{step, series, loss}] from finetune.json: `history`/`log_history`/`curves` records."""
    if not isinstance(obj, dict):
        return []
    rows = []
    curves = obj.get("curves")
    if isinstance(curves, dict):  # {"train": [{"step", "loss"}], "eval": [...]}
        for series, pts in curves.items():
            for p in pts if isinstance(pts, list) else []:
                if (
                    isinstance(p, dict)
                    and _num(p.get("step")) is not None
                    and _num(p.get("loss")) is not None
                ):
                    rows.append({"step": p["step"], "series": str(series), "loss": p["loss"]})
        return rows
    hist = next(
        (obj[k] for k in ("history", "log_history", "log") if isinstance(obj.get(k), list)), []
    )
    for p in hist:
        if not isinstance(p, dict) or _num(p.get("step")) is None:
            continue
        for key, series in (("loss", "train"), ("train_loss", "train"), ("eval_loss", "eval")):
            if _num(p.get(key)) is not None:
                rows.append({"step": p["step"], "series": series, "loss": p[key]})
    return rows


def collect(run: RunLayout, profile: str | None = None) -> ReportData:
    """Read every stage's results in `run`; absent stages become 'not run' entries."""
    warnings: list[str] = []
    manifest = _read_json(run.manifest, warnings) or {}
    mstages = manifest.get("stages", {}) if isinstance(manifest, dict) else {}
    statuses: dict[tuple[str, str], str] = {}
    evals, models = read_evals(run, warnings, statuses), read_models(run, warnings)
    data_obj = _read_json(run.result_file("build_data"), warnings)
    ft_obj = _read_json(run.result_file("finetune"), warnings)
    funnel = pd.DataFrame(_funnel_rows(data_obj), columns=["step", "records"])
    training = pd.DataFrame(_curve_rows(ft_obj), columns=["step", "series", "loss"])
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
        stages.append(
            StageSummary(
                stage,
                status,
                source,
                _stage_note(stage, status, evals, models, funnel, training, entry),
                _num(entry.get("duration_s")),
            )
        )
    comp = next(s for s in stages if s.stage == "compress")
    if comp.status == "ok":
        obj = _read_json(run.result_file("compress"), [])
        listed = (
            {"variants": obj["variants"]} if isinstance(obj, dict) and "variants" in obj else obj
        )
        named = [r["variant"] for r in _model_rows(listed)]
        comp.note = f"{len(named)} variants: {', '.join(named)}"
    return ReportData(
        profile or run.root.name,
        stages,
        evals,
        models,
        funnel,
        training,
        manifest if isinstance(manifest, dict) else {},
        warnings,
        statuses,
    )


def _stage_note(stage: str, status: str, evals, models, funnel, training, entry: dict) -> str:
    if status == "failed":
        return str(entry.get("error", "failed")).splitlines()[0][:160]
    if status == NOT_RUN:
        return "no results (stage not in this profile, or not run yet)"
    if status != "ok":
        return ""
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
    head = [v for v in ("base", "lora", "finetuned") if v in found]
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
            missing = data.eval_status.get((v, b), "not run")
            row[f"{b} {col_metric}" if col_metric else b] = (
                _fmt_ci(m.iloc[0]) if len(m) else missing
            )
        mr = data.models[data.models.variant == v]
        mr = mr.iloc[0] if len(mr) else None
        row["size MB"] = _fmt(mr.size_mb, 1) if mr is not None else "—"
        row["latency ms/token"] = _fmt(mr.latency_ms, 2) if mr is not None else "—"
        row["perplexity"] = _fmt(mr.perplexity, 2) if mr is not None else "—"
        rows.append(row)
    return pd.DataFrame(rows)


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


def render_markdown(
    data: ReportData,
    table: pd.DataFrame,
    figures: dict[str, Path | None],
    report_path: Path,
    title: str = "",
    metric: str = "pass@1",
) -> str:
    """report.md: stage status, the variant table, every metric, figure links (relative)."""
    title = title or f"codebench report: {data.profile}"
    out = [f"# {title}", ""]
    prov = data.manifest.get("provenance", {}) if isinstance(data.manifest, dict) else {}
    if prov:
        out += [
            f"Commit `{prov.get('git_commit')}`, Python {prov.get('python')}, seed {prov.get('seed')}.",
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
    ]
    if not data.evals.empty:
        wide = data.evals.assign(cell=[_fmt_ci(r) for r in data.evals.itertuples()])
        wide = wide.pivot_table(
            index=["benchmark", "metric"], columns="variant", values="cell", aggfunc="first"
        ).reset_index()
        wide = wide[
            ["benchmark", "metric"] + [v for v in ordered_variants(data) if v in wide.columns]
        ].fillna("not run")
        out += ["## All metrics", "", to_markdown(wide), ""]
    if not data.funnel.empty:
        out += [
            "## Data funnel (01)",
            "",
            to_markdown(data.funnel.assign(records=[_fmt(x, 0) for x in data.funnel.records])),
            "",
        ]
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


@dataclass
class ReportResult:
    """What `write_report` produced."""

    path: Path
    figures: dict[str, Path | None]
    table: pd.DataFrame
    data: ReportData


def write_report(
    run: RunLayout,
    *,
    title: str = "",
    primary_metric: str = "pass@1",
    variants: list[str] | None = None,
    benchmarks: list[str] | None = None,
    profile: str | None = None,
) -> ReportResult:
    """Collect, plot, and write runs/<name>/report.md and figures/<name>/report_*.png."""
    from codebench.plots import report as plots

    data = collect(run, profile)
    table = variant_table(data, primary_metric, variants, benchmarks)
    order = ordered_variants(data, variants)
    evals = data.evals if not benchmarks else data.evals[data.evals.benchmark.isin(benchmarks)]
    figures = {
        "pass@k by variant": plots.passk_by_variant(evals, run.figures, order),
        f"{primary_metric} against model size": plots.quality_vs_size(
            evals, data.models, run.figures, primary_metric, order
        ),
        "data funnel": plots.data_funnel(data.funnel, run.figures),
        "training curves": plots.training_curves(data.training, run.figures),
    }
    from codebench.records import write_json

    path = run.root / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_markdown(data, table, figures, path, title, primary_metric)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    write_json(
        run.result_file("report"),
        {
            "report": str(path),
            "figures": {k: str(v) if v else None for k, v in figures.items()},
            "stages": [s.__dict__ for s in data.stages],
            "warnings": data.warnings,
        },
    )
    return ReportResult(path, figures, table, data)
