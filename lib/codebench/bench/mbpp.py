"""MBPP test split (task ids 11-510) with the standard 3-shot base prompt and an instruct protocol.

base      3-shot prompt as in the MBPP paper and DeepSeek-Coder's harness: the shots are task
          ids 2, 3 and 4 (code with CR removed and tabs as four spaces), each
          "You are an expert Python programmer, and here is your task: {text} Your code should
          pass these tests:\\n\\n{tests}\\n[BEGIN]\\n{code}\\n[DONE]\\n", then the problem ending in
          "[BEGIN]". The completion is cut at "[DONE]" and stripped; a fenced block inside it
          is unwrapped.
instruct  the same task statement and tests in one chat message; the fenced block is the program.

Tests are the problem's `test_list` asserts, run in the sandbox's trusted process against
proxies of the functions they call; `test_setup_code` (task 367 builds a tree) runs in the
sandbox after the program. Data: `data_dir/mbpp/mbpp.jsonl` (all 974 problems; the split is
taken by task id, so the file's test_setup_code is kept -- DeepSeek's mbpp_test.jsonl drops it).
"""

from __future__ import annotations

import re
from pathlib import Path

from codebench.bench.extract import extract_fenced
from codebench.bench.tasks import BenchError, Problem, Task, fenced, register
from codebench.records import RecordError, read_jsonl

SHOT_IDS = (2, 3, 4)
TEST_IDS = range(11, 511)

TASK_TEMPLATE = "You are an expert Python programmer, and here is your task: {text} Your code should pass these tests:\n\n{tests}\n"


def mbpp_file(data_dir: str | Path | None = None) -> Path:
    from codebench.paths import data_dir as _data_dir

    return _data_dir(data_dir) / "mbpp" / "mbpp.jsonl"


def _clean(code: str) -> str:
    return code.replace("\r", "").replace("\t", "    ")


def entry_point_of(code: str, tests: list[str]) -> str | None:
    """The function the tests call that the reference defines (first in definition order)."""
    called = set(re.findall(r"(\w+)\s*\(", " ".join(tests)))
    for name in re.findall(r"^\s*def\s+(\w+)", code, re.M):
        if name in called:
            return name
    return None


def few_shot_prefix(rows: dict[int, dict]) -> str:
    parts = []
    for tid in SHOT_IDS:
        r = rows[tid]
        tests = "\n".join(r["test_list"])
        parts.append(
            TASK_TEMPLATE.format(text=r["text"], tests=tests)
            + f"[BEGIN]\n{_clean(r['code'])}\n[DONE]\n"
        )
    return "".join(parts)


@register("mbpp")
class MBPP(Task):
    """MBPP test split, 3-shot base and instruct protocols."""

    name = "mbpp"
    language = "python"
    protocols = ("base", "instruct")
    canary_count = 3

    def _path(self) -> Path:
        return Path(self.options["path"]) if self.options.get("path") else mbpp_file(self.data_dir)

    def data_files(self) -> list[Path]:
        return [self._path()]

    def load(self) -> list[Problem]:
        path = self._path()
        if not path.is_file():
            raise BenchError(f"mbpp: data file not found: {path}")
        try:
            rows = {int(r["task_id"]): r for r in read_jsonl(path)}
        except (RecordError, KeyError, ValueError) as e:
            raise BenchError(f"mbpp: {e}") from None
        missing = [t for t in SHOT_IDS if t not in rows]
        if missing:
            raise BenchError(f"{path}: the 3-shot prompt needs task ids {missing}")
        prefix = few_shot_prefix(rows)
        out = []
        for tid in TEST_IDS:
            if tid not in rows:
                continue
            r = rows[tid]
            tests = [t.strip() for t in r["test_list"]]
            statement = TASK_TEMPLATE.format(text=r["text"], tests="\n".join(r["test_list"]))
            out.append(
                Problem(
                    task_id=f"mbpp/{tid}",
                    prompt=prefix + statement + "[BEGIN]",
                    language="python",
                    entry_point=entry_point_of(r["code"], tests),
                    tests="\n".join(tests) + "\n",
                    stop=["[DONE]"],
                    reference=r["code"].replace("\r\n", "\n").replace("\r", "\n"),
                    meta={"statement": statement, "setup": _clean(r.get("test_setup_code") or "")},
                )
            )
        if not out:
            raise BenchError(f"{path}: no problems with task ids 11-510")
        return out

    def messages(self, problem: Problem) -> list[dict]:
        content = problem.meta["statement"] + "\nWrite the Python code in one ```python code block."
        return [{"role": "user", "content": content}]

    def extract(self, problem: Problem, raw: str) -> str:
        if self.protocol == "base":
            text = raw.split("[DONE]")[0]
            if "```" in text:
                return extract_fenced(text, "python", problem.entry_point)
            return text.strip() + "\n"
        return extract_fenced(raw, "python", problem.entry_point)

    def job(self, problem: Problem, program: str):
        from codebench.sandbox import TestsJob

        # the entry point is named: with None the sandbox proxies only functions that are not
        # builtins, and task 126's reference is called `sum`
        return TestsJob(
            program=program,
            tests=problem.tests,
            entry_point=problem.entry_point,
            setup=problem.meta.get("setup", ""),
        )

    def reference(self, problem: Problem) -> str | None:
        if problem.reference is None:
            return None
        if self.protocol == "base":
            return "\n" + problem.reference + "\n[DONE]\n"
        return fenced(problem.reference)

    def wrong(self, problem: Problem) -> str:
        code = f"def {problem.entry_point}(*args, **kwargs):\n    return None\n"
        return f"\n{code}[DONE]\n" if self.protocol == "base" else fenced(code)
