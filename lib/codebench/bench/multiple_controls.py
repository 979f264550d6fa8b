"""Controls for MultiPL-E verdicts: completions that are right (or wrong) on every problem.

MultiPL-E ships no reference solutions. To check the harness on all problems of a language, an
*oracle* completion returns, on its k-th call, the k-th test's expected expression (written
in the target language, converted to the function's return type). It computes nothing, but
it returns exactly the values a correct solution returns in the order the tests call it, so
it must pass under both verdict modes; a *shifted* oracle returns another case's value on the
last call and must fail. Used by `benchmarks/multiple_controls.py` and the slow tests.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from codebench.bench import multiple_trusted as trusted
from codebench.bench.registry import get_task
from codebench.bench.tasks import BenchError, Problem


def return_type(problem: Problem) -> str:
    sig = [ln for ln in problem.prompt.rstrip().split("\n") if ln.strip()][-1]
    m = re.match(r"\s*(?:public\s+)?(?:static\s+)?(.*?)\s*\b\w+\s*\(", sig)
    if not m:
        raise BenchError(f"{problem.task_id}: cannot read the return type of {sig!r}")
    return m.group(1).strip()


# Near-miss controls: the oracle with one mistake, as a nearly right solution makes one.
#   shifted  the last call returns another case's value (wrong on one case)
#   rotated  off by one: call k returns case k+1's value (wrong wherever neighbours differ)
#   raises   right on every call but the last, which throws / exits with status 1
MUTATIONS = ("shifted", "rotated", "raises")
RAISE = object()  # marker: this call raises


def oracle(problem: Problem, shift: bool | str = False) -> str | None:
    """A base-protocol completion returning each case's expected value in call order;
    `shift` (True = "shifted", or one of MUTATIONS) makes it a near miss that must fail.
    None when the mutation cannot make this problem's oracle wrong (all values equal)."""
    cases = trusted.parse_tests(problem.language, problem.tests, problem.entry_point)
    exps: list = [c.expected for c in cases]
    kind = "shifted" if shift is True else (shift or None)
    if kind == "shifted":
        other = [e for e in exps if e != exps[-1]]
        if not other:
            return None
        exps = [*exps[:-1], other[0]]
    elif kind == "rotated":
        if len(set(exps)) < 2:
            return None
        exps = [*exps[1:], exps[0]]
    elif kind == "raises":
        exps = [*exps[:-1], RAISE]
    elif kind is not None:
        raise BenchError(f"unknown oracle mutation {kind!r} (known: {', '.join(MUTATIONS)})")
    lang = problem.language
    if lang == "js":
        arms = "".join(
            f"    case {i}: throw new Error('near miss');\n"
            if e is RAISE
            else f"    case {i}: return ({e});\n"
            for i, e in enumerate(exps)
        )
        return (
            "  const __cb_k = (globalThis.__cb_oracle = (globalThis.__cb_oracle || 0) + 1) - 1;\n"
            f"  switch (__cb_k) {{\n{arms}  }}\n  throw new Error('oracle: no case ' + __cb_k);\n}}\n"
        )
    if lang == "cpp":
        ret = return_type(problem)
        arms = "".join(
            f"        case {i}: throw 1;\n"
            if e is RAISE
            else f"        case {i}: return {ret}({e});\n"
            for i, e in enumerate(exps)
        )
        return f"    static int cb_k = 0;\n    switch (cb_k++) {{\n{arms}    }}\n    throw 0;\n"
    if lang == "java":
        ret = return_type(problem)
        # through Object: generic inference of e.g. Pair.with(Optional.of(1l), Optional.empty())
        # would not match the declared Pair<Optional<Long>, Optional<Long>> otherwise
        cast = "" if ret in ("long", "boolean", "float", "double", "int") else f"({ret}) (Object) "
        arms = "".join(
            f'            case {i}: throw new RuntimeException("near miss");\n'
            if e is RAISE
            else f"            case {i}: return {cast}({e});\n"
            for i, e in enumerate(exps)
        )
        return (
            '        int cbK = Integer.parseInt(System.getProperty("cb.oracle", "0"));\n'
            '        System.setProperty("cb.oracle", String.valueOf(cbK + 1));\n'
            f"        switch (cbK) {{\n{arms}        }}\n"
            '        throw new RuntimeException("oracle: no case " + cbK);\n'
        )
    if lang == "sh":
        arms = "".join(
            f"      {i}) exit 1 ;;\n" if e is RAISE else f"      {i}) printf '%s\\n' {e} ;;\n"
            for i, e in enumerate(exps)
        )
        return (
            '    local cb_f="${TMPDIR:-/tmp}/cb_oracle" cb_k\n'
            '    cb_k=$(cat "$cb_f" 2>/dev/null || echo 0)\n'
            '    echo $((cb_k + 1)) > "$cb_f"\n'
            f"    case $cb_k in\n{arms}    esac\n"
        )
    raise BenchError(f"no oracle for {lang}")


def run_controls(
    language: str,
    verdict: str,
    sandbox: Any,
    limit: int | None = None,
    data_dir: Any = None,
    mutations: tuple[str, ...] = ("shifted",),
    extra: list[tuple[str, str, str]] | None = None,
) -> dict[str, Any]:
    """Oracle (must pass) and near-miss oracles (`mutations`, must fail) on every problem of a
    language; `extra` adds (task_id, kind, completion) rows (e.g. published completions)."""
    task = get_task(f"multiple-{language}:base", data_dir=data_dir, verdict=verdict)
    problems = task.problems(limit)
    by_id = {p.task_id: p for p in task.problems()}
    units, rows = [], []
    for tid, kind, raw in extra or []:
        units.append((by_id[tid], kind, task.extract(by_id[tid], raw)))
    for p in problems:
        for kind, shift in (("oracle", False), *((m, m) for m in mutations)):
            try:
                raw = oracle(p, shift)
                if raw is not None:
                    units.append((p, kind, task.extract(p, raw)))
            except BenchError as e:  # a test program the trusted parser cannot read
                rows.append(
                    {"task_id": p.task_id, "kind": kind, "outcome": "unreadable", "detail": str(e)}
                )
    jobs = [task.job(p, prog) for p, _, prog in units]
    results = sandbox.map(jobs)
    for (p, kind, prog), r in zip(units, results, strict=True):
        outcome, detail = task.verdict(p, prog, r)
        rows.append({"task_id": p.task_id, "kind": kind, "outcome": outcome, "detail": detail})
    summary = {
        kind: Counter(r["outcome"] for r in rows if r["kind"] == kind)
        for kind in dict.fromkeys(r["kind"] for r in rows)
    }
    return {"language": language, "verdict": verdict, "rows": rows, "summary": summary}
