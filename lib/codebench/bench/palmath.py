"""PAL-Math: program-aided math on GSM8K, GSM-Hard, SVAMP and MAWPS (data_dir/pal-math/).

The model writes `def solution():` returning the answer; the sandbox calls it (a `CallJob`,
plain values back) and the trusted process compares the value numerically:

    passed  <=>  math.isclose(float(value), answer, rel_tol=1e-4, abs_tol=1e-6)

A returned string is parsed as a number after removing commas, `$` and `%`; bools, lists,
None and non-finite values fail. Unlike DeepSeek-Coder's grader, an answer 100x or 1/100x
off (its "percentage" leniency) is *not* accepted.

base      3-shot prompt in the PAL format (worked examples written for codebench), then
          "Question: ...", the model answers with a ```python block; generation stops at
          "Question" or the "----------------" separator; the block defining solution() is
          the program (DeepSeek-Coder's PAL-Math protocol).
instruct  the question in a chat message asking for solution() in a ```python block.

Answers: GSM8K after "####" (commas removed), GSM-Hard `target`, SVAMP `Answer` (question =
Body + " " + Question, as in DeepSeek-Coder's parser), MAWPS `target`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from codebench.bench.extract import extract_fenced
from codebench.bench.tasks import BenchError, Problem, Task, fenced, register

REL_TOL = 1e-4
ABS_TOL = 1e-6
SEPARATOR = "----------------"

FEW_SHOT = '''Let's use python to solve math problems.

Question: A baker made 48 cookies. He sold 17 in the morning and 12 in the afternoon. How many cookies are left?

```python
def solution():
    """A baker made 48 cookies. He sold 17 in the morning and 12 in the afternoon. How many cookies are left?"""
    cookies_made = 48
    sold_morning = 17
    sold_afternoon = 12
    cookies_left = cookies_made - sold_morning - sold_afternoon
    result = cookies_left
    return result
```

----------------

Question: Sara reads 15 pages a day. How many days does she need to read a book of 240 pages?

```python
def solution():
    """Sara reads 15 pages a day. How many days does she need to read a book of 240 pages?"""
    pages_per_day = 15
    book_pages = 240
    days = book_pages / pages_per_day
    result = days
    return result
```

----------------

Question: A shirt costs $20 and is on sale for 25% off. Tom buys 3 shirts. How much does he pay?

```python
def solution():
    """A shirt costs $20 and is on sale for 25% off. Tom buys 3 shirts. How much does he pay?"""
    price = 20
    discount = 0.25
    sale_price = price * (1 - discount)
    shirts = 3
    total = sale_price * shirts
    result = total
    return result
```

----------------'''

INSTRUCT = (
    "Solve the following math problem by writing a Python function `solution()` that computes "
    "and returns the final numeric answer. Reply with the code in one ```python code block.\n\n"
    "Question: {question}"
)

SETS: dict[str, dict[str, str]] = {
    "gsm8k": {"file": "gsm8k/test.json"},
    "gsm-hard": {"file": "gsm-hard/test.json"},
    "svamp": {"file": "svamp/test.json"},
    "mawps": {"file": "mawps/test.json"},
}

# Hand-written solutions for canaries and tests: set -> idx -> body of solution().
REFERENCES: dict[str, dict[int, str]] = {
    "gsm8k": {
        0: "    eggs = 16 - 3 - 4\n    return eggs * 2\n",
        1: "    blue = 2\n    white = blue / 2\n    return blue + white\n",
        2: "    cost = 80000 + 50000\n    value = 80000 * 2.5\n    return value - cost\n",
    },
    "svamp": {0: "    return 290 / 2\n", 1: "    return 30 - 11\n"},
    "mawps": {0: "    return 70 - 27\n", 1: "    return 54 - 28\n"},
}


def parse_answer(row: dict, name: str) -> tuple[str, float]:
    """(question, numeric answer) of one record of set `name`."""
    if name == "gsm8k":
        return row["question"].strip(), float(
            row["answer"].split("####")[-1].strip().replace(",", "")
        )
    if name == "gsm-hard":
        return row["input"].strip(), float(row["target"])
    if name == "svamp":
        body = row["Body"].strip()
        body = body if body.endswith(".") else body + "."
        return f"{body} {row['Question'].strip()}", float(row["Answer"])
    if name == "mawps":
        return row["input"].strip(), float(row["target"])
    raise BenchError(f"unknown PAL-Math set {name!r}")


def to_number(value: Any) -> float | None:
    """A finite float from the value solution() returned, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str):
        s = value.strip().replace(",", "").replace("$", "").rstrip("%").strip()
        try:
            x = float(s)
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def numeric_match(value: Any, answer: float) -> bool:
    x = to_number(value)
    return x is not None and math.isclose(x, answer, rel_tol=REL_TOL, abs_tol=ABS_TOL)


class PALMath(Task):
    """One PAL-Math set."""

    language = "python"
    protocols = ("base", "instruct")
    canary_count = 2
    subset = ""

    def _path(self) -> Path:
        if self.options.get("path"):
            return Path(self.options["path"])
        from codebench.paths import data_dir

        return data_dir(self.data_dir) / "pal-math" / SETS[self.subset]["file"]

    def data_files(self) -> list[Path]:
        return [self._path()]

    def info(self) -> dict[str, Any]:
        return {**super().info(), "rel_tol": REL_TOL, "abs_tol": ABS_TOL}

    def load(self) -> list[Problem]:
        path = self._path()
        if not path.is_file():
            raise BenchError(f"{self.name}: data file not found: {path}")
        out = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                question, answer = parse_answer(row, self.subset)
            except (json.JSONDecodeError, KeyError, ValueError) as e:
                raise BenchError(f"{path}:{lineno}: bad record: {e}") from None
            idx = int(row.get("idx", lineno - 1))
            ref = REFERENCES.get(self.subset, {}).get(idx)
            if ref is not None:
                ref = f"def solution():\n{ref}"
            elif self.subset == "gsm-hard" and row.get("code"):
                ref = row["code"].strip("\n") + "\n"
            out.append(
                Problem(
                    task_id=f"{self.subset}/{idx}",
                    prompt=f"{FEW_SHOT}\n\nQuestion: {question}\n",
                    language="python",
                    entry_point="solution",
                    stop=["Question", SEPARATOR],
                    reference=ref,
                    meta={"question": question, "answer": answer},
                )
            )
        return out

    def messages(self, problem: Problem) -> list[dict]:
        return [{"role": "user", "content": INSTRUCT.format(question=problem.meta["question"])}]

    def extract(self, problem: Problem, raw: str) -> str:
        text = raw
        if self.protocol == "base":
            for s in problem.stop:
                if s in text:
                    text = text[: text.index(s)]
        return extract_fenced(text, "python", "solution")

    def job(self, problem: Problem, program: str):
        from codebench.sandbox import CallJob

        return CallJob(
            program=program,
            function="solution",
            calls=[()],
            timeout=self.options.get("timeout", 5.0),
        )

    def verdict(self, problem: Problem, program: str, result) -> tuple[str, str]:
        if not result.values:
            return str(result.outcome), result.detail
        cr = result.values[0]
        if not cr.ok:
            return str(cr.outcome), cr.error or result.detail
        answer = problem.meta["answer"]
        if numeric_match(cr.value, answer):
            return "passed", ""
        return "failed", f"solution() returned {str(cr.value)[:100]!r}, expected {answer:g}"

    def reference(self, problem: Problem) -> str | None:
        return (
            None
            if problem.reference is None
            else "\n" + fenced(problem.reference) + f"\n{SEPARATOR}\n"
        )

    def wrong(self, problem: Problem) -> str:
        code = 'def solution():\n    """codebench-wrong"""\n    return -123456789.25\n'
        return "\n" + fenced(code) + f"\n{SEPARATOR}\n"


def _make(subset: str) -> type[PALMath]:
    cls = type(
        "PAL_" + re.sub(r"\W", "_", subset), (PALMath,), {"name": f"pal-{subset}", "subset": subset}
    )
    cls.__doc__ = f"PAL-Math on {subset}."
    return cls


for _s in SETS:
    register(f"pal-{_s}")(_make(_s))
