"""I/O generation throughput: codebench's sandbox vs one new `python` process per function.

The reference design (CodeI/O) writes each function's program to a file and runs it with a
fresh `python3` subprocess under a timeout. Here the reference executor does exactly that
(one interpreter per call job, per-call CPU-time alarms inside it), while codebench runs the same jobs
in `codebench.sandbox` through `codeio.execute.SandboxExecutor` (warm, isolated workers that fork
per job, with the modules these programs import preloaded, numpy programs in a numpy-preloaded
pool, and every call of a job answered in one round trip). Both executors feed the same
`codeio.iogen` code: two runs per function (the determinism check) on the 464 CodeI/O demo
functions. The script checks that both produce the same ios records, then prints
functions/second for each and the ratio.

    .venv/bin/python benchmarks/io_generation_throughput.py [--limit N] [--workers W]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from codebench.codeio import iogen, transform
from codebench.codeio.records import canonical
from codebench.codeio.sources import iter_source
from codebench.sandbox import CallResult, Outcome, Result
from codebench.sandbox import wire as wire_mod

RUNNER = r"""
import json, signal, sys, time
sys.path.insert(0, sys.argv[1])
import wire
req = json.loads(sys.stdin.read())
def _alarm(*a):
    raise TimeoutError("call timed out")
signal.signal(signal.SIGVTALRM, _alarm)  # CPU time, like the sandbox's per-call limit
import types
mod = types.ModuleType("__sample__")
sys.modules["__sample__"] = mod
ns = mod.__dict__
out = []
try:
    exec(compile(req["program"], "solution.py", "exec"), ns)
except BaseException as e:
    print(json.dumps({"load_error": f"program failed to load: {type(e).__name__}: {e}"[:500]}))
    sys.exit(0)
for call in req["calls"]:
    args = wire.decode(call)
    c0 = time.process_time()
    signal.setitimer(signal.ITIMER_VIRTUAL, req["timeout"])
    try:
        value = ns[req["function"]](*args)
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        try:
            out.append({"o": "passed", "v": wire.encode(value)})
        except wire.WireError as e:
            out.append({"o": "failed", "e": f"WireError: {e}"})
    except TimeoutError:
        out.append({"o": "timeout", "e": "call timed out"})
    except BaseException as e:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        out.append({"o": "failed", "e": f"{type(e).__name__}: {e}"[:500]})
    out[-1]["c"] = time.process_time() - c0
print(json.dumps({"values": out}))
"""


class SubprocessExecutor:
    """Reference executor: every call job runs in a new `python` interpreter."""

    def __init__(self, workers: int = 2, python: str = sys.executable) -> None:
        self.workers, self.python = workers, python
        self.call_cpu: dict[str, float] = {}  # program -> CPU seconds inside its calls
        self.wire_dir = str(Path(wire_mod.__file__).parent)
        self.tmp = tempfile.mkdtemp(prefix="codeio-ref-")

    def _one(self, job) -> Result:
        calls = [wire_mod.encode(tuple(c)) for c in job.calls]
        payload = json.dumps(
            {
                "program": job.program,
                "function": job.function,
                "calls": calls,
                "timeout": job.timeout or 2.0,
            }
        )
        t0 = time.perf_counter()
        wall = (job.timeout or 2.0) * len(job.calls) + 10
        try:
            p = subprocess.run(
                [self.python, "-c", RUNNER, self.wire_dir],
                input=payload,
                capture_output=True,
                text=True,
                timeout=wall,
                cwd=self.tmp,
            )
        except subprocess.TimeoutExpired:
            return Result(
                Outcome.TIMEOUT, detail="process timed out", duration_s=time.perf_counter() - t0
            )
        try:
            msg = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return Result(
                Outcome.CRASHED, detail=p.stderr[-500:], duration_s=time.perf_counter() - t0
            )
        if "load_error" in msg:  # like the sandbox: every call fails with the load error
            values = [CallResult(Outcome.FAILED, None, msg["load_error"]) for _ in job.calls]
            return Result(
                Outcome.FAILED,
                detail=msg["load_error"],
                values=values,
                duration_s=time.perf_counter() - t0,
            )
        values = [
            CallResult(
                Outcome(v["o"]), wire_mod.decode(v["v"]) if "v" in v else None, v.get("e", "")
            )
            for v in msg["values"]
        ]
        self.call_cpu[job.program] = self.call_cpu.get(job.program, 0.0) + sum(
            v.get("c", 0.0) for v in msg["values"]
        )
        return Result(Outcome.PASSED, values=values, duration_s=time.perf_counter() - t0)

    def map(self, jobs, progress=None) -> list[Result]:
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(self._one, jobs))


def demo_functions(limit: int | None) -> list[dict]:
    out = []
    for item in iter_source("codeio-demo", None):
        out.append(transform.unify_unified(item.payload, {"source": item.source, "key": item.key}))
    return out[:limit] if limit else out


def timed(records, cfg, ex_a, ex_b) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    recs = iogen.generate_all(records, cfg, ex_a, ex_b)
    return time.perf_counter() - t0, recs


def _comparable(rec: dict) -> str:
    keep = {k: rec.get(k) for k in ("fid", "kept", "reason", "pairs")}
    return canonical(keep)


def compare(records, cfg, workers: int, label: str) -> tuple[float, float, list[dict]]:
    """Time both executors on `records`; print the lines; return (t_ref, t_cb, codebench records,
    and CPU seconds inside the calls per program in the reference's runs A and B)."""
    from codebench.codeio.execute import SandboxExecutor

    ref_a, ref_b = SubprocessExecutor(workers), SubprocessExecutor(max(1, workers // 2))
    try:
        t_ref, recs_ref = timed(records, cfg, ref_a, ref_b)
    finally:
        for ex in (ref_a, ref_b):
            shutil.rmtree(ex.tmp, ignore_errors=True)
    with (
        SandboxExecutor(workers=workers, timeout=cfg.call_timeout) as a,
        SandboxExecutor(workers=max(1, workers // 2), timeout=cfg.call_timeout) as b,
    ):
        timed(records[: min(8, len(records))], cfg, a, b)  # warm-up: start the workers
        t_cb, recs_cb = timed(records, cfg, a, b)
    same = [_comparable(x) == _comparable(y) for x, y in zip(recs_ref, recs_cb, strict=True)]
    diff = [x["fid"] for x, s in zip(recs_ref, same, strict=True) if not s]
    n = len(records)
    print(f"[{label}] {n} functions")
    print(f"  reference (new python per function): {t_ref:7.2f} s  {n / t_ref:7.1f} functions/s")
    print(f"  codebench sandbox (warm workers):    {t_cb:7.2f} s  {n / t_cb:7.1f} functions/s")
    print(f"  speed-up: {t_ref / t_cb:.1f}x")
    print(
        f"  same outputs: {sum(same)}/{n} functions identical"
        + (f"; differ: {diff[:8]}" if diff else "")
    )
    return t_ref, t_cb, recs_cb, ref_a.call_cpu, ref_b.call_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="functions (default: all 464)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--light-ms",
        type=float,
        default=20.0,
        help="'light' functions: calls of run A take less CPU than this in total",
    )
    args = ap.parse_args()
    from codebench.codeio.execute import program

    records = demo_functions(args.limit)
    cfg = iogen.IOConfig(max_pairs=10, call_budget=10, chunk=len(records))
    print(
        f"I/O generation on CodeI/O demo functions, {args.workers} workers, 2 runs each (determinism check), "
        f"call timeout {cfg.call_timeout} s, CPU budget {cfg.function_budget} s per function and run; load average {os.getloadavg()[0]:.1f}"
    )
    t_ref_all, _, recs_cb, cpu_a, cpu_b = compare(records, cfg, args.workers, "all functions")
    kept = sum(r["kept"] for r in recs_cb)
    print(f"  kept {kept}/{len(records)} functions; drop reasons: {json.dumps(_reasons(recs_cb))}")

    # Where the time goes: CPU inside the functions' own calls (measured in the reference's
    # processes) is the same for every executor.
    inside = sum(cpu_a.values()) + sum(cpu_b.values())
    cores = len(os.sched_getaffinity(0))
    per_fn = sorted(cpu_a.get(program(r), 0.0) for r in records)
    print(
        f"  CPU inside the functions' calls: {inside:.1f} s over both runs "
        f"({per_fn[len(per_fn) // 2] * 1e6:.0f} µs for the median function in one run, "
        f"{sum(sorted(per_fn)[-10:]):.1f} s for the 10 heaviest)"
    )
    print(
        f"  ceiling: with zero overhead any executor needs >= {inside / cores:.1f} s on {cores} cores "
        f"for these calls, i.e. at most {t_ref_all / (inside / cores):.1f}x the reference on all functions"
    )
    light = [r for r in records if cpu_a.get(program(r), 1.0) * 1000 < args.light_ms]
    compare(
        light,
        dataclasses_replace(cfg, chunk=len(light)),
        args.workers,
        f"light functions (< {args.light_ms:g} ms of calls)",
    )
    print(f"load average now {os.getloadavg()[0]:.1f}")


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def _reasons(recs: list[dict]) -> dict:
    out: dict[str, int] = {}
    for r in recs:
        if not r["kept"]:
            out[r["reason"]] = out.get(r["reason"], 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


if __name__ == "__main__":
    main()
