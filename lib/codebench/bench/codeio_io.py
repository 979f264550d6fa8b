"""CodeI/O held-out input/output prediction, read from the data stage's split.

Spec: `codeio` (reads `<run>/data/heldout.jsonl`, the path given as the `path` option, which
the notebook sets from the run folder) or `codeio:path/to/heldout.jsonl`. When the file is
absent the task is skipped with a message saying which file and which stage writes it.

Records are the data stage's prompt records (`codebench.codeio.prompts.prompt_records`):
`id`, `fid`, `idx`, `direction` ("output" | "input"), `messages`, `input`, `output`; the
function for input prediction comes from the record's own `refcode`/`funcname`, else from
`unified.jsonl` beside the held-out file (keyed by `fid`); the record's `verify` settings
(tolerances, call timeout, input size limit) are used when present.

Scoring uses the data stage's own rules (`codebench.codeio.verify`): the answer is extracted
with `extract_answer` and compared with `values_match` (defaults: relative tolerance 1e-3,
absolute 1e-6, bool never equal to int); a predicted *input* (an object with the function's
argument names, within the size limit) is run through the reference function in the sandbox
and passes when it reproduces the expected output. The comparison is strict in both
directions (`values_match`: same structure, bool never a number, numbers within the
tolerance): no value the model or the sandbox sends matches a gold value vacuously. Protocol: instruct (the
records carry chat messages; a base model gets the documented plain-text chat fallback).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codebench.bench.tasks import BenchError, Problem, Task, register
from codebench.records import RecordError, read_jsonl


@register("codeio")
class CodeIOHeldout(Task):
    """Input/output prediction on the CodeI/O held-out split."""

    name = "codeio"
    protocols = ("instruct",)
    canary_count = 2

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        p = self.options.get("path")
        self.path = Path(p).expanduser().resolve() if p else None

    @property
    def spec(self) -> str:
        return f"codeio:{self.path}" if self.path else "codeio"

    def info(self) -> dict[str, Any]:
        return {**super().info(), "path": str(self.path) if self.path else None}

    def data_files(self) -> list[Path]:
        files = [self.path] if self.path else []
        if self.path and (self.path.parent / "unified.jsonl").is_file():
            files.append(self.path.parent / "unified.jsonl")
        return files

    def skip_reason(self, backend: Any = None) -> str | None:
        if self.path is None:
            return "codeio: skipped -- no held-out file given (evaluate it from a run: codeio:<run>/data/heldout.jsonl)"
        if not self.path.is_file():
            return f"codeio: skipped -- held-out split not found at {self.path} (written by 01_build_data)"
        if not any(line.strip() for line in self.path.open(encoding="utf-8")):
            return f"codeio: skipped -- held-out split {self.path} is empty (too few functions to hold any out: raise data.limit or data.heldout_fraction)"
        return None

    def _unified(self) -> dict[str, dict]:
        f = self.path.parent / "unified.jsonl" if self.path else None
        if f is None or not f.is_file():
            return {}
        return {r["fid"]: r for r in read_jsonl(f) if "fid" in r}

    def load(self) -> list[Problem]:
        if self.skip_reason():
            raise BenchError(self.skip_reason())
        try:
            rows = list(read_jsonl(self.path))
        except RecordError as e:
            raise BenchError(str(e)) from None
        unified = None
        out = []
        for i, r in enumerate(rows, 1):
            for key in ("id", "direction", "messages", "input", "output"):
                if key not in r:
                    raise BenchError(f"{self.path}: record {i}: missing field {key!r}")
            if r["direction"] not in ("input", "output"):
                raise BenchError(
                    f"{self.path}: record {i}: direction must be input or output, got {r['direction']!r}"
                )
            func = None
            if r["direction"] == "input":
                if r.get("refcode"):
                    func = {
                        "refcode": r["refcode"],
                        "funcname": r.get("funcname") or "main_solution",
                        "fid": r.get("fid"),
                    }
                else:
                    unified = self._unified() if unified is None else unified
                    func = unified.get(r.get("fid"))
                    if func is None:
                        raise BenchError(
                            f"{self.path}: record {i} ({r['id']}): input prediction needs the function: no 'refcode' and fid {r.get('fid')!r} not in unified.jsonl"
                        )
            out.append(
                Problem(
                    task_id=str(r["id"]),
                    prompt=r["messages"][-1]["content"] if r["messages"] else "",
                    language="python",
                    entry_point=(func or {}).get("funcname"),
                    meta={
                        "direction": r["direction"],
                        "messages": r["messages"],
                        "input": r["input"],
                        "output": r["output"],
                        "unified": func,
                        "verify": r.get("verify") or {},
                    },
                )
            )
        return out

    def messages(self, problem: Problem) -> list[dict]:
        return list(problem.meta["messages"])

    def extract(self, problem: Problem, raw: str) -> str:
        """The extracted answer as JSON (`{"found": ..., "value": ...}`)."""
        from codebench.codeio.verify import extract_answer

        ex = extract_answer(raw or "", problem.meta["direction"])
        return json.dumps(
            {"found": ex.found, "value": ex.value, "method": ex.method, "reason": ex.reason},
            default=str,
        )

    def _input_problem(self, problem: Problem, value: Any) -> str | None:
        """Why a predicted input cannot be run (the data stage's rules), or None."""
        from codebench.codeio.records import canonical

        if not isinstance(value, dict):
            return f"predicted input is a {type(value).__name__}, not an object of arguments"
        if set(value) != set(problem.meta["input"]):
            return f"predicted input has keys {sorted(value)}, the function takes {sorted(problem.meta['input'])}"
        if len(canonical(value)) > self._verify_cfg(problem).max_input_chars:
            return "predicted input is larger than the input size limit"
        return None

    def job(self, problem: Problem, program: str):
        ans = json.loads(program)
        if problem.meta["direction"] != "input" or not ans["found"]:
            return None
        if self._input_problem(problem, ans["value"]):
            return None
        from codebench.codeio import execute

        timeout = self._verify_cfg(problem).call_timeout
        return execute.probe_job(problem.meta["unified"], [(0, ans["value"])], timeout, 1 << 18)

    @staticmethod
    def _verify_cfg(problem: Problem):
        """The data stage's VerifyConfig recorded with the held-out record (defaults otherwise)."""
        from codebench.codeio.verify import VerifyConfig

        return VerifyConfig(**problem.meta.get("verify") or {})

    def verdict(self, problem: Problem, program: str, result) -> tuple[str, str]:
        from codebench.codeio.verify import values_match

        vcfg = self._verify_cfg(problem)
        ans = json.loads(program)
        if not ans["found"]:
            return "failed", f"no answer: {ans.get('reason')}"
        value, expected = ans["value"], problem.meta["output"]
        if problem.meta["direction"] == "output":
            if values_match(value, expected, vcfg.rel_tol, vcfg.abs_tol):
                return "passed", ""
            return "failed", "predicted output differs from the executed output"
        why = self._input_problem(problem, value)
        if why:
            return "failed", why
        if result is None or not result.values:
            return ("failed", "not run") if result is None else (str(result.outcome), result.detail)
        cr = result.values[0]
        if not cr.ok:
            return str(cr.outcome), cr.error
        # the probe returns [output, kwargs]; anything else is a failure, never a None output
        # that would match an expected None
        if not (isinstance(cr.value, list) and len(cr.value) == 2):
            return "failed", "malformed reply from the reference function"
        out = cr.value[0]
        if values_match(out, expected, vcfg.rel_tol, vcfg.abs_tol):
            return "passed", ""
        return "failed", "the predicted input gives another output"

    def reference(self, problem: Problem) -> str:
        from codebench.codeio.prompts import answer_block

        d = problem.meta["direction"]
        return "Reasoning...\n\n" + answer_block(d, problem.meta[d])

    def wrong(self, problem: Problem) -> str:
        from codebench.codeio.prompts import answer_block

        d = problem.meta["direction"]
        if d == "output":
            return answer_block("output", {"codebench": "wrong"})
        return answer_block("input", {k: "codebench-wrong" for k in problem.meta["input"]})

    def canary_problems(self) -> list[Problem]:
        ps = self.problems()
        outs = [p for p in ps if p.meta["direction"] == "output"][:1]
        ins = [p for p in ps if p.meta["direction"] == "input"][:1]
        return outs + ins
