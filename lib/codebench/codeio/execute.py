"""Programs and sandbox jobs for running unified functions.

A unified function runs as ``prelude(code) + refcode + HARNESS`` inside `codebench.sandbox`
(never in this process). The prelude supplies the imports CodeI/O's reference code assumes
without importing them (`math`, `defaultdict`, `List`, `np`, ...), only those whose names occur
in the code. The harness adds:

- ``_codeio_probe_(seed, kwargs, budget)``: seeds `random` and numpy (those loaded) with `seed`,
  calls the function with `kwargs` and returns ``[output, kwargs]`` so the trusted side can
  compare the arguments after the call with its pristine copy (input-mutation check). The
  sandbox decodes a fresh copy of the arguments for every call, so one call cannot change
  another's. Once the job's calls have used `budget` CPU seconds, the running call is
  interrupted and later calls are refused (`CodeioBudgetExceeded`, a BaseException so that
  ``except Exception`` in the code cannot swallow it; counted as a timeout): one slow function
  costs about `budget` CPU seconds per run.
- ``_codeio_gen_(seed, n)``: seeds, then returns ``[input_generator() for _ in range(n)]``.

Call outcomes map to reasons with `call_reason`. Every executor here only needs
``map(jobs) -> list[Result]`` (`codebench.sandbox.Sandbox` has it; so does the reference
executor of benchmarks/io_generation_throughput.py).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from codebench.sandbox import CallJob, Result

# The names CodeI/O's reference code may use without importing them (its `solution_prefix`):
# (module, names imported from it). Module imports come last, so `bisect`, `copy`, `random`
# name the modules, as in the reference.
_FROM_IMPORTS: tuple[tuple[str, str], ...] = (
    ("bisect", "bisect bisect_left bisect_right insort"),
    ("collections", "Counter OrderedDict defaultdict deque"),
    ("copy", "deepcopy"),
    ("functools", "cache cmp_to_key lru_cache partial reduce"),
    ("heapq", "heapify heappop heappush heapreplace merge nlargest"),
    (
        "itertools",
        "accumulate chain combinations count cycle groupby islice pairwise permutations product repeat zip_longest",
    ),
    (
        "math",
        "atan2 ceil comb dist factorial floor gcd hypot inf isqrt lcm log log2 log10 pi prod sqrt",
    ),
    ("operator", "and_ itemgetter or_ sub xor"),
    ("random", "randint randrange shuffle"),
    ("string", "ascii_lowercase ascii_uppercase"),
    ("typing", "Any Callable Dict Generator Iterable Iterator List Optional Set Tuple Union"),
)
_MODULES = [
    "bisect",
    "collections",
    "copy",
    "datetime",
    "functools",
    "heapq",
    "itertools",
    "json",
    "math",
    "operator",
    "random",
    "re",
    "string",
    "sys",
]
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def prelude(code: str) -> str:
    """The imports of CodeI/O's prefix that `code` can use: only names that occur in it.

    The reference prepends every import to every program; importing only what a program
    names keeps each sandboxed run from loading modules it never touches.
    """
    words = set(_WORD.findall(code))
    lines = []
    for module, names in _FROM_IMPORTS:
        used = [n for n in names.split() if n in words]
        if used:
            lines.append(f"from {module} import {', '.join(used)}")
    mods = [m for m in _MODULES if m in words]
    if mods:
        lines.append("import " + ", ".join(mods))
    return "\n".join(lines) + "\n"


PRELUDE = prelude(
    " ".join(n for _, names in _FROM_IMPORTS for n in names.split()) + " " + " ".join(_MODULES)
)


NUMPY_PRELUDE = """\
try:
    import numpy as np
except ImportError:
    pass
"""

HARNESS = """

# ---- codebench.codeio harness
def _codeio_seed_(seed):
    import sys as _sys
    _random = _sys.modules.get("random")
    if _random is not None:
        _random.seed(seed)
    _np = _sys.modules.get("numpy")
    if _np is not None:
        _np.random.seed(seed % 4294967296)


_codeio_state_ = {"spent": 0.0, "fired": False}


class CodeioBudgetExceeded(BaseException):  # not an Exception: `except Exception` cannot swallow it
    pass


def _codeio_fire_(signum, frame):
    _codeio_state_["fired"] = True
    raise CodeioBudgetExceeded("CPU time budget of this function used up")


def _codeio_probe_(seed, kwargs, budget=None, limit=None):
    import signal as _signal
    import time as _time
    st = _codeio_state_
    timer = None
    if budget is not None:
        left = budget - st["spent"]
        if left <= 0:
            raise CodeioBudgetExceeded("CPU time budget of this function used up")
        timer = min(left, limit) if limit else left
        _signal.signal(_signal.SIGPROF, _codeio_fire_)
    _codeio_seed_(seed)
    st["fired"] = False
    _t0 = _time.process_time()
    try:
        if timer is not None:
            _signal.setitimer(_signal.ITIMER_PROF, timer)
        out = {funcname}(**kwargs)
    finally:
        if timer is not None:
            _signal.setitimer(_signal.ITIMER_PROF, 0)
        st["spent"] += _time.process_time() - _t0
    if st["fired"]:  # the code caught the interruption and carried on: its value is not trusted
        raise CodeioBudgetExceeded("CPU time budget of this function used up")
    return [out, kwargs]


def _codeio_gen_(seed, n):
    import random as _random
    _codeio_seed_(seed)
    return [input_generator() for _ in range(n)]
"""

PROBE = "_codeio_probe_"
GENERATE = "_codeio_gen_"
_NUMPY = re.compile(r"\bnp\.|\bnumpy\b")


class Executor(Protocol):
    """Anything that runs sandbox jobs: `codebench.sandbox.Sandbox` or a reference executor."""

    def map(self, jobs: Sequence[Any], progress: Any = None) -> list[Result]: ...


# What CodeI/O programs import (counted over the 464 demo functions: random 521, json 242,
# numpy 68, string 44, copy 25, datetime 4, ... besides the worker's default set). The cheap
# ones are preloaded into every worker; numpy (~20 MB, which makes every fork of its worker
# ~15 ms dearer) only into a second pool that gets the programs that use it.
PRELOAD = ("random", "copy", "datetime", "json", "string")
NUMPY_PRELOAD = (*PRELOAD, "numpy")


def uses_numpy(job: Any) -> bool:
    """Whether a job's program (built by `program`) imports numpy."""
    return NUMPY_PRELUDE in getattr(job, "program", "")


class SandboxExecutor:
    """The sandbox for CodeI/O jobs: warm workers with these programs' usual imports
    preloaded, and programs that use numpy sent to a second pool (started on first use)
    whose workers have numpy preloaded as well.

    Measured on the demo functions (2 cores): a job of 10 calls to a function that imports
    numpy costs ~60 ms of CPU in a plain worker (the import) and ~17 ms in the numpy pool;
    preloading numpy everywhere would instead add ~12 ms to every other job."""

    def __init__(
        self, workers: int | None = None, numpy_workers: int | None = None, **kwargs: Any
    ) -> None:
        from codebench.sandbox import Sandbox

        self._kwargs = kwargs
        self.plain = Sandbox(workers=workers, preload=PRELOAD, **kwargs)
        self.numpy_workers = numpy_workers or max(1, self.plain.size // 2)
        self._numpy: Any = None

    @property
    def numpy(self) -> Any:
        """The numpy pool (started on first use)."""
        if self._numpy is None:
            from codebench.sandbox import Sandbox

            self._numpy = Sandbox(workers=self.numpy_workers, preload=NUMPY_PRELOAD, **self._kwargs)
        return self._numpy

    def map(self, jobs: Sequence[Any], progress: Any = None) -> list[Result]:
        """Run jobs over both pools at once; results in input order."""
        jobs = list(jobs)
        heavy = [i for i, j in enumerate(jobs) if uses_numpy(j)]
        if not heavy:
            return self.plain.map(jobs, progress)
        light = [i for i in range(len(jobs)) if i not in set(heavy)]
        out: list[Any] = [None] * len(jobs)
        done = [0]
        lock = threading.Lock()

        def tick(_d: int, _t: int, res: Result) -> None:
            if progress is not None:
                with lock:
                    done[0] += 1
                    progress(done[0], len(jobs), res)

        with ThreadPoolExecutor(1) as pool:
            fut = pool.submit(self.numpy.map, [jobs[i] for i in heavy], tick)
            for i, r in zip(light, self.plain.map([jobs[i] for i in light], tick), strict=True):
                out[i] = r
            for i, r in zip(heavy, fut.result(), strict=True):
                out[i] = r
        return out

    def close(self) -> None:
        """Stop both pools."""
        self.plain.close()
        if self._numpy is not None:
            self._numpy.close()

    def __enter__(self) -> SandboxExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def program(unified: dict) -> str:
    """The full program run in the sandbox for one unified record."""
    code = unified["refcode"]
    gen = unified.get("input_generator") or ""
    parts = [prelude(code + "\n" + gen)]
    if _NUMPY.search(code) or _NUMPY.search(gen):
        parts.append(NUMPY_PRELUDE)
    parts.append("\n" + code + "\n")
    if unified.get("input_generator"):
        parts.append("\n" + unified["input_generator"] + "\n")
    parts.append(HARNESS.replace("{funcname}", unified.get("funcname") or "main_solution"))
    return "".join(parts)


def probe_job(
    unified: dict,
    calls: list[tuple[int, dict]],
    timeout: float,
    max_value_bytes: int,
    budget: float | None = None,
) -> CallJob:
    """Call the function once per (seed, kwargs), within a CPU `budget` for the whole job.

    With a budget, the harness interrupts a call itself (SIGPROF) at min(budget left, 0.9 x
    timeout) CPU seconds, before the sandbox's own per-call limit would kill the process, so the
    spent time carries over to the next call."""
    limit = 0.9 * timeout if budget is not None else None
    return CallJob(
        program(unified),
        PROBE,
        [(seed, kwargs, budget, limit) for seed, kwargs in calls],
        timeout,
        max_value_bytes,
    )


def generator_job(
    unified: dict, seed: int, n: int, timeout: float, max_value_bytes: int
) -> CallJob:
    """Draw `n` inputs from the record's `input_generator` in one call."""
    return CallJob(program(unified), GENERATE, [(seed, n)], timeout, max_value_bytes)


LOAD_ERROR = "program failed to load"


def call_reason(outcome: str, error: str) -> str:
    """Map a sandbox call outcome to a drop reason (see records.DROP_REASONS)."""
    outcome = str(outcome)
    error = error or ""
    if outcome == "timeout" or "CodeioBudgetExceeded" in error[:80]:
        return "timeout"
    if outcome == "sandbox-error":
        return "sandbox-error"
    if outcome == "out-of-memory" or "value too large" in error:
        return "too-large"
    if error.startswith(LOAD_ERROR):
        return "load-error"
    if outcome == "failed" and ("cannot send" in error or "cannot be checked" in error):
        return "not-serializable"
    return "exception"  # raised, exited, or crashed (killed by a signal)
