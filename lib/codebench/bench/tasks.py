"""Benchmark tasks: what a problem is, what every task must say, and `register`.

Looking tasks up by spec (`get_task`, `names`, `parse_spec`) lives in `codebench.bench.registry`,
which imports the benchmark modules (they import this one: keeping both here was a cycle).

A `Task` owns one benchmark's data and its protocols end to end:

- `load()` -> problems (deterministic order; `limit` takes the first N);
- `prompt(problem, protocol, chat)` -> the model input (`chat` renders chat messages with the
  model's own template, for instruct protocols); `stop(...)` -> stop strings;
- `extract(problem, raw, protocol)` -> the program to run; `job(problem, program)` -> the
  sandbox job; `verdict(problem, program, result)` -> (outcome, detail) in the trusted process;
- `reference(problem, protocol)` / `wrong(problem, protocol)` -> raw model-style outputs for
  the canaries: the first must pass, the second must fail, through the same path.

Multi-turn tasks (MTPB) set `multi_turn` and implement `turns` and `absorb` instead of a single
prompt. Benchmarks are named by spec strings `name[:protocol]` (`humaneval`, `mbpp:instruct`,
`multiple-js`, `leetcode`, `mtpb:single`, `fim:multi-line`, `gsm8k`, `custom:path/to.jsonl`, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the documented per-benchmark sandbox timeouts live with the sandbox's benchmark jobs, where
# `codebench score` (which starts without the bench package) reads them too; re-exported here
from codebench.records import RecordError, read_jsonl
from codebench.sandbox.problems import DEFAULT_TIMEOUT_S as DEFAULT_TIMEOUT_S
from codebench.sandbox.problems import TIMEOUTS as TIMEOUTS
from codebench.sandbox.problems import default_timeout as default_timeout

Chat = Callable[[list[dict]], str]


class BenchError(ValueError):
    """Bad benchmark input (unknown name, malformed data, missing file). Names what and where."""


@dataclass
class Problem:
    """One benchmark problem (or, for MTPB, one problem x test case).

    prompt      the dataset's own prompt (what the base protocol shows the model)
    tests       test code or data, never shown to the model
    reference   a known-good *completion* under the base protocol, when one exists
    meta        task-specific fields (answers, turns, test inputs, ...)
    """

    task_id: str
    prompt: str
    language: str = "python"
    entry_point: str | None = None
    tests: str = ""
    stop: list[str] = field(default_factory=list)
    reference: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Task:
    """Base class: one benchmark. Subclasses override what differs."""

    name: str = ""
    language: str = "python"
    protocols: tuple[str, ...] = ("base", "instruct")
    multi_turn: bool = False
    #: task ids whose references/wrong answers the canary runs (first N loaded when empty)
    canary_count: int = 2

    def __init__(
        self, protocol: str | None = None, data_dir: str | Path | None = None, **options: Any
    ) -> None:
        self.protocol = protocol or self.protocols[0]
        if self.protocol not in self.protocols:
            raise BenchError(
                f"{self.name}: unknown protocol {self.protocol!r} (known: {', '.join(self.protocols)})"
            )
        self.data_dir = data_dir
        self.options = options
        self._problems: list[Problem] | None = None

    # ------------------------------------------------------------------ data
    @property
    def spec(self) -> str:
        return f"{self.name}:{self.protocol}"

    def load(self) -> list[Problem]:
        """All problems, in a fixed order."""
        raise NotImplementedError

    def problems(self, limit: int | None = None) -> list[Problem]:
        if self._problems is None:
            self._problems = self.load()
        return self._problems if limit is None else self._problems[:limit]

    def data_files(self) -> list[Path]:
        """Files the problems come from (hashed into results.json)."""
        return []

    def skip_reason(self, backend: Any = None) -> str | None:
        """Why this task cannot run here, or None."""
        return None

    def info(self) -> dict[str, Any]:
        """Task settings worth recording in results.json."""
        return {"name": self.name, "protocol": self.protocol, "language": self.language}

    # ------------------------------------------------------------------ generation side
    def prompt(self, problem: Problem, chat: Chat | None = None) -> str:
        if self.protocol == "instruct":
            if chat is None:
                raise BenchError(
                    f"{self.spec}: the instruct protocol needs a chat template renderer"
                )
            return chat(self.messages(problem))
        return problem.prompt

    def messages(self, problem: Problem) -> list[dict]:
        """Chat messages for the instruct protocol."""
        raise NotImplementedError

    def stop(self, problem: Problem) -> list[str]:
        return list(problem.stop) if self.protocol == "base" else []

    def max_new_tokens(self, problem: Problem, default: int) -> int:
        return default

    # multi-turn tasks only
    def turns(self, problem: Problem) -> list[str]:
        """Text appended to the context before each generation (multi-turn tasks)."""
        raise NotImplementedError

    def absorb(self, completion: str) -> str:
        """What of a turn's completion is kept in the context (multi-turn tasks)."""
        return completion

    # ------------------------------------------------------------------ scoring side
    def extract(self, problem: Problem, raw: str | list[str]) -> str:
        """The program to run, from the model's raw output."""
        raise NotImplementedError

    def job(self, problem: Problem, program: str):
        """A `codebench.sandbox` job for this program."""
        raise NotImplementedError

    def verdict(self, problem: Problem, program: str, result) -> tuple[str, str]:
        """(outcome, detail) from the sandbox result; trusted-side checks go here."""
        return str(result.outcome), result.detail

    # ------------------------------------------------------------------ canaries
    def reference(self, problem: Problem) -> str | list[str] | None:
        """A raw model-style output that must pass (None: no reference for this problem)."""
        return None

    def wrong(self, problem: Problem) -> str | list[str]:
        """A raw model-style output that must fail."""
        raise NotImplementedError

    def canary_problems(self) -> list[Problem]:
        """Problems the canary checks (those with references, first `canary_count`)."""
        out = [p for p in self.problems() if self.reference(p) is not None]
        return out[: self.canary_count]


# ---------------------------------------------------------------------- helpers
def fenced(code: str, language: str = "python") -> str:
    """Wrap code as a chat answer would: a sentence and a fenced block."""
    return f"Here is the solution.\n\n```{language}\n{code.rstrip()}\n```\n"


def python_header(prompt: str, entry_point: str) -> str:
    """Everything in a Python prompt before `def entry_point(` (imports, helper functions)."""
    m = re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", prompt, re.M)
    return prompt[: m.start()] if m else ""


# ---------------------------------------------------------------------- registry
_REGISTRY: dict[str, Callable[..., Task]] = {}


def register(name: str) -> Callable:
    """Class decorator / factory registration under a benchmark name."""

    def deco(factory: Callable[..., Task]) -> Callable[..., Task]:
        _REGISTRY[name] = factory
        return factory

    return deco


def read_rows(path: Path, name: str) -> list[dict]:
    """The records of a benchmark's JSONL data file; a missing file or a malformed line is a
    BenchError naming the file (and line)."""
    if not path.is_file():
        raise BenchError(f"{name}: data file not found: {path}")
    try:
        return list(read_jsonl(path))
    except RecordError as e:
        raise BenchError(str(e)) from None


def read_problem_lines(path: Path, make: Callable[[dict, str, int], Problem]) -> list[Problem]:
    """Problems of a JSONL file, one per non-blank line through `make(row, where, lineno)`;
    malformed lines, duplicate task ids and an empty file are BenchErrors naming file and line."""
    out, seen = [], set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise BenchError(f"{where}: malformed JSONL line: {e}") from None
        prob = make(row, where, lineno)
        if prob.task_id in seen:
            raise BenchError(f"{where}: duplicate task_id {prob.task_id!r}")
        seen.add(prob.task_id)
        out.append(prob)
    if not out:
        raise BenchError(f"{path}: no problems")
    return out
