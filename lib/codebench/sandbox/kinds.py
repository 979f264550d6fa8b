"""The three job kinds, each run on one worker: tests, call and program.

Budgets: a `TestsJob` has one budget for the whole sample (loading plus every call):
`timeout` CPU seconds (polled by the worker and backed by RLIMIT_CPU) and
`timeout * wall_factor + 0.5` wall-clock seconds. A `CallJob` gives every call its own
budget of that size; after a call kills the process (timeout, crash, oversize reply) the
program is loaded again for the next call. A `ProgramJob` gives compilation
`compile_timeout` and the run `timeout`.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from codebench.sandbox import languages, pch, prefetch, wire
from codebench.sandbox.host import WorkerProcess
from codebench.sandbox.jobs import Args, CallJob, Job, ProgramJob, TestsJob
from codebench.sandbox.outcome import CallResult, Outcome, Result
from codebench.sandbox.runner import (
    GRACE,
    Session,
    Settings,
    classify_death,
    decode_reply,
    definite_timeout,
    refine_oom,
    reply_value,
    result,
)
from codebench.sandbox.trusted import (
    SampleAbort,
    assigned_names,
    failure_detail,
    proxy_names,
    run_trusted,
)


def run_job(worker: WorkerProcess, s: Settings, job: Job) -> tuple[Result, bool]:
    """Run `job`; returns (result, whether a timeout was a definite CPU-budget exhaustion)."""
    if isinstance(job, TestsJob):
        return run_tests(worker, s, job)
    if isinstance(job, CallJob):
        return run_calls(worker, s, job)
    if isinstance(job, ProgramJob):
        return run_program(worker, s, job)
    raise TypeError(f"not a sandbox job: {type(job).__name__}")


def run_tests(worker: WorkerProcess, s: Settings, job: TestsJob) -> tuple[Result, bool]:
    """Trusted tests in this process against proxies for the sandboxed program."""
    t0 = time.monotonic()
    budget = job.timeout or s.timeout
    sess = Session(worker, s)
    plan = None
    if s.prefetch:
        try:
            targets = proxy_names(job.tests, job.prelude, job.entry_point, job.setup)
            plan = prefetch.plan_for(job, targets, assigned_names(job.setup))
        except SyntaxError:
            plan = None
    caller = prefetch.PlannedCaller(sess, job, plan, budget, t0 + s.wall(budget), s.wall(budget))
    try:
        try:
            caller.begin()
            outcome, detail = run_trusted(
                job.tests, job.prelude, job.entry_point, job.setup, caller, wire.Ref
            )
        except SampleAbort as e:
            outcome, detail = e.outcome, e.detail
        except SyntaxError as e:
            outcome, detail = Outcome.FAILED, f"program failed to load: SyntaxError: {e}"
        except Exception as e:  # noqa: BLE001 - the program failed to load
            outcome, detail = Outcome.FAILED, "program failed to load: " + failure_detail(e)
    finally:
        sess.end()
    caller.learn(outcome is Outcome.PASSED)
    outcome, detail = refine_oom(outcome, detail, sess.stderr)
    exhausted = outcome is Outcome.TIMEOUT and (
        definite_timeout(detail) or caller.cpu_used() >= budget * 0.95
    )
    if outcome is Outcome.TIMEOUT and not exhausted:
        detail, exhausted = hopeless(detail, caller.cpu_used(), time.monotonic() - t0, budget, s)
    return result(outcome, detail, t0, sess), exhausted


STARVED = "starved of CPU by load"


def hopeless(
    detail: str, cpu: float, elapsed: float, budget: float, s: Settings
) -> tuple[str, bool]:
    """(detail, final) for a wall-clock timeout of a sample that was starved of CPU: a retry
    gets twice the wall-clock allowance, so when the share of a CPU the sample got would
    not reach its CPU budget even then, the retry is skipped and the timeout is final (so a
    loaded machine does not make every looping sample cost a second, longer attempt)."""
    share = cpu / elapsed if elapsed > 0 else 1.0
    if share * (budget * s.wall_factor * 2 + 0.5) >= budget:
        return detail, False
    return (
        f"{detail}; {STARVED} (it got {share:.0%} of a CPU, too little for a retry with "
        "twice the wall-clock allowance to reach its CPU budget)",
        True,
    )


def _one_call(sess: Session, fn: str, spec: Any, per: float, s: Settings) -> CallResult:
    t1 = time.monotonic()
    try:
        a = Args.of(spec)
    except TypeError as e:
        return CallResult(Outcome.SANDBOX_ERROR, error=str(e))
    cpu_limit = sess.cpu_used + per
    outcome, value, error = _settle(
        lambda: sess.call(fn, a.args, a.kwargs, cpu_limit, s.wall(per), per)
    )
    return CallResult(outcome, value, error, time.monotonic() - t1)


def _settle(get: Any) -> tuple[Outcome, Any, str]:
    """(outcome, value, error) of one call: its value, or why there is none."""
    try:
        return Outcome.PASSED, get(), ""
    except SampleAbort as e:
        return e.outcome, None, e.detail
    except Exception as e:  # noqa: BLE001 - the function raised
        return Outcome.FAILED, None, f"{type(e).__name__}: {e}"[:2000]


def _start_batch(
    sess: Session,
    s: Settings,
    job: CallJob,
    values: list[CallResult],
    cap: int,
    per: float,
    load: float,
    rlimit: float,
) -> None:
    """Fork a process for `job`, load it and answer the next calls in one round trip.

    Appends a CallResult per call answered, and one for the call the process died in (if
    it did); calls whose arguments cannot be sent get a sandbox-error result without
    running. Raises SampleAbort or the program's exception when loading fails."""
    fn = job.function
    todo: list[tuple[int, bytes]] = []
    ready: dict[int, CallResult] = {}
    for i in range(len(values), min(len(job.calls), len(values) + cap)):
        try:
            a = Args.of(job.calls[i])
            todo.append((i, Session.encode_call(fn, a.args, a.kwargs)))
        except TypeError as e:
            ready[i] = CallResult(Outcome.SANDBOX_ERROR, error=str(e))
        except SampleAbort as e:
            ready[i] = CallResult(e.outcome, None, e.detail)
    end = not ready and (not todo or todo[-1][0] == len(job.calls) - 1)
    h, frames = sess.start(
        job.program,
        "",
        load,
        s.wall(load),
        rlimit,
        [p for _, p in todo] or None,
        end=end and bool(todo),
        step=(s.wall(per), per),
    )
    decode_reply(h, frames[:1], load, "while loading the program")
    times = [float(t) for t in h.get("ft", [])] if isinstance(h.get("ft"), list) else []
    during = f"in call to {fn}()"
    answered = frames[1:]
    for k, (i, _) in enumerate(todo):
        while len(values) < i:  # unsendable calls before this one
            values.append(ready.pop(len(values)))
        took = times[k + 1] - times[k] if len(times) > k + 1 else 0.0
        if k < len(answered):
            values.append(CallResult(*_settle(lambda k=k: reply_value(answered[k], during)), took))
            continue
        if h.get("st") == "ok":  # cannot happen: the worker answers every call or reports why
            raise SampleAbort(
                Outcome.SANDBOX_ERROR, "the worker answered fewer calls than it was sent"
            )
        # a timeout reply says which limit it hit; a process killed outright (SIGKILL at
        # RLIMIT_CPU) counts as timed out only once it used the whole batch's CPU allowance
        outcome, detail = classify_death(h, rlimit - 1, during)
        values.append(CallResult(outcome, None, detail, 0.0))
        sess.alive = False
        return
    while len(values) in ready:
        values.append(ready.pop(len(values)))
    if end:
        sess.alive = False


def run_calls(worker: WorkerProcess, s: Settings, job: CallJob) -> tuple[Result, bool]:
    """Load the program, then one call per spec; reload after a call kills the process."""
    t0 = time.monotonic()
    per = job.timeout or s.timeout
    load = max(per, s.timeout)
    rlimit = min(load + per * max(1, len(job.calls)) + 1, 24 * 3600)
    if job.max_value_bytes:
        s = Settings(**{**s.__dict__, "max_value_bytes": job.max_value_bytes})
    sess = Session(worker, s)
    values: list[CallResult] = []
    load_error: tuple[Outcome, str] | None = None
    # calls per batch: every reply may be max_value_bytes and the host caps a whole reply
    cap = max(1, worker.max_payload // max(s.max_value_bytes, 1) - 2)
    try:
        while len(values) < len(job.calls):
            if not sess.alive:
                if values:
                    sess.end()
                try:
                    _start_batch(sess, s, job, values, cap, per, load, rlimit)
                except SampleAbort as e:
                    load_error = (e.outcome, "program failed to load: " + e.detail)
                except Exception as e:  # noqa: BLE001
                    load_error = (Outcome.FAILED, "program failed to load: " + failure_detail(e))
                if load_error:
                    break
            else:  # a process still serving after a full batch: the rest call by call
                values.append(_one_call(sess, job.function, job.calls[len(values)], per, s))
    finally:
        sess.end()
    if load_error:
        values += [CallResult(load_error[0], None, load_error[1]) for _ in job.calls[len(values) :]]
    bad = load_error or next(((v.outcome, v.error) for v in values if not v.ok), None)
    outcome, detail = refine_oom(*(bad or (Outcome.PASSED, "")), sess.stderr)
    exhausted = any(v.outcome is Outcome.TIMEOUT and definite_timeout(v.error) for v in values)
    return result(outcome, detail, t0, sess, values=values), exhausted


def _exec(
    worker: WorkerProcess,
    s: Settings,
    argv: list[str],
    files: dict[str, str],
    stdin: str,
    budget: float,
    tc: languages.Toolchain | None,
) -> dict[str, Any]:
    header = {
        "op": "exec",
        "argv": argv,
        "files": files,
        "stdin": stdin,
        "wall": s.wall(budget),
        "cpu": budget,
        "idle": budget,
        "max_out": s.max_output,
        "max_value": 1 << 16,
        "limits": s.limits(budget, tc.nproc if tc else None, tc.nofile if tc else None),
    }
    h, _ = worker.request(header, None, timeout=s.wall(budget) + GRACE)
    return h


def run_program(worker: WorkerProcess, s: Settings, job: ProgramJob) -> tuple[Result, bool]:
    """Compile (if needed) and run a whole program; exit status, output, outcome."""
    t0 = time.monotonic()
    budget = job.timeout or s.timeout
    try:
        tc = languages.toolchain(job.language, s.toolchains)
    except ValueError as e:
        return result(Outcome.TOOLCHAIN_MISSING, str(e), t0), False
    missing = languages.missing_program(tc)
    if missing:
        return result(Outcome.TOOLCHAIN_MISSING, f"{missing}: not found", t0), False
    nonce = secrets.token_hex(16) if job.nonce else None
    try:
        files, source, main_class = languages.prepare(tc, job.program, nonce)
    except ValueError as e:
        return result(Outcome.SANDBOX_ERROR, str(e), t0), False
    fill = {"heap_mb": max(64, s.memory_mb // 4), "main_class": main_class, "source": source}
    try:
        if tc.compile:
            argv = languages.expand(tc.compile, **fill)
            if tc.language == "cpp" and s.pch_dir:
                argv = pch.compile_argv(argv, files[source], s.pch_dir)
            h = _exec(worker, s, argv, files, "", s.compile_timeout, tc)
            if h.get("st") != "exit" or h.get("rc") != 0:
                return _program_result(h, t0, s.compile_timeout, "while compiling", None), False
            files = {}
        if tc.language == "python":
            header = {
                "op": "start",
                "mode": "run",
                "program": files[source],
                "stdin": job.stdin,
                "wall": s.wall(budget),
                "cpu": budget,
                "idle": budget,
                "limits": s.limits(budget),
                "max_out": s.max_output,
            }
            h, _ = worker.request(header, None, timeout=s.wall(budget) + GRACE)
        else:
            h = _exec(worker, s, languages.expand(tc.run, **fill), files, job.stdin, budget, tc)
    finally:
        if worker.proc is not None:
            end, _ = worker.request({"op": "end"}, None, timeout=GRACE + 10)
            if not end.get("clean", False):
                worker.kill()
    res = _program_result(h, t0, budget, "", nonce)
    final = res.outcome is Outcome.TIMEOUT and definite_timeout(res.detail)
    if res.outcome is Outcome.TIMEOUT and not final:
        res.detail, final = hopeless(
            res.detail, float(h.get("cpu") or 0.0), res.duration_s, budget, s
        )
    return res, final


def _program_result(
    h: dict[str, Any], t0: float, budget: float, during: str, nonce: str | None
) -> Result:
    out, err = str(h.get("out", "")), str(h.get("err", ""))
    rc, sig = h.get("rc"), h.get("sig")
    exit_code = rc if sig is None else -int(sig)
    if h.get("st") == "noexec":
        return result(Outcome.TOOLCHAIN_MISSING, str(h.get("why", "")), t0, stdout=out, stderr=err)
    if h.get("st") == "exit" and sig is None and rc == 0:
        if nonce is None:
            return result(Outcome.PASSED, "", t0, stdout=out, stderr=err, exit_code=0)
        lines = out.splitlines()
        if nonce in lines:
            out = "\n".join(x for x in lines if x != nonce) + ("\n" if lines[:-1] else "")
            return result(Outcome.PASSED, "", t0, stdout=out, stderr=err, exit_code=0)
        return result(
            Outcome.FAILED,
            "exited with status 0 before the tests finished (no nonce)",
            t0,
            stdout=out,
            stderr=err,
            exit_code=0,
        )
    outcome, detail = classify_death(h, budget, during or "while running")
    if h.get("st") == "exit" and sig is None and during:
        detail = f"compilation failed (status {rc}): {err[-1500:]}"
    elif outcome is not Outcome.TIMEOUT and err.strip():
        detail = f"{detail}: {err.strip()[-1500:]}"
    outcome, detail = refine_oom(outcome, detail, err + out[-2000:])
    return result(outcome, detail, t0, stdout=out, stderr=err, exit_code=exit_code)
