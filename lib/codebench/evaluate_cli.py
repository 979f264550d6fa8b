"""`codebench eval`: evaluate one model on benchmarks from the shell, the way stage 04 does.

    codebench eval --model deepseek-ai/deepseek-coder-1.3b-base --benchmarks humaneval,mbpp \\
        --n 10 --temperature 0.2

Generation, sandboxed scoring and the results table in one command, through the very functions
stage 04 runs (`stages.evaluate.run` -> `bench.suite.evaluate_variants` -> `bench.runner.evaluate`), with its
defaults (`params.EvaluateSection`) and its output layout: `<out>/eval/<label>/<benchmark>/`
holding samples.jsonl (one record per sample; a rerun resumes and regenerates nothing already
there) and results.json.

Settings (n, temperature, top_p, max_new_tokens, limit, ks, seed, batch size, timeout,
canaries): the flags given; for the rest, the settings stage 04 recorded for this model in the
output root (its results.json), else the profile defaults of `params.EvaluateSection` with
seed 0 and every problem (`--limit 0` also means every problem).

Where results go:
- a variant of a run (`--model runs/smoke/models/base`, or `--run runs/smoke --model base`):
  into that run, label = the variant name -- the same files stage 04 writes, so after
  `codebench reproduce` the same settings reuse its samples and print its numbers;
- anything else (hub id, a local folder, an OpenAI-compatible server's model): into
  `runs/eval/<model>` unless `--out` names another root.

Several configurations side by side: settings other than those already evaluated for the
model (another temperature, n, prompt protocol) go to `eval/<label>@<tag>/<benchmark>/`
(tag: temperature, n and the settings key), or `eval/<label>@<NAME>/` with `--name NAME`;
nothing is deleted or refused. The table printed at the end lists every configuration of the
model on the benchmarks asked for (column `evaluation`, with its `settings`), and the run's
report shows each as its own row.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any


def _defaults() -> dict[str, Any]:
    from codebench.params import EvaluateSection

    return {
        k: f.get_default(call_default_factory=True) for k, f in EvaluateSection.model_fields.items()
    }


def add_parser(sub: Any) -> None:
    """Register the `eval` subcommand on the `codebench` parser."""
    d = _defaults()
    p = sub.add_parser(
        "eval",
        help="evaluate one model on benchmarks (generation + sandbox + pass@k table), as stage 04 does",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--model",
        required=True,
        help="hub id, model folder, run variant name (with --run), or served model (--backend openai)",
    )
    p.add_argument(
        "--benchmarks",
        default=",".join(d.get("benchmarks") or ["humaneval", "mbpp"]),
        help="comma-separated benchmark specs name[:protocol] (default: %(default)s); e.g. "
        "humaneval:instruct, humaneval:base-deepseek, mbpp, multiple-js, custom:file.jsonl",
    )
    p.add_argument("--run", default=None, help="run folder whose variant --model names")
    p.add_argument(
        "--name",
        default=None,
        help="a named evaluation: results in eval/<model>@NAME/ beside other configurations",
    )
    p.add_argument(
        "--out", default=None, help="output root (default: the run, or runs/eval/<model>)"
    )
    # generation and scoring settings: unset ones come from stage 04's results.json for this
    # model (a run variant evaluated before), else from the profile defaults (EvaluateSection)
    p.add_argument("--n", type=int, default=None, help=f"samples per problem (default {d['n']})")
    p.add_argument("--temperature", type=float, default=None, help=f"default {d['temperature']}")
    p.add_argument("--top-p", type=float, default=None, help=f"default {d['top_p']}")
    p.add_argument(
        "--max-new-tokens", type=int, default=None, help=f"default {d['max_new_tokens']}"
    )
    p.add_argument(
        "--limit", type=int, default=None, help="first N problems per benchmark (0 or unset: all)"
    )
    p.add_argument("--k", "--ks", dest="ks", default=None, help=f"pass@k list (default {d['ks']})")
    p.add_argument("--seed", type=int, default=None, help="default 0")
    p.add_argument("--batch-size", type=int, default=None, help=f"default {d['batch_size']}")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help=f"sandbox seconds per program (default {d['timeout']})",
    )
    p.add_argument(
        "--canaries",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the harness self-check first (default on)",
    )
    p.add_argument("--fim-seed", type=int, default=None, help=f"default {d['fim_seed']}")
    p.add_argument("--backend", choices=("hf", "vllm", "openai"), default=d["backend"])
    p.add_argument("--base-url", default=None, help="OpenAI-compatible server (--backend openai)")
    p.add_argument("--chat", action="store_true", help="OpenAI backend: use /v1/chat/completions")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: %(default)s)")
    p.add_argument(
        "--dtype",
        default="auto",
        help="auto | checkpoint | float32 | bfloat16 | float16 (docs/protocols.md)",
    )
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument(
        "--data-dir", default=None, help="benchmark data folder (default: $CODEBENCH_DATA)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", model.strip("/")).strip("-") or "model"


def _target(args) -> tuple[str, Any, Any]:
    """(label, run layout the results go to, run the model spec resolves in)."""
    from codebench.runs import RunLayout

    def layout(root: Path) -> RunLayout:
        return RunLayout(root, root / "figures")

    out = layout(Path(args.out)) if args.out else None
    if args.run:
        run = layout(Path(args.run))
        if args.model not in run.variants():
            raise ValueError(
                f"--model {args.model!r}: no such variant in {run.models} (present: {run.variants() or 'none'})"
            )
        return args.model, out or run, run
    path = Path(args.model).expanduser()
    if args.backend != "openai" and path.is_dir() and path.resolve().parent.name == "models":
        run = layout(path.resolve().parent.parent)
        return path.resolve().name, out or run, run
    label = _slug(path.name if path.is_dir() else args.model)
    return label, out or layout(Path("runs") / "eval" / label), None


SETTINGS = (
    "n", "temperature", "top_p", "max_new_tokens", "limit", "ks", "seed", "batch_size",
    "timeout", "canaries",
)  # fmt: skip


def stage04_settings(
    out: Any, label: str, benchmarks: list[str], name: str | None = None
) -> tuple[dict, Path | None]:
    """The EvalConfig fields stage 04 (or an earlier `codebench eval`) used for `label` in
    `out` (for a named evaluation: those it used, else the plain ones), from the first
    benchmark's results.json found; ({}, None) when there is none."""
    from codebench import results
    from codebench.bench.suite import bench_dirname

    for folder in ([f"{label}@{name}"] if name else []) + [label]:
        for spec in benchmarks:
            f = out.eval_dir(folder, bench_dirname(spec)) / "results.json"
            written = results.read(f, results.BenchmarkResults)
            if written is not None:
                cfg = written.config
                if cfg:
                    return {k: cfg[k] for k in (*SETTINGS, "options") if k in cfg}, f
    return {}, None


def eval_config(args: argparse.Namespace, out: Any, label: str, benchmarks: list[str]):
    """(EvalConfig, where its settings came from): flags given > stage 04's settings for this
    model in `out` > the profile defaults (params.EvaluateSection; seed 0, every problem)."""
    from codebench.bench.runner import EvalConfig

    d = _defaults()
    base = {k: d[k] for k in SETTINGS if k in d} | {"seed": 0, "limit": None}  # all problems
    base["options"] = {"mask_seed": d["fim_seed"]}
    found, where = stage04_settings(out, label, benchmarks, getattr(args, "name", None))
    base.update(found)
    given = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    if given.get("limit") == 0:
        given["limit"] = None  # --limit 0: every problem
    if "ks" in given:
        given["ks"] = [int(k) for k in str(given["ks"]).replace(" ", "").split(",") if k]
    if args.fim_seed is not None:
        given["options"] = {**base.get("options", {}), "mask_seed": args.fim_seed}
    if "temperature" in given and given["temperature"] == 0 and "n" not in given:
        given["n"] = 1  # greedy: one sample, whatever the stored n was
    settings = {**base, **given}
    settings["ks"] = tuple(settings["ks"])
    source = f"as {where}" if where else "profile defaults (params.EvaluateSection)"
    if given:
        source += " except " + ", ".join(f"--{k.replace('_', '-')}" for k in given)
    settings["name"] = getattr(args, "name", None)
    return EvalConfig(**settings), source


def ensure_data(tasks: list, data_dir: str | None, *, fetcher=None, log=print) -> None:
    """Fetch missing benchmark data on first use, as the preflight does for `reproduce`: into
    the user data folder (when that is where data is read from and the network is allowed);
    else a BenchError naming the files and the `codebench fetch-data` command."""
    from codebench.bench.tasks import BenchError
    from codebench.fetch import fetch_missing, network_allowed, set_of
    from codebench.paths import DataDirError, data_source, missing_data

    files = [Path(f) for t in tasks for f in t.data_files()]
    if missing_data(files) is None:
        return
    try:
        root, where = data_source(data_dir)
    except DataDirError as e:
        raise BenchError(str(e)) from None
    rels = []
    for f in files:
        try:
            rel = f.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
        if not f.is_file() and set_of(rel):
            rels.append(rel)
    if rels and where == "shipped" and network_allowed():
        log(f"codebench: fetching {len(rels)} missing data file(s) into {root}")
        fetch_missing(root, rels, log=log, fetcher=fetcher)
    still = missing_data(files)
    if still:
        raise BenchError(still)


def main(args: argparse.Namespace) -> int:
    from codebench.bench.canary import CanaryError
    from codebench.bench.registry import get_task
    from codebench.bench.suite import (
        bench_dirname,
        evaluate_variants,
        load_results,
        make_backend,
        summary_lines,
    )
    from codebench.bench.tasks import BenchError
    from codebench.models import ModelNotFoundError

    try:
        benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
        if not benchmarks:
            raise BenchError("--benchmarks: no benchmark named")
        tasks = [get_task(spec, args.data_dir) for spec in benchmarks]  # unknown names and
        ensure_data(tasks, args.data_dir)  # protocols, missing data: before any model loads
        label, out, model_run = _target(args)
        config, source = eval_config(args, out, label, benchmarks)
        print(f"settings: {source}")
        options: dict[str, Any] = {}
        if args.backend == "openai":
            options = {"model": args.model, "chat": args.chat}
            if args.base_url:
                options["base_url"] = args.base_url
        elif args.backend == "hf":
            options = {"dtype": args.dtype, "trust_remote_code": args.trust_remote_code}
        path = Path(args.model).expanduser()
        local = not args.run and args.backend != "openai" and path.exists()
        spec = str(path) if local else args.model  # a variant name, hub id or served model
        print(f"codebench eval: {args.model} as {label!r} -> {out.root / 'eval' / label}")
        backend = make_backend(
            spec, model_run, kind=args.backend, device=args.device, options=options
        )
        out.root.mkdir(parents=True, exist_ok=True)
        failed = None
        try:
            summary = evaluate_variants(
                out,
                [label],
                benchmarks,
                config,
                backends={label: backend},
                data_dir=args.data_dir,
                progress=not args.quiet,
            )
        except CanaryError as e:
            failed = e
            summary = None
    except (BenchError, ModelNotFoundError, ValueError, OSError) as e:
        print(f"codebench: error: {e}", file=sys.stderr)
        return 1
    if failed is not None:
        print(f"codebench: error: {failed}", file=sys.stderr)
        return 1
    for line in summary_lines(summary):
        print(line)
    table = comparison_table(out, label, [bench_dirname(b) for b in benchmarks], load_results)
    if len(table):
        cols = ["evaluation", "settings", "benchmark", "protocol", "metric", "value"]
        cols += ["ci_low", "ci_high", "problems", "samples"]
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    folder = summary["results"][0].get("evaluation", label) if summary["results"] else label
    print(f"results: {out.root / 'eval' / folder}/<benchmark>/results.json")
    return 0


def comparison_table(out: Any, label: str, bench_dirs: list[str], load_results: Any):
    """Every configuration of `label` evaluated in `out` on these benchmarks (results_table
    rows with a metric), this run's and earlier ones, side by side."""
    from codebench.bench.suite import results_table

    mine = [
        r
        for r in load_results(out)
        if r.get("variant") == label and Path(r.get("dir", "")).name in bench_dirs
    ]
    table = results_table(mine).dropna(subset=["metric"])
    return table.sort_values(["benchmark", "metric", "evaluation"], kind="stable")
