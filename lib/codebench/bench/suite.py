"""Variants x benchmarks: the loop of stage 04 (`codebench.stages.evaluate`) and of
`codebench eval`, and tables over its results (each results.json read through
`codebench.results.BenchmarkResults`).

`evaluate_variants(run, variants, benchmarks, config)` loads each variant of the run folder with
`codebench.models.load`, wraps it in a `codebench.generate` backend and evaluates every
benchmark into `run.eval_dir(variant, bench_dirname(spec))` -- or, for a named evaluation
(`config.name`) or a configuration other than the one already there (other temperature, n
of other settings, prompt protocol), into `eval/<variant>@<name or settings tag>/<bench>/`
(`eval_label`), so configurations coexist and the tables compare them (each result records
its settings). Variants that do not exist are
reported and skipped; tasks that cannot run (FIM without FIM tokens, CodeI/O without its
held-out file) are skipped with their reason; a canary failure does not stop the other
evaluations but is raised (`CanaryError`) once they are done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from codebench import results as schema
from codebench.bench.canary import CanaryError
from codebench.bench.registry import get_task, parse_spec
from codebench.bench.runner import (
    EvalConfig,
    evaluate,
    holds_other_settings,
    settings_key,
    settings_tag,
)
from codebench.runs import model_content_key

LANGUAGE_OF = {
    "humaneval": "python",
    "mbpp": "python",
    "fim": "python",
    "mtpb": "python",
    "leetcode": "python",
}


def bench_dirname(spec: str) -> str:
    """Folder name under eval/<variant>/ for a benchmark spec (one per benchmark and protocol)."""
    name, protocol, path = parse_spec(spec)
    if name == "custom":
        stem = Path(path).stem if path else "custom"
        return f"custom-{stem}" + (f"-{protocol}" if protocol and protocol != "base" else "")
    if name == "codeio":
        return "codeio"
    if protocol is None or protocol == get_task(name).protocols[0]:
        return name
    return f"{name}-{protocol}"


def eval_label(
    run: Any,
    variant: str,
    spec: str,
    config: EvalConfig,
    data_dir: str | Path | None = None,
    tokenizer: Any = None,
) -> str:
    """The eval/ folder name of (variant, configuration): `variant@name` for a named evaluation;
    else `variant` when eval/<variant>/<bench>/ is free or holds this configuration; else
    `variant@<settings tag>` (temperature, n and the settings key: generation settings +
    prompt protocol)."""
    if config.name:
        return f"{variant}@{config.name}"
    plain = run.eval_dir(variant, bench_dirname(spec))
    if not (plain / "samples.jsonl").is_file():
        return variant
    task = get_task(spec, data_dir, **config.options)
    if hasattr(task, "prepare"):  # as `evaluate` does (FIM reads its markers from the tokenizer)
        task.prepare(tokenizer)
    key = settings_key(config, task)
    if not holds_other_settings(plain, variant, task.protocol, key):
        return variant
    return f"{variant}@{settings_tag(config, key)}"


def make_backend(
    variant: str, run: Any, *, kind: str = "hf", device: str = "cpu", options: dict | None = None
) -> Any:
    """A generation backend for `variant` of `run` (HF and vLLM load it through codebench.models;
    an OpenAI-compatible server serves `options["model"]`, default the variant name)."""
    from codebench import generate

    options = dict(options or {})
    if kind == "hf":
        return generate.make_backend("hf", model=variant, run=run, device=device, **options)
    if kind == "vllm":
        return generate.make_backend("vllm", model=variant, run=run, **options)
    return generate.make_backend(kind, model=options.pop("model", variant), **options)


def evaluate_variants(
    run: Any,
    variants: list[str],
    benchmarks: list[str],
    config: EvalConfig,
    *,
    backend: str = "hf",
    backend_options: dict | None = None,
    device: str = "cpu",
    data_dir: str | Path | None = None,
    backends: dict[str, Any] | None = None,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Evaluate every variant on every benchmark; return {"results", "missing", "skipped", "canary_failed"}.

    run        a `codebench.runs.RunLayout`; variants must exist under run.models (or be given
               ready-made in `backends`: {variant: Backend}, e.g. for tests or remote servers).
    """
    present = set(run.variants())
    backends = dict(backends or {})
    if not variants:
        log(
            f"[evaluate] no variants to evaluate: none given and none under {run.models} (run 00_base_model first)"
        )
    missing = [v for v in variants if v not in present and v not in backends]
    for v in missing:
        log(
            f"[evaluate] variant {v!r} not found under {run.models} (present: {sorted(present) or 'none'}); skipped"
        )
    results, skipped, failed = [], [], []
    for variant in [v for v in variants if v not in missing]:
        be = backends.get(variant) or make_backend(
            variant, run, kind=backend, device=device, options=backend_options
        )
        folder = run.model_dir(variant)  # its content key: samples of other weights never resume
        model_key = model_content_key(folder) if variant in present and folder.is_dir() else None
        for spec in benchmarks:
            name, protocol, path = parse_spec(spec)
            options = dict(config.options)
            if name == "codeio" and not path:
                options["path"] = str(run.data / "heldout.jsonl")
            cfg = EvalConfig(**{**config.__dict__, "options": options})
            try:
                label = eval_label(
                    run, variant, spec, cfg, data_dir, getattr(be, "tokenizer", None)
                )
            except Exception:  # noqa: BLE001 - evaluate reports what is wrong with the task
                label = variant
            if label != variant:
                log(f"[evaluate] {variant} / {spec}: this configuration goes to eval/{label}/")
            out = run.eval_dir(label, bench_dirname(spec))
            try:
                res = evaluate(
                    be,
                    spec,
                    out,
                    model=variant,
                    config=cfg,
                    data_dir=data_dir,
                    progress=progress,
                    log=log,
                    model_key=model_key,
                )
            except CanaryError as e:
                log(f"[evaluate] {e}")
                failed.append({"variant": variant, "benchmark": spec, "error": str(e)})
                continue
            res["dir"] = str(out)
            res["spec"] = spec
            res["evaluation"] = label
            if res["status"] == "skipped":
                skipped.append({"variant": variant, "benchmark": spec, "reason": res["reason"]})
            results.append(res)
    summary = {"results": results, "missing": missing, "skipped": skipped, "canary_failed": failed}
    if failed:
        raise CanaryError("; ".join(f["error"] for f in failed))
    return summary


def load_results(run: Any) -> list[dict]:
    """Every eval/<variant>/<bench>/results.json of a run."""
    out = []
    base = Path(run.root) / "eval"
    for f in sorted(base.glob("*/*/results.json")) if base.is_dir() else []:
        read = schema.read(f, schema.BenchmarkResults)
        obj = read.model_dump(exclude_unset=True) if read is not None else {}
        obj.setdefault("variant", f.parent.parent.name)
        obj["evaluation"] = f.parent.parent.name  # variant, or variant@name (a configuration)
        obj["dir"] = str(f.parent)
        out.append(obj)
    return out


def _language(res: dict) -> str:
    task = res.get("task") or {}
    if task.get("language"):
        return task["language"]
    name = str(res.get("benchmark", "")).split(":")[0]
    return LANGUAGE_OF.get(name, "python")


def _bench_label(res: dict) -> str:
    return Path(res["dir"]).name if res.get("dir") else str(res.get("benchmark"))


def settings_text(res: dict) -> str:
    """The configuration of one result, e.g. 'greedy, n=1, max 512' or 't=0.2 p=0.95, n=10, max 512'."""
    cfg = res.get("config") or {}
    if not cfg:
        return ""
    t = cfg.get("temperature")
    head = "greedy" if t == 0 else f"t={t:g} p={cfg.get('top_p', 1.0):g}"
    return f"{head}, n={cfg.get('n')}, max {cfg.get('max_new_tokens')}"


def results_table(results: list[dict]) -> pd.DataFrame:
    """One row per (variant, benchmark, metric): value, interval, problems, status; the
    `evaluation` (variant, or variant@name for another configuration, see `eval_label`) and
    its `settings` tell configurations of one variant apart."""
    rows = []
    for r in results:
        base = {
            "variant": r.get("variant"),
            "benchmark": _bench_label(r),
            "protocol": (r.get("task") or {}).get("protocol"),
            "language": _language(r),
            "status": r.get("status"),
            "evaluation": r.get("evaluation") or r.get("variant"),
            "settings": settings_text(r),
        }
        metrics = r.get("metrics") or {}
        if not metrics:
            rows.append(
                {
                    **base,
                    "metric": None,
                    "value": None,
                    "ci_low": None,
                    "ci_high": None,
                    "problems": r.get("problems"),
                    "samples": r.get("samples"),
                }
            )
        for name, m in metrics.items():
            rows.append(
                {
                    **base,
                    "metric": name,
                    "value": m["value"],
                    "ci_low": m["ci_low"],
                    "ci_high": m["ci_high"],
                    "problems": m.get("problems"),
                    "samples": r.get("samples"),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "variant",
            "benchmark",
            "protocol",
            "language",
            "status",
            "metric",
            "value",
            "ci_low",
            "ci_high",
            "problems",
            "samples",
            "evaluation",
            "settings",
        ],
    )


def outcomes_table(results: list[dict]) -> pd.DataFrame:
    """One row per (variant, benchmark, outcome): count and share of samples."""
    rows = []
    for r in results:
        total = sum((r.get("outcomes") or {}).values())
        for oc, cnt in (r.get("outcomes") or {}).items():
            rows.append(
                {
                    "variant": r.get("variant"),
                    "benchmark": _bench_label(r),
                    "outcome": oc,
                    "count": cnt,
                    "share": cnt / total if total else 0.0,
                }
            )
    return pd.DataFrame(rows, columns=["variant", "benchmark", "outcome", "count", "share"])


def per_problem_table(results: list[dict]) -> pd.DataFrame:
    """One row per (variant, benchmark, task): samples, passes, pass rate."""
    rows = []
    for r in results:
        for tid, c in (r.get("per_problem") or {}).items():
            rows.append(
                {
                    "variant": r.get("variant"),
                    "benchmark": _bench_label(r),
                    "task_id": tid,
                    "n": c["n"],
                    "c": c["c"],
                    "rate": c["c"] / c["n"] if c["n"] else 0.0,
                }
            )
    return pd.DataFrame(rows, columns=["variant", "benchmark", "task_id", "n", "c", "rate"])


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """Human-readable lines for a notebook: missing variants, skips, one line per result."""
    lines = [f"variant {v!r}: not in the run, skipped" for v in summary.get("missing", [])]
    lines += [
        f"{s['variant']} / {s['benchmark']}: {s['reason']}" for s in summary.get("skipped", [])
    ]
    nan = float("nan")
    for r in summary.get("results", []):
        if r.get("status") == "skipped":
            continue
        metrics = r.get("metrics") or {}
        name = "pass@1" if "pass@1" in metrics else next(iter(metrics), None)
        m = metrics.get(name, {}) if name else {}
        canary = (r.get("canary") or {}).get("ok")
        wall = (r.get("timing") or {}).get("wall_s", r.get("duration_s"))
        lines.append(
            f"{r.get('variant')} / {r.get('spec', r.get('benchmark'))}: {name} = {m.get('value', nan):.3f} "
            f"[{m.get('ci_low') if m.get('ci_low') is not None else nan:.3f}, "
            f"{m.get('ci_high') if m.get('ci_high') is not None else nan:.3f}]; "
            f"{r.get('problems')} problems, {r.get('samples', '?')} samples; status {r.get('status', 'ok')}; "
            f"canaries {'passed' if canary else 'n/a' if canary is None else 'FAILED'}"
            + (f"; {wall:.0f} s" if isinstance(wall, int | float) else "")
        )
    return lines
