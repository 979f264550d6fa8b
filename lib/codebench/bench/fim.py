"""Fill-in-the-middle infilling built from HumanEval canonical solutions.

For every HumanEval problem one span of its canonical solution is masked, chosen by a seeded
generator keyed on (seed, task id, mode), so the same seed always masks the same span:

single-line  one non-blank line; the model's middle is cut at its first newline.
multi-line   2-5 consecutive lines (the whole body when shorter).

The prompt is laid out prefix-suffix-middle with the tokenizer's own FIM markers
(`codebench.models.fim_tokens`): `<pre>{prompt + lines before}<suf>{lines after}<mid>`; the
program is prefix + middle + suffix and is scored with the problem's HumanEval tests. A model
whose tokenizer has no FIM markers (or a backend without a tokenizer) is skipped with a
message saying so, never scored as zero.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from codebench.bench.humaneval import check_tests, humaneval_file, read_humaneval
from codebench.bench.tasks import Problem, Task, register


def mask_span(solution: str, task_id: str, mode: str, seed: int = 0) -> tuple[str, str, str]:
    """(before, middle, after) lines of `solution`, the middle chosen deterministically."""
    lines = solution.splitlines(keepends=True)
    rng = random.Random(f"{seed}:{task_id}:{mode}")
    nonblank = [i for i, ln in enumerate(lines) if ln.strip()]
    if mode == "single-line":
        i = rng.choice(nonblank)
        start, end = i, i + 1
    else:
        size = min(len(lines), rng.randint(2, 5))
        starts = [i for i in nonblank if i + size <= len(lines)] or [0]
        start = rng.choice(starts)
        end = start + size
    return "".join(lines[:start]), "".join(lines[start:end]), "".join(lines[end:])


@register("fim")
class FIM(Task):
    """HumanEval infilling, single-line and multi-line spans."""

    name = "fim"
    language = "python"
    protocols = ("single-line", "multi-line")
    canary_count = 3

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.tokens = None
        self.seed = int(self.options.get("mask_seed", 0))

    def data_files(self) -> list[Path]:
        return [humaneval_file()]

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "mask_seed": self.seed,
            "layout": "PSM",
            "fim_tokens": list(self.tokens) if self.tokens else None,
        }

    def prepare(self, tokenizer: Any) -> None:
        """Read the FIM markers from the model's tokenizer."""
        if tokenizer is not None:
            from codebench.models import fim_tokens

            self.tokens = fim_tokens(tokenizer)

    def skip_reason(self, backend: Any = None) -> str | None:
        if self.tokens is None:
            return (
                "fim: skipped -- the model's tokenizer has no fill-in-the-middle tokens "
                "(or the backend exposes no tokenizer); FIM needs a model trained with them"
            )
        return None

    def load(self) -> list[Problem]:
        out = []
        for r in read_humaneval():
            before, middle, after = mask_span(
                r["canonical_solution"], r["task_id"], self.protocol, self.seed
            )
            out.append(
                Problem(
                    task_id=r["task_id"],
                    prompt=r["prompt"] + before,
                    language="python",
                    entry_point=r["entry_point"],
                    tests=r["test"],
                    reference=middle,
                    meta={"suffix": after, "header": r["prompt"], "middle": middle},
                )
            )
        return out

    def prompt(self, problem: Problem, chat=None) -> str:
        if self.tokens is None:
            raise RuntimeError(self.skip_reason())
        return self.tokens.prompt(problem.prompt, problem.meta["suffix"])

    def stop(self, problem: Problem) -> list[str]:
        marks = list(self.tokens) if self.tokens else []
        stops = ["<|endoftext|>", *marks]
        return ["\n", *stops] if self.protocol == "single-line" else stops

    def extract(self, problem: Problem, raw: str) -> str:
        middle = raw
        for s in self.stop(problem):
            if s and s in middle:
                middle = middle[: middle.index(s)]
        if not middle.endswith("\n"):
            middle += "\n"
        return problem.prompt + middle + problem.meta["suffix"]

    def job(self, problem: Problem, program: str):
        from codebench.sandbox import TestsJob

        return TestsJob(
            program=program,
            tests=check_tests(problem),
            entry_point=problem.entry_point,
            prelude=problem.meta["header"],
        )

    def reference(self, problem: Problem) -> str | None:
        return problem.meta["middle"]

    def wrong(self, problem: Problem) -> str:
        first = problem.meta["middle"].splitlines()[0] if problem.meta["middle"].strip() else "    "
        indent = first[: len(first) - len(first.lstrip())] or "    "
        return (
            f"{indent}return None  # codebench-wrong\n"
            if self.protocol == "multi-line"
            else f"{indent}return None"
        )
