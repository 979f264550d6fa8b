"""Execution rewards for reinforcement learning: codebench's sandbox verdict as a trl reward.

`SandboxReward` is a reward function for trl's `GRPOTrainer` (any callable
``reward_func(prompts, completions, **columns) -> list[float]``). Every batch of completions
is scored in parallel on one warm `codebench.sandbox.Sandbox` pool (kept for the life of the
reward function, `workers=None`: the machine's usable cores + 1), with the *trusted*
comparison: the tests run in the host process against a proxy of the sandboxed function,
so a completion cannot see the tests, the expected values or the verdict (docs/sandbox.md).

Tasks are Python function problems in HumanEval format, one dataset row each (the trainer
passes the row's extra columns as keyword arguments):

  task_id       any id (recorded)
  prompt        the text shown to the model: a signature + docstring (HumanEval style; the
                completion continues it) or a statement (MBPP style; the completion is the code)
  test / tests  HumanEval's ``def check(candidate): ...`` (then ``check(<entry_point>)`` is
                appended) or assert lines that call the function by name (MBPP's test_list,
                a list of strings, is accepted too)
  entry_point   the function under test (MBPP rows: taken from the asserts when missing)
  setup         optional MBPP ``test_setup_code`` (runs in the sandbox after the program)

Completions are turned into programs with the project's extraction (`codebench.bench.extract`):
a fenced block is unwrapped (and prefixed with the prompt's imports/helpers, as the instruct
protocols do); otherwise a continuation of a code prompt is cut at HumanEval's stop strings
and appended to the prompt, and an MBPP-style answer is cut at ``[DONE]``.

Rewards (module constants, overridable per instance):

  =====================  =============================  ====================================
  verdict                reward (mode "binary")          reward (mode "fraction")
  =====================  =============================  ====================================
  every test passes      PASS = 1.0                     1.0
  some test fails        FAIL = 0.0                     passed asserts / asserts (0 <= r < 1)
  malformed              MALFORMED = -0.5               -0.5  (no code, or it does not compile)
  timed out              TIMEOUT = -0.5                 -0.5
  crashed / out of mem.  CRASH = -0.5                   -0.5
  sandbox error          SANDBOX_ERROR = 0.0            0.0   (our side failed: neutral; counted)
  =====================  =============================  ====================================

"fraction" counts every executed assert (an assert in a loop counts each time it runs); the
denominator is at least the number of assert statements in the tests, so a completion cannot
shrink it by making the tests skip work. The count is computed in the trusted process and
handed back through the verdict's detail, tagged with a random nonce that never enters the
sandbox. A sample that ends abnormally (exit, kill, timeout, a value that cannot be sent) gets
no partial credit. "binary" uses exactly the job that evaluation uses (the same verdicts as
`codebench score`).

Every scored completion is appended to a JSONL log (`codebench.records.JsonlStore`): step,
task id, sha256 of the exact completion, the completion text (lone surrogates escaped, flagged
``escaped``), the outcome, detail, tests passed/total and the reward, so a run can be audited.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codebench.bench.extract import extract_fenced, truncate_at_stops

PASS = 1.0
FAIL = 0.0
MALFORMED = -0.5
TIMEOUT = -0.5
CRASH = -0.5
SANDBOX_ERROR = 0.0
MODES = ("fraction", "binary")
BASE_STOPS = ["\ndef", "\nclass", "\nif", "\nprint", "\n#"]
MAX_PROGRAM_CHARS = 200_000


class RewardError(ValueError):
    """A training task row is malformed; the message names the row and the field."""


# --------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class RewardTask:
    """One Python function problem, normalised from a HumanEval-format row."""

    task_id: str
    prompt: str
    tests: str
    entry_point: str
    setup: str = ""
    check_style: bool = False  # tests define check(candidate); False: assert lines

    @property
    def code_prompt(self) -> bool:
        """The prompt holds the function's signature (the completion continues it)."""
        return bool(re.search(rf"^\s*def\s+{re.escape(self.entry_point)}\s*\(", self.prompt, re.M))


_CALL = re.compile(r"(?<![.\w])([A-Za-z_]\w*)\s*\(")
_NOT_ENTRY = set(dir(builtins)) | {"isclose", "math", "check"}


def reference_code(row: Mapping[str, Any]) -> str | None:
    """The row's known-good code: canonical_solution, reference or code (None if none)."""
    for key in ("canonical_solution", "reference", "code"):
        if isinstance(row.get(key), str) and row[key].strip():
            return row[key]
    return None


def entry_point_of(tests: str, code: str | None = None) -> str | None:
    """The function the tests call: the first called name the reference defines, else the
    first called name that is not a builtin (MBPP rows carry no entry_point)."""
    called = list(dict.fromkeys(_CALL.findall(tests)))
    if code:
        defs = set(re.findall(r"^\s*def\s+([A-Za-z_]\w*)", code, re.M))
        for name in called:
            if name in defs:
                return name
    return next((n for n in called if n not in _NOT_ENTRY), None)


def _prompt_entry(prompt: str, tests: str) -> str | None:
    """The last function a code prompt defines that the tests name (HumanEval-style prompts
    put helpers first and the function to complete last)."""
    for name in reversed(re.findall(r"^def\s+([A-Za-z_]\w*)\s*\(", prompt, re.M)):
        if re.search(rf"(?<![.\w]){re.escape(name)}(?!\w)", tests):
            return name
    return None


@functools.lru_cache(maxsize=4096)
def _test_shape(tests: str) -> tuple[bool, bool]:
    """(defines check(), holds an assert) for test code (cached: rows repeat every step)."""
    tree = ast.parse(tests)
    check_style = any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body)
    return check_style, any(isinstance(n, ast.Assert) for n in ast.walk(tree))


def task_from_row(row: Mapping[str, Any], where: str = "row") -> RewardTask:
    """Normalise one HumanEval-format row (see module doc); RewardError names what is wrong."""
    if not isinstance(row, Mapping):
        raise RewardError(f"{where}: expected a mapping, got {type(row).__name__}")
    tests = row.get("tests", row.get("test", row.get("test_list")))
    if isinstance(tests, list | tuple):
        if not all(isinstance(t, str) for t in tests):
            raise RewardError(f"{where}: 'tests' list must hold strings")
        tests = "\n".join(t.strip() for t in tests) + "\n"
    if not isinstance(tests, str) or not tests.strip():
        raise RewardError(f"{where}: missing 'tests' (or 'test' / 'test_list') with test code")
    prompt = row.get("prompt", row.get("text", ""))
    if not isinstance(prompt, str):
        raise RewardError(f"{where}: 'prompt' must be a string")
    try:
        check_style, has_assert = _test_shape(tests)
    except SyntaxError as e:
        raise RewardError(f"{where}: tests do not parse: {e.msg} (line {e.lineno})") from None
    entry = (
        row.get("entry_point")
        or _prompt_entry(prompt, tests)
        or entry_point_of(tests, reference_code(row))
    )
    if not isinstance(entry, str) or not entry.isidentifier():
        raise RewardError(f"{where}: missing 'entry_point' (the function the tests call)")
    if not check_style and not has_assert:
        raise RewardError(f"{where}: tests hold no assert and no check(candidate) function")
    setup = row.get("setup", row.get("test_setup_code")) or ""
    if not isinstance(setup, str):
        raise RewardError(f"{where}: 'setup' must be a string")
    return RewardTask(
        task_id=str(row.get("task_id", where)),
        prompt=prompt,
        tests=tests,
        entry_point=entry,
        setup=setup,
        check_style=check_style,
    )


def validate_tasks(rows: Iterable[Mapping[str, Any]]) -> list[RewardTask]:
    """Every row normalised; the first bad one raises RewardError naming its index and id."""
    out = []
    for i, row in enumerate(rows):
        tid = row.get("task_id") if isinstance(row, Mapping) else None
        out.append(task_from_row(row, f"task {i}" + (f" ({tid})" if tid is not None else "")))
    if not out:
        raise RewardError("no training tasks")
    return out


# --------------------------------------------------------------------------- programs
def completion_text(completion: Any) -> str:
    """The text of a trl completion: a string, or chat messages (the assistant's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion:
        parts = [m.get("content", "") for m in completion if isinstance(m, Mapping)]
        return "".join(p if isinstance(p, str) else str(p) for p in parts)
    if isinstance(completion, Mapping):
        content = completion.get("content", "")
        return content if isinstance(content, str) else str(content)
    return "" if completion is None else str(completion)


def python_header(prompt: str, entry_point: str) -> str:
    """Everything in a code prompt before `def entry_point(` (imports, helper functions)."""
    m = re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", prompt, re.M)
    return prompt[: m.start()] if m else ""


def build_program(task: RewardTask, completion: str) -> str:
    """The program to run for a completion (extraction as in codebench.bench, module doc)."""
    ep = task.entry_point
    if "```" in completion:
        code = extract_fenced(completion, "python", ep)
        if re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(ep)}\s*\(", code, re.M):
            import textwrap

            return (python_header(task.prompt, ep) if task.code_prompt else "") + textwrap.dedent(
                code
            )
        return (task.prompt if task.code_prompt else "") + code
    if task.code_prompt:
        return task.prompt + truncate_at_stops(
            completion, BASE_STOPS, language="python", prefix=task.prompt
        )
    return completion.split("[DONE]")[0].strip("\n") + "\n"


def malformed(program: str, task: RewardTask) -> str | None:
    """Why a program cannot be a solution (no code, too long, does not compile), or None."""
    if len(program) > MAX_PROGRAM_CHARS:
        return f"program longer than {MAX_PROGRAM_CHARS} characters"
    body = program[len(task.prompt) :] if task.code_prompt else program
    if not body.strip():
        return "no code in the completion"
    try:  # parsing only; nothing runs on the host
        compile(program, "<completion>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as e:
        return f"{type(e).__name__}: {e}"[:500]
    return None


# --------------------------------------------------------------------------- counting tests
class _Counting(ast.NodeTransformer):
    """`assert cond[, msg]` -> `<tally>(lambda: cond)` (the assert counts, then execution goes on)."""

    def __init__(self, tally: str) -> None:
        self.tally = tally

    def visit_Assert(self, node: ast.Assert) -> ast.AST:  # noqa: N802
        thunk = ast.Lambda(
            ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            node.test,
        )
        call = ast.Call(ast.Name(self.tally, ast.Load()), [thunk], [])
        return ast.copy_location(ast.Expr(call), node)


@functools.lru_cache(maxsize=4096)
def counting_tests(tests: str, nonce: str) -> tuple[str, int]:
    """Tests rewritten to count passed asserts, and the number of assert statements.

    The rewritten code ends by passing when every counted assert passed and nothing raised,
    else by raising ``AssertionError("codebench-tally <nonce> <passed>/<total>")``. It runs in
    the trusted process (the sandbox never sees it).
    """
    tree = ast.parse(tests)
    static = sum(isinstance(n, ast.Assert) for n in ast.walk(tree))
    tally, report, state = f"_cb_tally_{nonce}", f"_cb_report_{nonce}", f"_cb_state_{nonce}"
    body = _Counting(tally).visit(tree).body or [ast.Pass()]
    guarded = ast.Try(
        body=body,
        handlers=[
            ast.ExceptHandler(
                ast.Name("Exception", ast.Load()),
                None,
                [ast.parse(f"{state}['error'] = True").body[0]],
            )
        ],
        orelse=[],
        finalbody=[],
    )
    head = ast.parse(
        f"{state} = {{'passed': 0, 'total': 0, 'error': False}}\n"
        f"def {tally}(thunk):\n"
        f"    {state}['total'] += 1\n"
        f"    try:\n"
        f"        ok = bool(thunk())\n"
        f"    except Exception:\n"
        f"        ok = False\n"
        f"    if ok:\n"
        f"        {state}['passed'] += 1\n"
        f"def {report}():\n"
        f"    total = max({state}['total'], {static})\n"
        f"    if {state}['error'] or {state}['passed'] < total or total == 0:\n"
        f"        raise AssertionError('codebench-tally {nonce} %d/%d' % ({state}['passed'], total))\n"
    ).body
    tail = ast.parse(f"{report}()\n").body
    module = ast.Module(body=[*head, guarded, *tail], type_ignores=[])
    ast.fix_missing_locations(module)
    return ast.unparse(module) + "\n", static


def tally_of(detail: str, nonce: str) -> tuple[int, int] | None:
    """(passed, total) from a counting-tests failure detail, None when it is not ours."""
    m = re.search(rf"codebench-tally {re.escape(nonce)} (\d+)/(\d+)", detail or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


# --------------------------------------------------------------------------- records
_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_text(text: str) -> tuple[str, bool]:
    """`text` storable as UTF-8 JSON: lone surrogates escaped as ``\\udXXX`` (flag True)."""
    if not isinstance(text, str):
        text = str(text)
    if _SURROGATE.search(text) is None:
        return text, False
    return text.encode("utf-8", "backslashreplace").decode("utf-8"), True


def text_sha256(text: str) -> str:
    """sha256 of the exact string (lone surrogates included)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# --------------------------------------------------------------------------- the reward
@dataclass
class Scored:
    """One scored completion."""

    reward: float
    outcome: str
    detail: str = ""
    passed_tests: int | None = None
    total_tests: int | None = None
    duration_s: float = 0.0


@dataclass
class StepStats:
    """Aggregates of one training step (for figures: mean reward and pass rate per step)."""

    step: int
    n: int = 0
    reward_sum: float = 0.0
    passed: int = 0
    outcomes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "completions": self.n,
            "mean_reward": self.reward_sum / self.n if self.n else None,
            "pass_rate": self.passed / self.n if self.n else None,
            "outcomes": dict(self.outcomes),
            "reward_seconds": round(self.seconds, 4),
        }


class SandboxReward:
    """A trl reward function: the sandbox's trusted verdict on each completion (module doc).

    mode        "fraction" (share of asserts passed) or "binary" (1 when every test passes)
    log_path    JSONL file receiving one record per scored completion (None: no log)
    workers     sandbox pool size (None: usable cores + 1); `sandbox` reuses an open Sandbox
    timeout     CPU seconds per completion (wall: timeout x wall_factor + 0.5)
    rewards     overrides of the reward table: keys pass, fail, malformed, timeout, crash,
                sandbox_error
    tasks       rows to look up by task id when the trainer does not pass the test columns

    Call with trl's arguments: ``reward(prompts, completions, task_id=[...], prompt=...,
    tests=[...], entry_point=[...], trainer_state=state)``; the columns are lists aligned with
    `completions`. Use `score(tasks, completions)` outside trl. `close()` (or `with`) stops the
    pool; it is started on first use.
    """

    def __init__(
        self,
        *,
        mode: str = "fraction",
        log_path: str | Path | None = None,
        workers: int | None = None,
        timeout: float = 3.0,
        memory_mb: int = 1024,
        rewards: Mapping[str, float] | None = None,
        tasks: Iterable[Mapping[str, Any]] | None = None,
        sandbox: Any = None,
        isolation: str = "auto",
    ) -> None:
        if mode not in MODES:
            raise RewardError(f"reward mode must be one of {MODES}, not {mode!r}")
        table = {
            "pass": PASS,
            "fail": FAIL,
            "malformed": MALFORMED,
            "timeout": TIMEOUT,
            "crash": CRASH,
            "sandbox_error": SANDBOX_ERROR,
        }
        unknown = set(rewards or {}) - set(table)
        if unknown:
            raise RewardError(f"unknown reward keys {sorted(unknown)} (known: {sorted(table)})")
        table.update({k: float(v) for k, v in (rewards or {}).items()})
        if not table["fail"] < table["pass"]:
            raise RewardError("the fail reward must be below the pass reward")
        self.table = table
        self.mode = mode
        self.__name__ = f"sandbox_{mode}"
        self.workers, self.timeout, self.memory_mb, self.isolation = (
            workers,
            timeout,
            memory_mb,
            isolation,
        )
        self._sandbox, self._own_sandbox = sandbox, sandbox is None
        self._nonce = secrets.token_hex(8)
        self._lock = threading.Lock()
        self._log_path = Path(log_path) if log_path else None
        self._store = None
        self._calls = 0
        self.tasks = {t.task_id: t for t in validate_tasks(tasks)} if tasks is not None else {}
        self.steps: dict[int, StepStats] = {}

    # ------------------------------------------------------------------ lifecycle
    @property
    def sandbox(self) -> Any:
        if self._sandbox is None:
            from codebench.sandbox import Sandbox

            self._sandbox = Sandbox(
                workers=self.workers,
                timeout=self.timeout,
                memory_mb=self.memory_mb,
                isolation=self.isolation,
            )
        return self._sandbox

    def close(self) -> None:
        if self._own_sandbox and self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> SandboxReward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ scoring
    def job(self, task: RewardTask, program: str) -> Any:
        """The TestsJob for a program (counting tests in fraction mode)."""
        from codebench.sandbox import TestsJob

        tests = task.tests
        if task.check_style:
            tests = f"{tests}\n\ncheck({task.entry_point})\n"
        if self.mode == "fraction":
            tests, _ = counting_tests(tests, self._nonce)
        return TestsJob(
            program=program,
            tests=tests,
            entry_point=task.entry_point,
            prelude=python_header(task.prompt, task.entry_point) if task.code_prompt else "",
            setup=task.setup,
            timeout=self.timeout,
        )

    def _reward_of(self, result: Any) -> Scored:
        outcome = str(result.outcome)
        t = self.table
        if result.passed:
            return Scored(t["pass"], outcome, "", None, None, result.duration_s)
        if outcome == "failed":
            tally = tally_of(result.detail, self._nonce) if self.mode == "fraction" else None
            if tally is not None:
                k, n = tally
                frac = k / n if n else 0.0
                reward = t["fail"] + (t["pass"] - t["fail"]) * min(frac, 1.0)
                if k >= n:  # all counted asserts passed but the tests raised: not a pass
                    reward = t["fail"]
                return Scored(reward, outcome, result.detail, k, n, result.duration_s)
            return Scored(t["fail"], outcome, result.detail, None, None, result.duration_s)
        key = {
            "timeout": "timeout",
            "crashed": "crash",
            "out-of-memory": "crash",
            "sandbox-error": "sandbox_error",
            "toolchain-missing": "sandbox_error",
        }.get(outcome, "fail")
        return Scored(t[key], outcome, result.detail, None, None, result.duration_s)

    def score(
        self, tasks: Sequence[RewardTask | Mapping[str, Any]], completions: Sequence[Any]
    ) -> list[Scored]:
        """Score completions[i] against tasks[i] in one parallel sandbox batch."""
        if len(tasks) != len(completions):
            raise RewardError(f"{len(tasks)} tasks for {len(completions)} completions")
        norm = [
            t if isinstance(t, RewardTask) else task_from_row(t, f"completion {i}")
            for i, t in enumerate(tasks)
        ]
        out: list[Scored | None] = [None] * len(norm)
        jobs, where = [], []
        for i, (task, comp) in enumerate(zip(norm, completions, strict=True)):
            program = build_program(task, completion_text(comp))
            why = malformed(program, task)
            if why is not None:
                out[i] = Scored(self.table["malformed"], "malformed", why)
                continue
            jobs.append(self.job(task, program))
            where.append(i)
        if jobs:
            for i, result in zip(where, self.sandbox.map(jobs), strict=True):
                out[i] = self._reward_of(result)
        return out  # type: ignore[return-value]

    def _tasks_for(self, n: int, kwargs: Mapping[str, Any]) -> list[RewardTask]:
        ids = kwargs.get("task_id")
        has_tests = any(k in kwargs for k in ("tests", "test", "test_list"))
        if not has_tests:
            if ids is None or not self.tasks:
                raise RewardError(
                    "the reward needs the rows' test columns (tests/test, entry_point) or "
                    "SandboxReward(tasks=...) and a task_id column"
                )
            missing = [t for t in ids if str(t) not in self.tasks]
            if missing:
                raise RewardError(f"unknown task ids {missing[:5]}")
            return [self.tasks[str(t)] for t in ids]
        cols = [k for k in ("task_id", "prompt", "tests", "test", "test_list") if k in kwargs]
        cols += [k for k in ("entry_point", "setup", "test_setup_code") if k in kwargs]
        rows = [{k: kwargs[k][i] for k in cols} for i in range(n)]
        return [task_from_row(r, f"completion {i}") for i, r in enumerate(rows)]

    def __call__(
        self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any
    ) -> list[float]:
        """trl's reward-function interface: one float per completion."""
        completions = list(completions)
        row_kwargs = dict(kwargs)
        if "task_prompt" in row_kwargs:  # the row's own prompt (grpo.py adds it; chat prompts)
            row_kwargs["prompt"] = row_kwargs["task_prompt"]
        elif "prompt" not in row_kwargs and prompts is not None:
            row_kwargs["prompt"] = [p if isinstance(p, str) else "" for p in prompts]
        t0 = time.perf_counter()
        tasks = self._tasks_for(len(completions), row_kwargs)
        scored = self.score(tasks, completions)
        seconds = time.perf_counter() - t0
        state = kwargs.get("trainer_state")
        step = int(getattr(state, "global_step", self._calls) or 0)
        self._record(step, tasks, completions, scored, seconds)
        log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
        if log_metric is not None and scored:
            log_metric("pass_rate", sum(s.outcome == "passed" for s in scored) / len(scored))
            log_metric(
                "malformed_rate", sum(s.outcome == "malformed" for s in scored) / len(scored)
            )
        return [s.reward for s in scored]

    # ------------------------------------------------------------------ audit log
    def _record(
        self,
        step: int,
        tasks: Sequence[RewardTask],
        completions: Sequence[Any],
        scored: Sequence[Scored],
        seconds: float = 0.0,
    ) -> None:
        with self._lock:
            call = self._calls
            self._calls += 1
            stats = self.steps.setdefault(step, StepStats(step))
            stats.seconds += seconds
            for s in scored:
                stats.n += 1
                stats.reward_sum += s.reward
                stats.passed += s.outcome == "passed"
                stats.outcomes[s.outcome] += 1
            if self._log_path is None:
                return
            if self._store is None:  # a resumed run appends after the calls already logged
                from codebench.records import JsonlStore

                self._store = JsonlStore(self._log_path, key=("call", "index", "sha256"))
                call = max(call, 1 + max((r["call"] for r in self._store), default=-1))
                self._calls = call + 1
            records = []
            for i, (task, comp, s) in enumerate(zip(tasks, completions, scored, strict=True)):
                text = completion_text(comp)
                stored, escaped = safe_text(text)
                detail, detail_escaped = safe_text(s.detail)
                records.append(
                    {
                        "call": call,
                        "step": step,
                        "index": i,
                        "task_id": safe_text(task.task_id)[0],
                        "sha256": text_sha256(text),
                        "completion": stored,
                        "escaped": escaped or detail_escaped,
                        "outcome": s.outcome,
                        "detail": detail[:2000],
                        "passed_tests": s.passed_tests,
                        "total_tests": s.total_tests,
                        "reward": s.reward,
                        "mode": self.mode,
                        "duration_s": round(s.duration_s, 4),
                    }
                )
            self._store.extend(records)

    def history(self) -> list[dict[str, Any]]:
        """Per-step aggregates, in step order: completions, mean_reward, pass_rate, outcomes."""
        return [self.steps[k].as_dict() for k in sorted(self.steps)]


def read_reward_log(path: str | Path) -> list[dict]:
    """The per-completion reward records of a run (see SandboxReward)."""
    from codebench.records import read_jsonl

    return list(read_jsonl(path))


def step_curve(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean reward and pass rate per step, from reward-log records (for figures; the log
    holds no timings, so reward_seconds is 0 here)."""
    steps: dict[int, StepStats] = {}
    for r in records:
        st = steps.setdefault(int(r["step"]), StepStats(int(r["step"])))
        st.n += 1
        st.reward_sum += float(r["reward"])
        st.passed += r["outcome"] == "passed"
        st.outcomes[r["outcome"]] += 1
    return [steps[k].as_dict() for k in sorted(steps)]
