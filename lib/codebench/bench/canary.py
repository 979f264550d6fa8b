"""Canaries: before a score is reported, the harness must pass known answers and fail wrong ones.

For a few problems of the benchmark, the task's reference output (written the way a model
would write it under the run's protocol) and a deliberately wrong output go through the very
same extraction, sandbox job and trusted verdict as model samples. Every reference must pass
and every wrong answer must fail (tasks with a trusted verdict that can be attacked from the
sample, MultiPL-E, add `attack` outputs: forgeries such as an early exit with status 0 after
printing look-alike result lines, which must fail too); otherwise the run refuses to report a score (`CanaryError`,
and results.json says `status: canary-failed` with the failing checks). This catches a
broken toolchain (javac missing), a sandbox that passes everything, a mistyped prompt
argument or an extraction bug before they turn into a published number.
"""

from __future__ import annotations

import time
from typing import Any

from codebench.bench.tasks import Task


class CanaryError(RuntimeError):
    """The harness failed its own canary checks; no score is reported."""


def _tail(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


def run_canaries(task: Task, sandbox: Any) -> dict[str, Any]:
    """Score references (must pass) and wrong answers (must fail) of `task.canary_problems()`.

    Returns {"ok": bool, "checks": [...], "reason": str | None, "seconds": float}.
    """
    t0 = time.perf_counter()
    problems = task.canary_problems()
    if not problems:
        return {
            "ok": False,
            "checks": [],
            "reason": f"{task.spec}: canaries cannot run: no problem has a reference solution, so "
            "the harness cannot be checked and no score is reported (add a 'reference' to at least "
            "one problem, see docs/benchmarks.md, or turn canaries off: evaluate.canaries: false, "
            "`codebench eval --no-canaries`)",
            "seconds": 0.0,
        }
    checks: list[dict[str, Any]] = []
    jobs, pending = [], []
    for p in problems:
        attacks = getattr(task, "attacks", None)
        forged = [("attack", a, False) for a in (attacks(p) if attacks else [])]
        for kind, raw, expect in (
            ("reference", task.reference(p), True),
            ("wrong", task.wrong(p), False),
            *forged,
        ):
            check = {
                "task_id": p.task_id,
                "kind": kind,
                "expect": "passed" if expect else "not passed",
            }
            try:
                program = task.extract(p, raw)
                job = task.job(p, program)
            except Exception as e:  # noqa: BLE001 - an extraction bug is exactly what canaries catch
                check.update(outcome="extract-error", ok=False, detail=f"{type(e).__name__}: {e}")
                checks.append(check)
                continue
            checks.append(check)
            pending.append((check, p, program, job is None))
            if job is not None:
                jobs.append(job)
    results = iter(sandbox.map(jobs) if jobs else [])
    for check, p, program, no_job in pending:
        result = None if no_job else next(results)
        outcome, detail = task.verdict(p, program, result)
        passed = outcome == "passed"
        expect = check["expect"] == "passed"
        check.update(outcome=outcome, ok=passed == expect, detail=_tail(detail or ""))
    bad = [c for c in checks if not c["ok"]]
    reason = None
    if bad:
        reason = "; ".join(
            f"{c['task_id']} {c['kind']}: {c['outcome']} (expected {c['expect']}) {c.get('detail', '')[:200]}"
            for c in bad
        )
    return {
        "ok": not bad,
        "checks": checks,
        "reason": reason,
        "seconds": round(time.perf_counter() - t0, 3),
    }
