"""codebench.sandbox: run model-written code in isolation, with verdicts it cannot forge.

Everything in codebench that executes model output goes through this package.

Quick start::

    from codebench.sandbox import Sandbox, TestsJob, CallJob, ProgramJob, Args

    with Sandbox(workers=None, timeout=3.0, memory_mb=2048) as sb:
        r = sb.run_tests(prompt + completion, problem["test"] + "\\ncheck(candidate)\\n",
                         entry_point="candidate", prelude=problem["prompt"])
        r.outcome, r.passed, r.detail, r.duration_s, r.stdout

        r = sb.call("def main_solution(n):\\n    return n * 2\\n", "main_solution",
                    [{"n": 1}, {"n": 2}], timeout=1.0)
        [v.value for v in r.values]          # [2, 4]

        r = sb.run_program(js_source, language="js", nonce=True)
        r.exit_code, r.stdout

        results = sb.map(jobs, progress=lambda done, total, result: ...)   # in input order

Job kinds (see `jobs` and docs/sandbox.md):

* `run_tests` / `TestsJob`   assert-style tests run in the trusted host process against a proxy
  for the sandboxed function (HumanEval, MBPP). Tests never enter the sandbox.
* `call` / `CallJob`         call a named function on many argument sets; plain-data results.
* `run_program` / `ProgramJob` run a whole program (python, js, cpp, java, sh); exit status,
  stdout, stderr; optional nonce trailer for MultiPL-E tests.

Isolation (see `isolation`, `seccomp`): bubblewrap with no network, a read-only minimal
root, a private size-capped /tmp, new PID/IPC/UTS namespaces with the worker as PID 1 (no
sample can signal it), a dedicated unprivileged uid per worker, rlimits (address space, CPU,
processes, file size, open files, no core dumps), a seccomp filter in every sample process
(no keyring, namespaces, mounts, ptrace, or limit/scheduling changes to other processes), a
worker that checks its own limits and scheduling after every job, and a scrubbed
environment. Without bubblewrap nothing runs (IsolationError) unless the user opts in with
Sandbox(unsafe_no_isolation=True) or CODEBENCH_UNSAFE_NO_SANDBOX=1; every Result records
the mode in `Result.isolation`.

Objects: in `run_tests`, values that are not plain data stay in the sandbox and the tests
get `trusted.Handle`s (method calls, attributes, ... answered with plain data; equal only to
themselves), so class-based tests (`Solution().twoSum(...)`) are decided on the trusted
side; objects the tests build are sent by value.

Outcomes (`Outcome`, a str Enum): passed, failed, timeout, crashed, out-of-memory,
sandbox-error, toolchain-missing.
"""

from codebench.sandbox.jobs import Args, CallJob, Job, ProgramJob, TestsJob
from codebench.sandbox.outcome import CallResult, Outcome, Result
from codebench.sandbox.pool import Sandbox
from codebench.sandbox.problems import humaneval_job, mbpp_job, multipl_e_job

__all__ = [
    "Args",
    "CallJob",
    "CallResult",
    "Job",
    "Outcome",
    "ProgramJob",
    "Result",
    "Sandbox",
    "TestsJob",
    "humaneval_job",
    "mbpp_job",
    "multipl_e_job",
]
