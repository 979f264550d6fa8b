"""LeetCode contest problems in DeepSeek-Coder's format (Evaluation/LeetCode, 180 problems from
contests of July 2023 - January 2024), with two named protocols.

Data: `data_dir/leetcode/20240121-Jul.jsonl`, fetched on first use (`codebench fetch-data
--sets leetcode`, SHA-256 checked). One JSON object per line, as upstream ships it:

    task_id     contest + title slug ("weekly-contest-381-minimum-number-of-pushes-to-type-word-i")
    prompt      the statement in a docstring, then `class Solution:` with the method signature
                and a last line of eight spaces (the base-model form)
    prompt_sft  the statement, "Please complete the code below to solve above prblem:" and the
                same class in a ```python fence (the chat form)
    test        `my_solution = Solution()` then `test_input = {...}` / `assert
                my_solution.method(**test_input) == expected` pairs (100 per problem; linked-list
                problems build inputs with `ListNode` and read outputs with a helper)
    meta        LeetCode's metadata; `meta.difficulty` is Easy, Medium or Hard
    url, title, start_time   kept as metadata

Protocols (docs/protocols.md lists the differences from the reference harness):

instruct  DeepSeek-Coder's vllm_inference.py + evaluate_leetcode.py: one user message with
          `prompt_sft` as it is, rendered with the model's chat template (the published
          setting is greedy, 1024 new tokens); the answer is extracted as their
          `extract_python_code` does (`[PYTHON]` tags read as a ```python fence, the first
          ```python block, else the text up to the first top-level def/class/if/#/print); an
          answer that starts with the method body ("\\n        ...") is put under the
          prompt's class, as they do.
base      codebench's (DeepSeek-Coder publishes no base protocol for this set): the model
          continues `prompt` with the trailing indentation of its last line removed (a
          tokenizer that merges whitespace would otherwise be asked to continue half a token),
          the completion is cut at HumanEval's top-level stop strings; program = prompt
          without that indentation + completion.

Both: the program gets the reference harness's import header in front (`from typing import *`,
`collections`, `math`, ..., which most prompts rely on for `List` without importing it); the
tests never enter the sandbox: they run in the trusted process, where `Solution()` and every
object it returns are handles to the sandboxed program (`codebench.sandbox.trusted.Handle`),
so method results are compared as plain data on the trusted side. Results are also counted by
difficulty (results.json `by_difficulty`: DeepSeek-Coder's Easy/Medium/Hard table).

Upstream ships no solutions; the canaries use the few references written here (codebench's
own code, for the task ids below), which must pass, and wrong answers, which must fail.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from codebench.bench.humaneval import BASE_STOPS
from codebench.bench.tasks import BenchError, Problem, Task, fenced, read_problem_lines, register

VERSION = "20240121-Jul"
DATA_FILE = f"leetcode/{VERSION}.jsonl"

# DeepSeek-Coder Evaluation/LeetCode/human_eval/evaluation.py IMPORT_HELPER["python"], joined
# by newlines in front of the program. `numpy` is imported only where it is installed (the
# sandbox's Python may lack it; upstream then fails every sample).
IMPORT_LINES = (
    "import math",
    "import re",
    "import sys",
    "import copy",
    "import datetime",
    "import itertools",
    "import collections",
    "import heapq",
    "import functools",
    "import hashlib",
    "import string",
    "from typing import *",
    "from collections import *",
    "from functools import *",
)
NUMPY_IMPORT = (
    "try:\n    import numpy\n    import numpy as np\nexcept ImportError:  # not in this Python\n"
    "    pass\n"
)
HEADER = "\n".join(IMPORT_LINES) + "\n" + NUMPY_IMPORT

#: evaluate_leetcode.py's fallback split when the answer has no ```python block
SPLIT = re.compile(r"\ndef|\nclass|\nif|\n#|\nprint")
FENCE = re.compile(r"```python\n(.*?)\n```", re.DOTALL)
DIFFICULTIES = ("Easy", "Medium", "Hard")

# codebench's own solutions (upstream ships none) for the canaries: method bodies, indented for
# the class. Keyed by task id; the method names are those of the upstream prompts.
REFERENCES: dict[str, str] = {
    "weekly-contest-381-minimum-number-of-pushes-to-type-word-i": (
        "        return sum(i // 8 + 1 for i in range(len(word)))\n"
    ),
    "weekly-contest-381-minimum-number-of-pushes-to-type-word-ii": (
        "        counts = sorted(Counter(word).values(), reverse=True)\n"
        "        return sum(c * (i // 8 + 1) for i, c in enumerate(counts))\n"
    ),
    "weekly-contest-381-count-the-number-of-houses-at-a-certain-distance-i": (
        "        out = [0] * n\n"
        "        for i in range(1, n + 1):\n"
        "            for j in range(1, n + 1):\n"
        "                if i != j:\n"
        "                    d = min(abs(i - j), abs(i - x) + 1 + abs(y - j),"
        " abs(i - y) + 1 + abs(x - j))\n"
        "                    out[d - 1] += 1\n"
        "        return out\n"
    ),
    "biweekly-contest-122-divide-an-array-into-subarrays-with-minimum-cost-i": (
        "        return nums[0] + sum(sorted(nums[1:])[:2])\n"
    ),
    "weekly-contest-358-double-a-number-represented-as-a-linked-list": (
        "        digits = []\n"
        "        while head:\n"
        "            digits.append(str(head.val))\n"
        "            head = head.next\n"
        "        out = None\n"
        "        for ch in reversed(str(int(''.join(digits)) * 2)):\n"
        "            out = ListNode(int(ch), out)\n"
        "        return out\n"
    ),
}


def leetcode_file(data_dir: str | Path | None = None) -> Path:
    from codebench.paths import data_dir as _data_dir

    return _data_dir(data_dir) / DATA_FILE


def method_name(prompt: str) -> str | None:
    """The method the model writes: the last `def name(self` of the prompt's Solution class."""
    names = re.findall(
        r"^\s+def\s+(\w+)\s*\(\s*self\b", prompt.split("class Solution", 1)[-1], re.M
    )
    return names[-1] if names else None


def is_leetcode_shape(prompt: str, tests: str) -> bool:
    """A DeepSeek-Coder LeetCode-style problem: a `class Solution` prompt whose tests build
    `Solution()` and assert on its methods."""
    return bool(re.search(r"^class\s+Solution\b", prompt, re.M)) and "Solution()" in tests


def base_prompt(prompt: str) -> str:
    """The prompt without the trailing indentation of its last line (it ends in a newline)."""
    return prompt.rstrip(" \t")


def base_program(prompt: str, completion: str) -> str:
    """Header + prompt (trailing indentation removed) + the completion cut at top-level stops."""
    from codebench.bench.extract import truncate_at_stops

    head = base_prompt(prompt)
    return HEADER + head + truncate_at_stops(completion, BASE_STOPS, language="python", prefix=head)


def extract_python_code(generation: str) -> str:
    """evaluate_leetcode.py's `extract_python_code`: the first ```python block, else the text
    up to the first top-level def/class/if/#/print."""
    generation = generation.replace("[PYTHON]", "```python").replace("[/PYTHON]", "```")
    if "```python" in generation:
        blocks = FENCE.findall(generation)
        if blocks:
            return blocks[0]
        # upstream indexes [0] of no match and falls back to the raw output
        return generation
    return SPLIT.split(generation)[0]


def class_code(prompt_sft: str) -> str:
    """The fenced class of `prompt_sft`, stripped (what an answer of a bare body goes under)."""
    return extract_python_code(prompt_sft).strip()


def instruct_program(head: str, output: str) -> str:
    """The program evaluate_leetcode.py builds from a chat answer (plus the import header);
    `head` is `class_code(prompt_sft)`."""
    body_only = output.startswith("\n        ")
    return HEADER + (head + "\n" + output if body_only else extract_python_code(output)) + "\n"


def job(tests: str, program: str):
    """Trusted-verdict job: `Solution` (and `ListNode` etc.) become handles to the sandbox."""
    from codebench.sandbox import TestsJob

    return TestsJob(program=program, tests=tests, entry_point=None, prelude=HEADER)


def wrong_body() -> str:
    return "        return None  # codebench-wrong\n"


def problem_from_row(row: Any, where: str) -> Problem:
    """A Problem from one upstream row; errors name the line and the field."""
    if not isinstance(row, dict):
        raise BenchError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in ("task_id", "prompt", "prompt_sft", "test"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise BenchError(f"{where}: field {key!r} must be a non-empty string")
    if not is_leetcode_shape(row["prompt"], row["test"]):
        raise BenchError(
            f"{where}: not in DeepSeek-Coder's LeetCode shape (a `class Solution` prompt and "
            "tests that build `Solution()`)"
        )
    meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    difficulty = meta.get("difficulty")
    return Problem(
        task_id=row["task_id"],
        prompt=row["prompt"],
        language="python",
        entry_point=method_name(row["prompt"]),
        tests=row["test"],
        stop=list(BASE_STOPS),
        reference=REFERENCES.get(row["task_id"]),
        meta={
            "prompt_sft": row["prompt_sft"],
            "difficulty": difficulty if difficulty in DIFFICULTIES else None,
            "url": row.get("url"),
        },
    )


def read_leetcode(path: str | Path) -> list[Problem]:
    from codebench.paths import missing_data

    p = Path(path)
    if not p.is_file():
        raise BenchError(f"leetcode: {missing_data([p])}")
    return read_problem_lines(p, lambda row, where, _: problem_from_row(row, where))


@register("leetcode")
class LeetCode(Task):
    """DeepSeek-Coder's LeetCode contest set: instruct (their protocol) and base."""

    name = "leetcode"
    language = "python"
    protocols = ("instruct", "base")
    canary_count = 3

    REFERENCES = {
        "instruct": "deepseek-ai/DeepSeek-Coder Evaluation/LeetCode (vllm_inference.py, "
        "evaluate_leetcode.py)",
        "base": "codebench (no published base protocol for this set)",
    }

    def _path(self) -> Path:
        return (
            Path(self.options["path"]) if self.options.get("path") else leetcode_file(self.data_dir)
        )

    def data_files(self) -> list[Path]:
        return [self._path()]

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "reference_protocol": self.REFERENCES[self.protocol],
            "version": VERSION,
        }

    def load(self) -> list[Problem]:
        return read_leetcode(self._path())

    def prompt(self, problem: Problem, chat=None) -> str:
        if self.protocol == "base":
            return base_prompt(problem.prompt)
        return super().prompt(problem, chat)

    def messages(self, problem: Problem) -> list[dict]:
        return [{"role": "user", "content": problem.meta["prompt_sft"]}]

    def extract(self, problem: Problem, raw: str) -> str:
        if self.protocol == "base":
            return base_program(problem.prompt, raw)
        return instruct_program(class_code(problem.meta["prompt_sft"]), raw)

    def job(self, problem: Problem, program: str):
        return job(problem.tests, program)

    def reference(self, problem: Problem) -> str | None:
        if problem.reference is None:
            return None
        if self.protocol == "base":
            return problem.reference
        return fenced(base_prompt(problem.prompt) + problem.reference)

    def wrong(self, problem: Problem) -> str:
        if self.protocol == "base":
            return wrong_body()
        return fenced(base_prompt(problem.prompt) + wrong_body())
