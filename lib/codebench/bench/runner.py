"""generate -> extract -> sandbox -> records -> scores, resumable, with canaries.

`evaluate(backend, "humaneval", out_dir, model="base")` runs one benchmark for one model:

1. canaries first (references must pass, wrong answers must fail; else `CanaryError`);
2. the samples missing from `out_dir/samples.jsonl` are generated in batches through the
   `codebench.generate` Backend, extracted, run in the sandbox and appended (one record per
   sample, keyed by task id, sample index, model and protocol, flushed per batch), so a run
   killed at any point continues without losing or duplicating records;
3. pass@k (k <= n) with bootstrap intervals over problems, the outcome breakdown and every
   setting, package version and data hash go to `out_dir/results.json`.

`rescore(out_dir)` recomputes the scores from the records alone (optionally re-extracting and
re-running the programs), never regenerating.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codebench import passk
from codebench import results as schema
from codebench.bench.canary import CanaryError, run_canaries
from codebench.bench.registry import get_task
from codebench.bench.tasks import DEFAULT_TIMEOUT_S, BenchError, Problem, Task
from codebench.records import JsonlStore, read_jsonl

KEY = ("task_id", "sample", "model", "protocol")
DETAIL_CHARS = 2000
GEN_KEYS = ("temperature", "top_p", "top_k", "max_new_tokens", "repetition_penalty", "seed")


@dataclass
class EvalConfig:
    """Settings of one evaluation run (every field is recorded in results.json)."""

    n: int = 1  # samples per problem
    temperature: float = 0.0  # 0 = greedy (then n is forced to 1)
    top_p: float = 0.95
    top_k: int = 0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 512
    # first N problems (MTPB: problems, each with 5 test cases); or per benchmark:
    # {"pyfamilies": None, "default": 8} (spec or name -> N or None = all; "default" for the rest)
    limit: int | dict[str, int | None] | None = None
    ks: tuple[int, ...] = (1, 10, 100)
    seed: int = 0
    batch_size: int = 8  # prompts per backend call (and per records flush)
    timeout: float = DEFAULT_TIMEOUT_S  # sandbox seconds per program (tasks.TIMEOUTS)
    bootstrap: int = 1000  # bootstrap resamples for the intervals
    canaries: bool = True
    options: dict[str, Any] = field(default_factory=dict)  # task options (e.g. fim seed)
    # a named evaluation: its outputs go to eval/<variant>@<name>/<bench>/ (suite), so several
    # configurations of one variant coexist; None: eval/<variant>/<bench>/ unless that holds
    # samples of other settings, then eval/<variant>@<settings tag>/ (see `settings_tag`)
    name: str | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise BenchError(f"n must be >= 1, got {self.n}")
        for lim in self.limit.values() if isinstance(self.limit, dict) else [self.limit]:
            if lim is not None and (not isinstance(lim, int) or lim < 1):
                raise BenchError(f"limit must be >= 1 or None, got {self.limit}")
        if self.temperature < 0:
            raise BenchError(f"temperature must be >= 0, got {self.temperature}")
        if self.temperature == 0 and self.n > 1:
            raise BenchError(
                "greedy decoding (temperature 0) gives identical samples: use n=1, or temperature > 0 for pass@k"
            )
        self.ks = tuple(int(k) for k in self.ks)
        if self.name is not None and not _NAME_RE.fullmatch(str(self.name)):
            raise BenchError(
                f"evaluation name {self.name!r}: use letters, digits, '.', '_', '-' and '=' "
                "(at most 64; it names a folder)"
            )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def limit_for(self, spec: str) -> int | None:
        """The problem limit of one benchmark: `limit` itself, or its entry for the spec
        (`mbpp:instruct`), else for the name (`mbpp`), else "default" (absent: no limit)."""
        if not isinstance(self.limit, dict):
            return self.limit
        name = spec.split(":", 1)[0]
        for key in (spec, name, "default"):
            if key in self.limit:
                return self.limit[key]
        return None

    def gen_settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in GEN_KEYS}


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=-]{0,63}")


def gen_key(settings: dict[str, Any]) -> str:
    """A short fingerprint of the generation settings stored with every record."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def prompt_key(task: Task) -> str:
    """A fingerprint of what the model is shown under the task's protocol: the task's settings
    (protocol, reference protocol, ...; file paths left out, so a moved run keeps its key) and
    the prompt bytes (chat messages for instruct protocols) of its first problems. Part of the
    resume key: samples generated under another prompt wording are never resumed."""
    info = {k: v for k, v in task.info().items() if k != "path"}
    parts: list[Any] = [info]
    try:
        for p in task.problems()[:3]:
            if task.multi_turn:
                parts.append(task.turns(p))
            else:
                parts.append(task.prompt(p, chat=lambda m: json.dumps(m, sort_keys=True)))
    except Exception as e:  # noqa: BLE001 - a task that cannot render here keys by its settings
        parts.append(f"unrendered: {type(e).__name__}")
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def settings_key(cfg: EvalConfig, task: Task) -> str:
    """The resume key of a configuration: generation settings + prompt protocol (not n: more
    samples of the same configuration extend it)."""
    return gen_key({**cfg.gen_settings(), "prompt": prompt_key(task)})


def settings_tag(cfg: EvalConfig, key: str) -> str:
    """A readable folder suffix for an unnamed configuration, e.g. 't0.2-n10-3f9a1c2b'."""
    return f"t{cfg.temperature:g}-n{cfg.n}-{key[:8]}"


def holds_other_settings(out_dir: str | Path, model: str, protocol: str, key: str) -> bool:
    """True when out_dir/samples.jsonl has records of (model, protocol) with another key."""
    f = Path(out_dir) / "samples.jsonl"
    if not f.is_file():
        return False
    try:
        recs = read_jsonl(f)
    except Exception:  # noqa: BLE001 - an unreadable file is reported by evaluate itself
        return False
    return any(
        r.get("model") == model and r.get("protocol") == protocol and r.get("gen_key") != key
        for r in recs
    )


def _gen_config(cfg: EvalConfig, *, n: int, max_new_tokens: int, stop: list[str], seed: int):
    from codebench.generate import GenerationConfig

    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        repetition_penalty=cfg.repetition_penalty,
        n=n,
        stop=list(stop),
        seed=seed,
    )


def _batch_seed(base: int, task_id: str, first_sample: int) -> int:
    h = hashlib.sha256(f"{base}:{task_id}:{first_sample}".encode()).digest()
    return int.from_bytes(h[:4], "big")


def _tail(text: str | None, limit: int = DETAIL_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else "..." + text[-limit:]


class _Progress:
    """tqdm when available (stderr, slow refresh so papermill logs stay readable)."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.bar = None
        if enabled and total:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=total, desc=desc, file=sys.stderr, mininterval=5.0, leave=True
                )
            except ImportError:  # pragma: no cover
                self.bar = None

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------- one batch
@dataclass
class _Unit:
    problem: Problem
    sample: int
    raw: str | list[str] = ""
    finish_reason: str = ""
    n_tokens: int = 0
    error: str | None = None
    gen_s: float = 0.0
    seed: int = 0


def _generate_single(
    task: Task, backend: Any, problems: list[tuple[Problem, list[int]]], cfg: EvalConfig, chat
) -> list[_Unit]:
    """One backend call per group of problems sharing (samples wanted, budget, stops)."""
    groups: dict[tuple, list[tuple[Problem, list[int]]]] = {}
    for p, missing in problems:
        key = (len(missing), task.max_new_tokens(p, cfg.max_new_tokens), tuple(task.stop(p)))
        groups.setdefault(key, []).append((p, missing))
    units: list[_Unit] = []
    for (m, budget, stop), items in groups.items():
        seed = _batch_seed(cfg.seed, items[0][0].task_id, items[0][1][0])
        gcfg = _gen_config(cfg, n=m, max_new_tokens=budget, stop=list(stop), seed=seed)
        prompts = [task.prompt(p, chat) for p, _ in items]
        t0 = time.perf_counter()
        outs = backend.generate(prompts, gcfg)
        per = (time.perf_counter() - t0) / max(1, len(items) * m)
        if len(outs) != len(items):
            raise BenchError(f"backend returned {len(outs)} results for {len(items)} prompts")
        for (p, missing), comps in zip(items, outs, strict=True):
            for idx, c in zip(missing, comps, strict=False):
                units.append(
                    _Unit(p, idx, c.text, c.finish_reason, int(c.n_tokens or 0), c.error, per, seed)
                )
    return units


def _generate_multi(
    task: Task, backend: Any, problems: list[tuple[Problem, list[int]]], cfg: EvalConfig
) -> list[_Unit]:
    """Multi-turn: every (problem, sample) is its own chain; one backend call per turn and budget."""
    units = [
        _Unit(p, i, raw=[], seed=_batch_seed(cfg.seed, p.task_id, i))
        for p, missing in problems
        for i in missing
    ]
    contexts = {id(u): "" for u in units}
    turns = {id(u): task.turns(u.problem) for u in units}
    max_turns = max((len(t) for t in turns.values()), default=0)
    for t in range(max_turns):
        active = [u for u in units if len(turns[id(u)]) > t and u.error is None]
        by_budget: dict[tuple, list[_Unit]] = {}
        for u in active:
            contexts[id(u)] += turns[id(u)][t]
            key = (task.max_new_tokens(u.problem, cfg.max_new_tokens), tuple(task.stop(u.problem)))
            by_budget.setdefault(key, []).append(u)
        for (budget, stop), group in by_budget.items():
            seed = _batch_seed(cfg.seed, group[0].problem.task_id, group[0].sample * 1000 + t)
            gcfg = _gen_config(cfg, n=1, max_new_tokens=budget, stop=list(stop), seed=seed)
            t0 = time.perf_counter()
            outs = backend.generate([contexts[id(u)] for u in group], gcfg)
            per = (time.perf_counter() - t0) / max(1, len(group))
            if len(outs) != len(group):
                raise BenchError(f"backend returned {len(outs)} results for {len(group)} prompts")
            for u, comps in zip(group, outs, strict=True):
                c = comps[0]
                u.raw.append(c.text)  # type: ignore[union-attr]
                u.n_tokens += int(c.n_tokens or 0)
                u.finish_reason = c.finish_reason
                u.gen_s += per
                if c.finish_reason == "error":
                    u.error = c.error or "generation error"
                contexts[id(u)] += task.absorb(c.text)
    return units


def _score_units(
    task: Task,
    units: list[_Unit],
    sandbox: Any,
    on_first: Callable[[_Unit, str, str, str], None] | None = None,
    retry_only: Collection[int] = (),
) -> list[tuple[_Unit, str, str, str, float]]:
    """(unit, program, outcome, detail, exec seconds) for every generated unit.

    on_first(unit, program, outcome, detail): the first attempt's verdict of a unit whose run
    is retried (starved of CPU), called before the retry runs so the caller can store it;
    retry_only: positions in `units` whose first attempt was stored earlier (run the retry only).
    """
    programs, jobs, slots = [], [], []
    for u in units:
        try:
            program = task.extract(u.problem, u.raw)
            job = task.job(u.problem, program)
        except Exception as e:  # noqa: BLE001 - unextractable output is the sample's failure
            programs.append(("", "failed", f"extraction error: {type(e).__name__}: {e}"))
            slots.append(None)
            continue
        programs.append((program, None, None))
        slots.append(len(jobs) if job is not None else -1)
        if job is not None:
            jobs.append(job)
    unit_of = {slot: k for k, slot in enumerate(slots) if slot is not None and slot >= 0}
    imap = getattr(sandbox, "imap", None)
    if imap is None or not jobs:
        results = sandbox.map(jobs) if jobs else []
    else:

        def first(slot: int, res: Any) -> None:
            if on_first is not None:
                k = unit_of[slot]
                program = programs[k][0]
                on_first(units[k], program, *task.verdict(units[k].problem, program, res))

        results = [None] * len(jobs)
        again = [slots[k] for k in retry_only if slots[k] is not None and slots[k] >= 0]
        for slot, res in imap(jobs, first_pass=first, retry_only=again):
            results[slot] = res
    out = []
    for u, (program, outcome, detail), slot in zip(units, programs, slots, strict=True):
        if slot is None:
            out.append((u, program, outcome, detail, 0.0))
            continue
        result = results[slot] if slot >= 0 else None
        outcome, detail = task.verdict(u.problem, program, result)
        out.append((u, program, outcome, detail, float(getattr(result, "duration_s", 0.0) or 0.0)))
    return out


def _record(
    task: Task,
    model: str,
    unit: _Unit,
    program: str,
    outcome: str,
    detail: str,
    exec_s: float,
    gkey: str,
    isolation: str | None = None,
) -> dict:
    return {
        "task_id": unit.problem.task_id,
        "sample": unit.sample,
        "model": model,
        "protocol": task.protocol,
        "benchmark": task.name,
        "raw": unit.raw,
        "program": program,
        "outcome": outcome,
        "passed": outcome == "passed",
        "detail": _tail(detail),
        "exec_s": round(exec_s, 4),
        "gen_s": round(unit.gen_s, 4),
        "finish_reason": unit.finish_reason,
        "n_tokens": unit.n_tokens,
        "seed": unit.seed,
        "gen_key": gkey,
        "isolation": isolation,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _rerun_sandbox_errors(
    task: Task,
    store: JsonlStore,
    problems: list[Problem],
    n: int,
    model: str,
    sandbox: Any,
    gkey: str,
) -> int:
    """Run again (from the stored raw output, never regenerating) every stored record of this
    model and protocol whose outcome is `sandbox-error` (our failure, not the sample's, so
    never a final verdict) or that holds a first attempt whose retry a kill interrupted
    (`retry_pending`: only the retry runs). The records are replaced in place; returns how many."""
    by_id = {p.task_id: p for p in problems}
    stale = [
        r
        for r in store
        if (r.get("outcome") == "sandbox-error" or r.get("retry_pending"))
        and r["model"] == model
        and r["protocol"] == task.protocol
        and r["task_id"] in by_id
        and r["sample"] < n
    ]
    if not stale:
        return 0
    units = [
        _Unit(
            by_id[r["task_id"]],
            r["sample"],
            r.get("raw", ""),
            r.get("finish_reason", ""),
            int(r.get("n_tokens") or 0),
            None,
            float(r.get("gen_s") or 0.0),
            int(r.get("seed") or 0),
        )
        for r in stale
    ]
    iso = getattr(sandbox, "isolation_label", None)
    again = [k for k, r in enumerate(stale) if r.get("retry_pending")]
    fresh = []
    for old, (u, prog, oc, det, ex) in zip(
        stale, _score_units(task, units, sandbox, retry_only=again), strict=True
    ):
        rec = {**old, **_record(task, model, u, prog, oc, det, ex, old.get("gen_key", gkey), iso)}
        rec.pop("retry_pending", None)
        fresh.append(rec)
    return store.replace(fresh)


# ---------------------------------------------------------------------- scoring
def counts_from_records(
    records: list[dict], task_ids: list[str] | None = None, n: int | None = None
) -> dict[str, tuple[int, int]]:
    """{task_id: (samples, passed)} over records (restricted to `task_ids` and sample < n)."""
    counts: dict[str, list[int]] = {}
    wanted = set(task_ids) if task_ids is not None else None
    for r in records:
        if wanted is not None and r["task_id"] not in wanted:
            continue
        if n is not None and r["sample"] >= n:
            continue
        c = counts.setdefault(r["task_id"], [0, 0])
        c[0] += 1
        c[1] += bool(r.get("passed"))
    order = task_ids if task_ids is not None else sorted(counts)
    return {t: (counts[t][0], counts[t][1]) for t in order if t in counts}


def score(
    records: list[dict],
    ks=(1, 10, 100),
    *,
    task_ids: list[str] | None = None,
    n: int | None = None,
    iters: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics, outcome breakdown and per-problem counts from sample records."""
    counts = counts_from_records(records, task_ids, n)
    used = [r for r in records if r["task_id"] in counts and (n is None or r["sample"] < n)]
    outcomes = Counter(r["outcome"] for r in used)
    return {
        "metrics": passk.summarize(counts, ks, iters=iters, seed=seed),
        "outcomes": dict(sorted(outcomes.items())),
        "per_problem": {t: {"n": a, "c": b} for t, (a, b) in counts.items()},
        "problems": len(counts),
        "samples": len(used),
        "n_min": min((a for a, _ in counts.values()), default=0),
    }


# ---------------------------------------------------------------------- public entry points
def _data_hashes(task: Task) -> dict[str, str]:
    from codebench.runs import file_sha256

    return {str(p): file_sha256(p) for p in task.data_files() if Path(p).is_file()}


def _set_aside_other_weights(path: Path, model: str, model_key: str, log) -> None:
    """Samples of `model` generated by other weights than `model_key` are never resumed: the
    file is renamed samples.other-weights-<their key>.jsonl (kept, not read) and the samples
    are generated again."""
    if not path.is_file():
        return
    keys = {r.get("model_key") for r in read_jsonl(path) if r.get("model") == model}
    if not keys or keys == {model_key}:
        return
    old = "-".join(sorted(str(k or "unknown") for k in keys - {model_key}))
    aside = path.with_name(f"samples.other-weights-{old}.jsonl")
    path.replace(aside)
    log(
        f"[evaluate] {path}: samples of {model!r} came from other weights ({old} != "
        f"{model_key}); set aside as {aside.name}, generating again"
    )


def _check_settings(store: JsonlStore, model: str, protocol: str, gkey: str, path: Path) -> None:
    other = {
        r.get("gen_key")
        for r in store
        if r["model"] == model and r["protocol"] == protocol and r.get("gen_key") != gkey
    }
    if other:
        raise BenchError(
            f"{path}: holds samples of {model!r} ({protocol}) generated with other settings "
            f"(gen_key {sorted(map(str, other))} != {gkey}: generation settings or prompt "
            "protocol differ); evaluate into another folder -- a named evaluation "
            "(EvalConfig(name=...), `codebench eval --name`) or `evaluate_variants`, which puts "
            "each configuration in its own eval/<variant>@<tag>/ -- or delete the file to start over"
        )


def evaluate(
    backend: Any,
    benchmark: str | Task,
    out_dir: str | Path,
    *,
    model: str,
    config: EvalConfig | None = None,
    sandbox: Any = None,
    tokenizer: Any = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
    log=print,
    model_key: str | None = None,
) -> dict[str, Any]:
    """Evaluate `model` (a label: variant name or model id) on one benchmark; return results.

    backend    a `codebench.generate` Backend (`generate`, `chat_prompt`); its `tokenizer`
               attribute (if any) supplies FIM tokens unless `tokenizer` is given.
    benchmark  a spec string (`humaneval`, `mbpp:instruct`, `mtpb:single`, ...) or a Task.
    out_dir    folder for samples.jsonl and results.json (e.g. RunLayout.eval_dir(...)).
    config     EvalConfig (n, temperature, top_p, max_new_tokens, limit, ks, seed, ...).
    sandbox    a `codebench.sandbox.Sandbox` (one is created and closed when None).
    model_key  the model's content key (`runs.model_content_key` of a local model folder):
               stored in every record; samples of `model` made by other weights (a retrained
               or recompressed variant) are never resumed -- their file is set aside as
               samples.other-weights-<key>.jsonl and the samples are generated again.

    Raises CanaryError (results.json marks `status: canary-failed`) when the harness fails
    its canaries. A task that cannot run here (FIM without FIM tokens, CodeI/O without a
    held-out file) is skipped: results.json says `status: skipped` with the reason.
    """
    cfg = config or EvalConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task = get_task(benchmark, data_dir, **cfg.options)
    if isinstance(cfg.limit, dict):  # this benchmark's own limit, recorded as a plain number
        cfg = EvalConfig(**{**cfg.__dict__, "limit": cfg.limit_for(task.spec)})
    tok = tokenizer if tokenizer is not None else getattr(backend, "tokenizer", None)
    if hasattr(task, "prepare"):
        task.prepare(tok)
    base = {
        "benchmark": task.spec,
        "task": task.info(),
        "variant": model,
        "model": model,
        "config": asdict(cfg),
        **({"model_key": model_key} if model_key else {}),
    }
    if getattr(task, "runs_itself", False):  # e.g. explain: two generations + text metrics
        gcfg = _gen_config(cfg, n=1, max_new_tokens=cfg.max_new_tokens, stop=[], seed=cfg.seed)
        return task.evaluate(
            backend, out, cfg=gcfg, limit=cfg.limit, variant=model, seed=cfg.seed, sandbox=sandbox
        )
    reason = task.skip_reason(backend)
    if reason:
        log(f"[evaluate] {model} / {task.spec}: {reason}")
        results = {**base, "status": "skipped", "reason": reason}
        results = schema.write(out / "results.json", schema.BenchmarkResults, results)
        return results

    from codebench.runs import provenance

    t_start = time.perf_counter()
    own_sandbox = sandbox is None
    if own_sandbox:
        from codebench.sandbox import Sandbox

        sandbox = Sandbox(timeout=cfg.timeout)
    try:
        problems = task.problems(cfg.limit)
        canary = {"ok": True, "checks": [], "reason": "disabled (canaries=False)"}
        if cfg.canaries:
            canary = run_canaries(task, sandbox)
            if not canary["ok"]:
                results = {
                    **base,
                    "status": "canary-failed",
                    "canary": canary,
                    "provenance": provenance(cfg.seed),
                }
                results = schema.write(out / "results.json", schema.BenchmarkResults, results)
                raise CanaryError(
                    f"{model} / {task.spec}: canary failed, no score reported: {canary['reason']} (see {out / 'results.json'})"
                )
        if model_key is not None:
            _set_aside_other_weights(out / "samples.jsonl", model, model_key, log)
        stats = _run_samples(task, backend, problems, cfg, out, model, sandbox, progress, model_key)
    finally:
        if own_sandbox:
            sandbox.close()
    records = [
        r
        for r in read_jsonl(out / "samples.jsonl")
        if r["model"] == model and r["protocol"] == task.protocol
    ]
    ids = [p.task_id for p in problems]
    scored = score(records, cfg.ks, task_ids=ids, n=cfg.n, iters=cfg.bootstrap, seed=cfg.seed)
    incomplete = [t for t in ids if scored["per_problem"].get(t, {}).get("n", 0) < cfg.n]
    by_difficulty = difficulty_table(problems, scored["per_problem"])
    if by_difficulty:  # e.g. LeetCode's Easy / Medium / Hard (DeepSeek-Coder's table)
        scored["by_difficulty"] = by_difficulty
    results = {
        **base,
        "status": "incomplete" if incomplete else "ok",
        "greedy": cfg.greedy,
        "n": cfg.n,
        **scored,
        "incomplete": incomplete,
        "canary": canary,
        "timing": {**stats, "wall_s": round(time.perf_counter() - t_start, 3)},
        "provenance": provenance(cfg.seed),
        "data": _data_hashes(task),
        "samples_file": "samples.jsonl",
    }
    results = schema.write(out / "results.json", schema.BenchmarkResults, results)
    _log_summary(log, model, task, results)
    return results


def difficulty_table(problems: list[Problem], per_problem: dict) -> dict[str, dict]:
    """{difficulty: {"problems", "solved", "pass@1"}} over problems whose meta names a
    difficulty (pass@1 = mean per-problem pass rate); {} when none does."""
    out: dict[str, dict] = {}
    for p in problems:
        d, c = p.meta.get("difficulty"), per_problem.get(p.task_id)
        if not d or not c or not c["n"]:
            continue
        row = out.setdefault(str(d), {"problems": 0, "passed": 0, "rate_sum": 0.0})
        row["problems"] += 1
        row["passed"] += int(c["c"] > 0)
        row["rate_sum"] += c["c"] / c["n"]
    return {
        d: {
            "problems": r["problems"],
            "solved": r["passed"],
            "pass@1": r["rate_sum"] / r["problems"],
        }
        for d, r in out.items()
    }


def _run_samples(
    task: Task,
    backend: Any,
    problems: list[Problem],
    cfg: EvalConfig,
    out: Path,
    model: str,
    sandbox: Any,
    progress: bool,
    model_key: str | None = None,
) -> dict[str, Any]:
    """Generate, score and append every missing sample; return timing stats."""
    stamp = {"model_key": model_key} if model_key else {}
    gkey = settings_key(cfg, task)
    stats = {"generated": 0, "generate_s": 0.0, "execute_s": 0.0, "generation_errors": 0}
    with JsonlStore(out / "samples.jsonl", KEY) as store:
        _check_settings(store, model, task.protocol, gkey, out / "samples.jsonl")
        _rerun_sandbox_errors(task, store, problems, cfg.n, model, sandbox, gkey)
        todo = []
        for p in problems:
            missing = [
                i for i in range(cfg.n) if not store.has((p.task_id, i, model, task.protocol))
            ]
            if missing:
                todo.append((p, missing))
        bar = _Progress(sum(len(m) for _, m in todo), f"{model}/{task.spec}", progress)
        chat = getattr(backend, "chat_prompt", None)
        step = max(
            1,
            cfg.batch_size
            if task.multi_turn
            else max(1, cfg.batch_size // max(1, min(cfg.n, cfg.batch_size))),
        )
        iso = getattr(sandbox, "isolation_label", None)
        provisional: set[tuple] = set()

        def keep_first(u: _Unit, prog: str, oc: str, det: str) -> None:
            # a first verdict stored before its retry: a kill then redoes only the retry
            rec = _record(task, model, u, prog, oc, det, 0.0, gkey, iso)
            store.append({**rec, **stamp, "retry_pending": True})
            provisional.add((u.problem.task_id, u.sample))

        try:
            for start in range(0, len(todo), step):
                batch = todo[start : start + step]
                t0 = time.perf_counter()
                units = (
                    _generate_multi(task, backend, batch, cfg)
                    if task.multi_turn
                    else _generate_single(task, backend, batch, cfg, chat)
                )
                t1 = time.perf_counter()
                good = [u for u in units if u.finish_reason != "error"]
                stats["generation_errors"] += len(units) - len(good)
                scored = _score_units(task, good, sandbox, on_first=keep_first)
                stats["execute_s"] += time.perf_counter() - t1
                stats["generate_s"] += t1 - t0
                final = [
                    {**_record(task, model, u, prog, oc, det, ex, gkey, iso), **stamp}
                    for u, prog, oc, det, ex in scored
                ]
                store.extend(r for r in final if (r["task_id"], r["sample"]) not in provisional)
                store.replace(r for r in final if (r["task_id"], r["sample"]) in provisional)
                stats["generated"] += len(good)
                bar.update(len(units))
        finally:
            bar.close()
    stats["generate_s"] = round(stats["generate_s"], 3)
    stats["execute_s"] = round(stats["execute_s"], 3)
    return stats


def _log_summary(log, model: str, task: Task, results: dict) -> None:
    m = results.get("metrics", {})
    parts = [f"{k}={v['value']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]" for k, v in m.items()]
    oc = ", ".join(f"{k}={v}" for k, v in results.get("outcomes", {}).items())
    log(
        f"[evaluate] {model} / {task.spec}: {results['problems']} problems, {results['samples']} samples; {'; '.join(parts) or 'no metrics'}; outcomes: {oc}; status {results['status']}"
    )


def rescore(
    path: str | Path,
    *,
    execute: bool = False,
    sandbox: Any = None,
    ks=None,
    write: bool = False,
    data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Recompute scores from `samples.jsonl` (a file or its folder), never regenerating.

    execute=False  metrics from the stored outcomes (exactly what was reported).
    execute=True   re-extract each raw output with the task's current code and re-run it in
                   the sandbox: checks that the stored outcomes still hold.
    With `write`, results.json beside the records is updated (its metrics and outcomes).
    Returns {(model, protocol): results} as {"<model>|<protocol>": {...}}.
    """
    p = Path(path)
    samples = p / "samples.jsonl" if p.is_dir() else p
    if not samples.is_file():
        raise BenchError(f"rescore: no samples file at {samples}")
    res_file = samples.parent / "results.json"
    read = schema.read(res_file, schema.BenchmarkResults)
    prior = read.model_dump(exclude_unset=True) if read is not None else {}
    cfg = read.config if read is not None else {}
    ks = tuple(ks or cfg.get("ks") or (1, 10, 100))
    records = list(read_jsonl(samples))
    if execute:
        records = _reexecute(records, prior, sandbox, data_dir)
    out: dict[str, Any] = {}
    for key in sorted({(r["model"], r["protocol"]) for r in records}):
        sub = [r for r in records if (r["model"], r["protocol"]) == key]
        ids = sorted({r["task_id"] for r in sub}, key=_natural)
        out[f"{key[0]}|{key[1]}"] = score(
            sub,
            ks,
            task_ids=ids,
            n=cfg.get("n"),
            iters=cfg.get("bootstrap", 1000),
            seed=cfg.get("seed", 0),
        )
    if write and prior and len(out) == 1:
        prior.update(next(iter(out.values())))
        prior["rescored"] = {"execute": execute, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        schema.write(res_file, schema.BenchmarkResults, prior)
    return out


def _natural(tid: str) -> tuple:
    import re

    return tuple(int(x) if x.isdigit() else x for x in re.split(r"(\d+)", tid))


def _reexecute(records: list[dict], prior: dict, sandbox: Any, data_dir) -> list[dict]:
    spec = prior.get("benchmark")
    if not spec:
        raise BenchError(
            "rescore(execute=True) needs results.json beside the records (it names the benchmark)"
        )
    options = (prior.get("config") or {}).get("options") or {}
    base_task = get_task(spec, data_dir, **options)
    out = []
    own = sandbox is None
    if own:
        from codebench.sandbox import Sandbox

        sandbox = Sandbox(timeout=(prior.get("config") or {}).get("timeout", 10.0))
    try:
        for protocol in sorted({r["protocol"] for r in records}):
            recs = [r for r in records if r["protocol"] == protocol]
            task = (
                base_task
                if protocol == base_task.protocol
                else type(base_task)(protocol=protocol, data_dir=data_dir, **base_task.options)
            )
            fim = (prior.get("task") or {}).get("fim_tokens")
            if fim and hasattr(task, "tokens"):
                from codebench.models import FimTokens

                task.tokens = FimTokens(*fim)
            by_id = {p.task_id: p for p in task.problems()}
            units = [_Unit(by_id[r["task_id"]], r["sample"], r["raw"]) for r in recs]
            for r, (_, program, outcome, detail, ex) in zip(
                recs, _score_units(task, units, sandbox), strict=True
            ):
                out.append(
                    {
                        **r,
                        "program": program,
                        "outcome": outcome,
                        "passed": outcome == "passed",
                        "detail": _tail(detail),
                        "exec_s": round(ex, 4),
                    }
                )
    finally:
        if own:
            sandbox.close()
    return out
