"""I/O generation: run each unified function in the sandbox and keep checked pairs.

Per function (`IOConfig` holds every limit):

1. Candidate inputs: the record's stored pairs' inputs first, then fresh inputs from its
   input spec (drawn here, seeded) or its `input_generator` (run in the sandbox, seeded), up to
   `call_budget` distinct inputs (canonical-JSON dedup; plain JSON; `max_input_chars`).
2. Run A calls the function on every candidate (fresh argument copy per call, per-call timeout,
   seeds A). Run B, on a second executor (another warm interpreter, so another string-hash
   seed), calls it again in *reverse order* with other seeds: an output or outcome that differs
   marks the function non-deterministic (random, time, set order, global state).
3. Per pair: the output must be plain JSON within `max_output_chars`; the arguments after the
   call are compared with the pristine input (mutation check).
4. Verdict, first match wins: load-error, non-deterministic, mutates-input, < `min_pairs`
   successful pairs (the commonest call failure, else too-few-pairs), constant-output (one
   output for all successful inputs, at least two), else kept with at most `max_pairs` pairs
   (distinct outputs preferred).

Stored pairs are also checked against our outputs (`reproduced`): exact canonical JSON, or
within the verification tolerance.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from codebench.codeio import annotate, execute
from codebench.codeio.records import NotPlain, canonical, to_plain
from codebench.codeio.verify import values_match
from codebench.sandbox.outcome import Outcome


@dataclass
class IOConfig:
    """Limits of I/O generation (see the module doc)."""

    max_pairs: int = 4  # pairs kept per function
    min_pairs: int = 2  # fewer successful distinct pairs: the function is dropped
    call_budget: int = 12  # distinct candidate inputs called per function
    max_input_chars: int = 1024  # canonical JSON size limits (CodeI/O: ~1KB)
    max_output_chars: int = 1024
    call_timeout: float = 2.0  # seconds per call
    function_budget: float = 4.0  # CPU seconds for all calls of one function in one run
    check_determinism: bool = True
    drop_mutating: bool = True
    check_stored: bool = (
        True  # stored pairs that our deterministic run does not reproduce drop the function
    )
    seed: int = 0
    max_value_bytes: int = 1 << 18  # what one call may send back
    chunk: int = 32  # functions per sandbox batch (and per resumable write)


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed fixed by `parts`."""
    h = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def _plain_input(value: Any, cfg: IOConfig) -> tuple[dict | None, str | None]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k.isidentifier() for k in value
    ):
        return None, "not-serializable"
    try:
        v = to_plain(value)
    except NotPlain:
        return None, "not-serializable"
    if len(canonical(v)) > cfg.max_input_chars:
        return None, "too-large"
    return v, None


def candidates(
    unified: dict, cfg: IOConfig, generated: list[Any] | None = None
) -> tuple[list[dict], list[bool], Counter]:
    """Distinct plain candidate inputs (stored first), flags 'is stored', skipped-input reasons."""
    seen: set[str] = set()
    out: list[dict] = []
    stored_flags: list[bool] = []
    skipped: Counter = Counter()
    pool: list[tuple[Any, bool]] = [(io["input"], True) for io in unified.get("ios") or []]
    if unified.get("input_spec"):
        seed = derive_seed(cfg.seed, unified["fid"], "inputs")
        pool += [
            (v, False)
            for v in annotate.draw_inputs(unified["input_spec"], seed, cfg.call_budget * 2)
        ]
    pool += [(v, False) for v in generated or []]
    for value, stored in pool:
        if len(out) >= cfg.call_budget:
            break
        v, why = _plain_input(value, cfg)
        if why:
            skipped[f"input-{why}"] += 1
            continue
        key = canonical(v)
        if key in seen:
            skipped["input-duplicate"] += 1
            continue
        seen.add(key)
        out.append(v)
        stored_flags.append(stored)
    return out, stored_flags, skipped


def _values(result: Any, n: int) -> tuple[list[Any], str | None]:
    """Per-call results of a call job; a job-level failure (load error) applies to every call."""
    vals = getattr(result, "values", None)
    if vals is not None and len(vals) == n:
        return list(vals), None
    detail = getattr(result, "detail", "") or str(getattr(result, "outcome", "failed"))
    return [None] * n, detail


def _checked(call: Any) -> Any:
    """A call reported as passed whose value is not the wrapper's [output, arguments after]
    pair (a program that forks at import can answer in its parent's place) is a failed call."""
    value = getattr(call, "value", None)
    if not getattr(call, "ok", False) or (isinstance(value, (list, tuple)) and len(value) == 2):
        return call
    return dataclasses.replace(
        call,
        outcome=Outcome.FAILED,
        value=None,
        error="malformed reply: not an (output, arguments) pair",
    )


def analyze(
    unified: dict,
    cands: list[dict],
    stored: list[bool],
    res_a: Any,
    res_b: Any | None,
    cfg: IOConfig,
    skipped: Counter | None = None,
) -> dict:
    """The ios.jsonl record of one function from its two runs (pure: testable with fakes)."""
    fid = unified["fid"]
    rec: dict[str, Any] = {
        "fid": fid,
        "kept": False,
        "reason": None,
        "pairs": [],
        "n_candidates": len(cands),
    }
    if not cands:
        bad = Counter(
            {
                k.removeprefix("input-"): v
                for k, v in (skipped or {}).items()
                if k != "input-duplicate"
            }
        )
        rec["reason"] = bad.most_common(1)[0][0] if bad else "too-few-pairs"
        rec["detail"] = "no usable candidate inputs" + (
            f" ({dict(skipped)})" if skipped else " (no stored pairs, input spec or generator)"
        )
        return rec
    va, job_error = _values(res_a, len(cands))
    if job_error is not None:
        rec["reason"] = execute.call_reason(str(getattr(res_a, "outcome", "failed")), job_error)
        rec["detail"] = job_error[:500]
        return rec
    vb = list(reversed(_values(res_b, len(cands))[0])) if res_b is not None else None
    va = [_checked(c) for c in va]
    vb = [_checked(c) for c in vb] if vb is not None else None
    ok, pair_reasons, details, nondet, repro = _pairs(unified, cands, stored, va, vb, cfg)
    rec.update(
        n_ok=len(ok),
        pair_reasons=dict(pair_reasons),
        nondeterministic_calls=len(nondet),
        mutating_calls=sum(m for *_, m in ok),
        distinct_outputs=len({canonical(o) for _, _, o, _ in ok}),
    )
    if any(stored):
        rec["reproduced"] = {
            "stored": sum(stored),
            **{k: repro[k] for k in ("exact", "tolerance", "mismatch", "failed")},
        }
    if details:
        rec["detail"] = str(details[0])[:300]
    if pair_reasons and set(pair_reasons) == {"load-error"}:
        rec["reason"] = "load-error"
        return rec
    rec["reason"] = _verdict(rec, ok, pair_reasons, nondet, repro, cfg)
    if rec["reason"] is None:
        rec["kept"] = True
        rec["pairs"] = [
            {"idx": j, "input": inp, "output": out}
            for j, (_, inp, out, _) in enumerate(_select(ok, cfg.max_pairs))
        ]
    return rec


def _pairs(
    unified: dict, cands: list[dict], stored: list[bool], va: list, vb: list | None, cfg: IOConfig
):
    """Classify every call of run A against run B: (ok pairs, pair reasons, details,
    non-deterministic call indices, stored-pair reproduction counts)."""
    pair_reasons: Counter = Counter()
    ok: list[tuple[int, dict, Any, bool]] = []
    details: list[str] = []
    nondet: list[int] = []
    repro: Counter = Counter()
    for i, (inp, ca) in enumerate(zip(cands, va, strict=True)):
        cb = vb[i] if vb is not None else None
        if not ca.ok:
            pair_reasons[execute.call_reason(ca.outcome, ca.error)] += 1
            details.append(ca.error)
            if (
                cb is not None
                and cb.ok
                and execute.call_reason(ca.outcome, ca.error)
                not in ("timeout", "sandbox-error", "too-large")
            ):
                nondet.append(i)
            repro["failed"] += stored[i]
            continue
        out_raw, after = ca.value
        if (
            cb is not None
            and not cb.ok
            and execute.call_reason(cb.outcome, cb.error) in ("timeout", "sandbox-error")
        ):
            pair_reasons["timeout"] += 1  # the check run could not confirm this pair
            repro["failed"] += stored[i]
            continue
        if cb is not None and not _same(cb, out_raw):
            nondet.append(i)
        try:
            out = to_plain(out_raw)
        except NotPlain as e:
            pair_reasons["not-serializable"] += 1
            details.append(str(e))
            repro["failed"] += stored[i]
            continue
        if stored[i]:
            repro[_reproduces(unified, inp, out)] += 1
        if len(canonical(out)) > cfg.max_output_chars:
            pair_reasons["too-large"] += 1
            continue
        ok.append((i, inp, out, _mutated(inp, after)))
    return ok, pair_reasons, details, nondet, repro


def _verdict(
    rec: dict, ok: list, pair_reasons: Counter, nondet: list[int], repro: Counter, cfg: IOConfig
) -> str | None:
    if nondet:
        return "non-deterministic"
    if cfg.drop_mutating and rec["mutating_calls"]:
        return "mutates-input"
    if cfg.check_stored and repro["mismatch"]:
        return "irreproducible"
    if len(ok) < cfg.min_pairs:
        return pair_reasons.most_common(1)[0][0] if pair_reasons else "too-few-pairs"
    if rec["distinct_outputs"] == 1:
        return "constant-output"
    return None


def _same(cb: Any, out_a: Any) -> bool:
    if not cb.ok:
        return False
    out_b = cb.value[0]
    try:
        pa, pb = to_plain(out_a), to_plain(out_b)
    except NotPlain:  # sets, NaN and the like: compare as received
        return _loose_equal(out_a, out_b)
    return canonical(pa) == canonical(pb) or values_match(pb, pa)


def _loose_equal(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN and sets compare as sets (order-free)."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(_loose_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_loose_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _mutated(inp: dict, after: Any) -> bool:
    try:
        return canonical(to_plain(after)) != canonical(inp)
    except NotPlain:
        return True  # e.g. a list argument turned into a set


def _reproduces(unified: dict, inp: dict, out: Any) -> str:
    key = canonical(inp)
    for io in unified.get("ios") or []:
        try:
            if canonical(to_plain(io["input"])) != key:
                continue
            stored = to_plain(io["output"])
        except NotPlain:
            return "mismatch"
        if canonical(stored) == canonical(out):
            return "exact"
        return "tolerance" if values_match(out, stored) else "mismatch"
    return "mismatch"


def _select(ok: list[tuple[int, dict, Any, bool]], n: int) -> list[tuple[int, dict, Any, bool]]:
    """First `n` pairs, one per distinct output before repeating an output; original order."""
    seen: set[str] = set()
    first, rest = [], []
    for item in ok:
        key = canonical(item[2])
        (rest if key in seen else first).append(item)
        seen.add(key)
    chosen = (first + rest)[:n]
    return sorted(chosen, key=lambda t: t[0])


# --------------------------------------------------------------------------- running
def _run_generators(
    records: list[dict], cfg: IOConfig, executor: execute.Executor
) -> dict[str, tuple[list[Any], str | None, str | None]]:
    """Inputs drawn from each record's `input_generator` in the sandbox: (inputs, reason, detail)."""
    todo = [r for r in records if r.get("input_generator") and not r.get("input_spec")]
    if not todo:
        return {}
    jobs = [
        execute.generator_job(
            r,
            derive_seed(cfg.seed, r["fid"], "gen"),
            cfg.call_budget * 2,
            cfg.call_timeout * 5,
            cfg.max_value_bytes,
        )
        for r in todo
    ]
    out = {}
    for r, res in zip(todo, executor.map(jobs), strict=True):
        (v,), err = _values(res, 1)
        if err is not None:
            out[r["fid"]] = ([], execute.call_reason(str(res.outcome), err), err)
        elif not v.ok:
            out[r["fid"]] = ([], execute.call_reason(v.outcome, v.error), v.error)
        elif not isinstance(v.value, list | tuple):
            out[r["fid"]] = ([], "exception", "input_generator loop did not return a list")
        else:
            out[r["fid"]] = (list(v.value), None, None)
    return out


def generate_chunk(
    records: list[dict],
    cfg: IOConfig,
    executor: execute.Executor,
    check_executor: execute.Executor | None = None,
) -> list[dict]:
    """ios.jsonl records for a batch of unified records (two runs, concurrently when possible)."""
    gen = _run_generators(records, cfg, executor)
    plans = []
    for r in records:
        generated, gen_reason, gen_detail = gen.get(r["fid"], ([], None, None))
        cands, stored, skipped = candidates(r, cfg, generated)
        seeds_a = [derive_seed(cfg.seed, r["fid"], i, "A") for i in range(len(cands))]
        seeds_b = [derive_seed(cfg.seed, r["fid"], i, "B") for i in range(len(cands))]
        plans.append((r, cands, stored, skipped, (gen_reason, gen_detail), seeds_a, seeds_b))
    live = [p for p in plans if p[1]]
    jobs_a = [
        execute.probe_job(
            r,
            list(zip(sa, c, strict=True)),
            cfg.call_timeout,
            cfg.max_value_bytes,
            cfg.function_budget,
        )
        for r, c, _, _, _, sa, _ in live
    ]
    jobs_b = [
        execute.probe_job(
            r,
            list(zip(reversed(sb), reversed(c), strict=True)),
            cfg.call_timeout,
            cfg.max_value_bytes,
            cfg.function_budget,
        )
        for r, c, _, _, _, _, sb in live
    ]
    res_a, res_b = _run_both(
        jobs_a, jobs_b if cfg.check_determinism else None, executor, check_executor
    )
    by_fid_a = {p[0]["fid"]: ra for p, ra in zip(live, res_a, strict=True)}
    by_fid_b = (
        {p[0]["fid"]: rb for p, rb in zip(live, res_b, strict=True)} if res_b is not None else {}
    )
    out = []
    for r, cands, stored, skipped, (gen_reason, gen_detail), _, _ in plans:
        rec = analyze(
            r, cands, stored, by_fid_a.get(r["fid"]), by_fid_b.get(r["fid"]), cfg, skipped
        )
        if skipped:
            rec["skipped_inputs"] = dict(skipped)
        if gen_reason:
            rec["generator_error"] = f"{gen_reason}: {gen_detail}"[:300]
            if not cands:
                rec["reason"], rec["detail"] = (
                    gen_reason,
                    f"input_generator failed: {gen_detail}"[:300],
                )
        ra, rb = by_fid_a.get(r["fid"]), by_fid_b.get(r["fid"])
        rec["isolation"] = getattr(ra, "isolation", None)
        broken = [x for x in (ra, rb) if x is not None and str(x.outcome) == "sandbox-error"]
        if broken or gen_reason == "sandbox-error":
            # our failure, not the function's: never a final verdict (rerun on resume)
            rec.update(kept=False, reason="sandbox-error", pairs=[])
            rec["detail"] = (broken[0].detail if broken else f"input_generator: {gen_detail}")[:300]
        out.append(rec)
    return out


def _run_both(
    jobs_a: list, jobs_b: list | None, ex_a: execute.Executor, ex_b: execute.Executor | None
) -> tuple[list, list | None]:
    if not jobs_a:
        return [], [] if jobs_b is not None else None
    if jobs_b is None:
        return ex_a.map(jobs_a), None
    if ex_b is None or ex_b is ex_a:
        res = ex_a.map(jobs_a + jobs_b)
        return res[: len(jobs_a)], res[len(jobs_a) :]
    with ThreadPoolExecutor(2) as pool:
        fa = pool.submit(ex_a.map, jobs_a)
        fb = pool.submit(ex_b.map, jobs_b)
        return fa.result(), fb.result()


def generate_all(
    records: list[dict],
    cfg: IOConfig,
    executor: execute.Executor,
    check_executor: execute.Executor | None = None,
    on_chunk: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Run `generate_chunk` over `records` in chunks; `on_chunk` gets each chunk's records."""
    out: list[dict] = []
    for start in range(0, len(records), cfg.chunk):
        part = generate_chunk(records[start : start + cfg.chunk], cfg, executor, check_executor)
        if on_chunk:
            on_chunk(part)
        out.extend(part)
    return out


def config_dict(cfg: IOConfig) -> dict:
    return asdict(cfg)
