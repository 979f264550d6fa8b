"""MTPB, CodeGen's Multi-Turn Programming Benchmark (115 problems x 5 test cases).

As in CodeGen's `mtpb_sample.py` / `mtpb_exec.py`:

- each problem's prompts are templates with `{placeholders}` filled per test case, so every
  (problem, test case) is its own generation chain and its own scored unit
  (task id `mtpb/<id>/<case>`);
- the context starts with "# Import libraries.\\n\\nimport numpy as np\\n\\n";
- multi (default): each turn's prompt is appended as a comment line "# {prompt}\\n", the model
  completes, its completion is truncated (second top-level `print`/`def`, a line starting with
  `#`, `'''`, `\"\"\"`, `<|endoftext|>`, or three newlines) and appended with "\\n\\n";
  per-turn budget: the problem's `max_gen_length` (128 when absent), capped by the run's.
- single: all turns' comments concatenated in one prompt, one completion (truncated only at
  `<|endoftext|>` and top-level docstring quotes: a whole program has several functions and
  blank lines), budget max_gen_length x turns, capped by the run's max_new_tokens.

Scoring: the program's last expression is rewritten to print (CodeGen's AST rewrite), `print`
is replaced by a recorder, and the *object* last printed is compared to the expected output
with CodeGen's `check_equivalence` (pandas Series and numpy arrays via allclose, numpy scalars
unwrapped, lists of tuples as lists, a mismatched type cast to the expected type, bools
compared as strings, floats within 1e-6). The program runs in the sandbox (a `CallJob`);
the printed object comes back as an encoding of its conversions and is compared in the
trusted process. The encoding is hostile input (the program can replace the harness's
encoder): the *gold* value alone decides which comparison runs and which field it reads, and
an array is compared with `allclose` only against a list gold of the same shape (an empty
array "close" to any scalar was a universal pass). As in CodeGen, an exception after the last print still scores that print.
Deviation, deliberate: CodeGen raises "Unsupported type" for dict and None outputs (7 of the
575 test cases can never pass there); codebench compares them with ==.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from codebench.bench.tasks import Problem, Task, read_rows, register

PREFIX = "# Import libraries.\n\nimport numpy as np\n\n"
DEFAULT_MAX_GEN = 128
BACKEND_STOPS_MULTI = ["\n#", "\n\n\n", "\n'''", '\n"""']

# The sandboxed side: run the program with a recording print, encode the last printed object.
HARNESS = r"""
import ast as _ast


def _rewrite_last_expr_to_print(code):
    tree = _ast.parse(code)
    if not tree.body:
        return code
    last = tree.body[-1]
    try:
        if last.value.func.id.startswith("print"):
            return code
    except AttributeError:
        pass
    if isinstance(last, _ast.Expr):
        last.value = _ast.Call(func=_ast.Name(id="print", ctx=_ast.Load()), args=[last.value], keywords=[])
        _ast.fix_missing_locations(tree)
        return _ast.unparse(tree)
    return code


def _try(f, *a):
    try:
        return f(*a)
    except Exception:
        return None


def _plain(v, depth=0):
    if depth > 40:
        raise ValueError("too deep")
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("non-finite")
        return float(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x, depth + 1) for x in v]
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return {k: _plain(x, depth + 1) for k, x in v.items()}
    raise ValueError(type(v).__name__)


def _encode(o1):
    import numpy as np

    kind = "value"
    if str(type(o1)) == "<class 'pandas.core.series.Series'>":
        return {"kind": "ndarray", "type": "ndarray", "value": _try(_plain, o1.to_numpy().tolist())}
    if type(o1) == list and len(o1) > 0 and type(o1[0]) == tuple:
        o1 = [list(t) for t in o1]
    elif type(o1) in (np.uint8, np.int16, np.int32, np.int64):
        o1 = int(o1)
    elif type(o1) in (np.float16, np.float32, np.float64):
        o1 = float(o1)
    elif type(o1) in (np.bool_,):
        o1 = bool(o1)
    elif type(o1) == np.ndarray:
        o1 = o1.tolist()
    return {
        "kind": kind,
        "type": type(o1).__name__,
        "value": _try(_plain, o1),
        "str": _try(str, o1),
        "list": _try(lambda x: _plain(list(x)), o1),
        "int": _try(int, o1),
        "float": _try(lambda x: _plain(float(x)), o1),
        "bool": _try(bool, o1),
    }


def mtpb_run(source):
    import builtins

    printed = []

    def _print(*args, **kwargs):
        printed.append(args)
        return builtins.print(*args, **kwargs)

    try:
        code = _rewrite_last_expr_to_print(source)
    except Exception:
        code = source
    g = {"__name__": "__main__", "print": _print}
    error = None
    try:
        exec(compile(code, "<mtpb>", "exec"), g)
    except BaseException as e:  # CodeGen scores the last print even after an exception
        error = f"{type(e).__name__}: {e}"
    if not printed or not printed[-1]:
        return {"printed": False, "error": error or "nothing was printed"}
    out = _encode(printed[-1][0])
    out["printed"] = True
    out["error"] = error
    return out
"""

# Hand-written reference turns (templates filled with each test case's inputs) for canaries.
REFERENCES: dict[str, list[str]] = {
    "1": [
        'my_string = "{A}"',
        "my_string = my_string.lower()",
        "chars = list(set(my_string))",
        "chars = sorted(chars)",
        "print(chars)",
    ],
    "3": [
        "def minutes_to_seconds(minutes):\n    return minutes * 60",
        "def hours_to_seconds(hours):\n    return hours * 3600",
        "print(hours_to_seconds({a1}) + minutes_to_seconds({a2}))",
    ],
    "4": [
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
        "def square(x):\n    return x * x",
        "print(square(fib({a1})))",
    ],
}


def truncate_turn(completion: str) -> str:
    """CodeGen's per-turn truncation (mtpb_sample.truncate)."""
    prints = list(re.finditer(r"^print", completion, re.M))
    if len(prints) > 1:
        completion = completion[: prints[1].start()]
    defs = list(re.finditer(r"^def", completion, re.M))
    if len(defs) > 1:
        completion = completion[: defs[1].start()]
    terminals = [
        re.compile(r, re.M)
        for r in (r"^#", re.escape("<|endoftext|>"), r"^'''", r'^"""', r"\n\n\n")
    ]
    cuts = [m.start() for t in terminals if (m := t.search(completion))]
    return completion[: min(cuts)] if cuts else completion


def truncate_single(completion: str) -> str:
    """Single-turn truncation: a whole program, cut only at end-of-text and top-level docstrings."""
    terminals = [re.compile(r, re.M) for r in (re.escape("<|endoftext|>"), r"^'''", r'^"""')]
    cuts = [m.start() for t in terminals if (m := t.search(completion))]
    return completion[: min(cuts)] if cuts else completion


def mtpb_file(data_dir: str | Path | None = None) -> Path:
    from codebench.paths import data_dir as _data_dir

    return _data_dir(data_dir) / "mtpb" / "mtpb.jsonl"


_MISSING = object()


def _numeric_array(x: Any):
    """A numeric numpy array of plain data (bools excluded), or None."""
    import numpy as np

    try:
        arr = np.array(x, dtype=object)
        if arr.size and any(
            isinstance(v, bool) or not isinstance(v, int | float) for v in arr.flat
        ):
            return None
        return np.array(x, dtype=float)
    except (ValueError, TypeError, OverflowError):
        return None


def _allclose(value: Any, gold: Any) -> tuple[bool, str]:
    """Series/array output against a list gold: same shape, numeric, allclose (no broadcasting
    of an empty array: an empty array is not "close" to anything but an empty list)."""
    import numpy as np

    a, b = _numeric_array(value), _numeric_array(gold)
    if a is None or b is None:
        return False, "allclose needs numeric arrays"
    if a.shape != b.shape:
        return False, f"shape {a.shape} != expected {b.shape}"
    return bool(np.allclose(a, b)), "allclose"


def equivalent(enc: Any, gold: Any) -> tuple[bool, str]:
    """CodeGen's check_equivalence on the sandbox's encoding of the printed object.

    The encoding comes from the sandboxed process and is treated as hostile: every field may
    be forged. The *gold* value alone decides which comparison runs and which field of the
    encoding it reads; a field of the wrong type, or a missing one, fails.
    """
    if not isinstance(enc, dict):
        return False, "malformed encoding"
    typ = enc.get("type")
    kind = enc.get("kind")

    def field(name: str, want: tuple[type, ...]) -> Any:
        """The printed object's own value when its type is the gold's, else its cast `name`."""
        v = enc.get("value", _MISSING) if typ == type(gold).__name__ else enc.get(name, _MISSING)
        if v is _MISSING or v is None or isinstance(v, bool) != (bool in want):
            return _MISSING
        return v if isinstance(v, want) else _MISSING

    if isinstance(gold, bool):  # CodeGen compares bools as strings
        s = enc.get("str")
        return isinstance(s, str) and s == str(gold), "compared as strings"
    if gold is None:
        return typ == "NoneType" and enc.get("value", _MISSING) is None, "is None"
    if isinstance(gold, list):
        if kind == "ndarray":
            return _allclose(enc.get("value"), gold)
        o1 = field("list", (list,))
        return (o1 is not _MISSING and o1 == gold), "=="
    if kind == "ndarray":
        return False, f"an array is not a {type(gold).__name__}"
    if isinstance(gold, float):
        o1 = field("float", (int, float))
        if o1 is _MISSING:
            return False, f"cannot convert {typ} to float"
        return math.isfinite(o1) and abs(float(o1) - gold) < 1e-6, "float within 1e-6"
    if isinstance(gold, int):
        o1 = field("int", (int,))
        return (o1 is not _MISSING and o1 == gold), "=="
    if isinstance(gold, str):
        o1 = field("str", (str,))
        return (o1 is not _MISSING and o1 == gold), "=="
    if isinstance(gold, dict):
        o1 = enc.get("value", _MISSING)
        return (typ == "dict" and isinstance(o1, dict) and o1 == gold), "=="
    return False, f"unsupported type {type(gold).__name__}"


@register("mtpb")
class MTPB(Task):
    """CodeGen's Multi-Turn Programming Benchmark."""

    name = "mtpb"
    language = "python"
    protocols = ("multi", "single")
    multi_turn = True
    canary_count = 2

    def _path(self) -> Path:
        return Path(self.options["path"]) if self.options.get("path") else mtpb_file(self.data_dir)

    def data_files(self) -> list[Path]:
        return [self._path()]

    def load(self) -> list[Problem]:
        """One Problem per (problem, test case), problems in id order."""
        rows = read_rows(self._path(), self.name)
        rows.sort(key=lambda r: int(r["id"]))
        out = []
        for r in rows:
            # zip, as CodeGen does: problem 57 lists 6 outputs for 5 inputs (the 6th is unused)
            for case, (inputs, output) in enumerate(zip(r["inputs"], r["outputs"], strict=False)):
                prompts = [p.format(**inputs) for p in r["prompts"]]
                out.append(
                    Problem(
                        task_id=f"mtpb/{r['id']}/{case}",
                        prompt=PREFIX + "".join(f"# {p}\n" for p in prompts),
                        language="python",
                        meta={
                            "problem_id": str(r["id"]),
                            "case": case,
                            "name": r.get("name"),
                            "category": r.get("category"),
                            "prompts": prompts,
                            "inputs": inputs,
                            "output": output,
                            "max_gen_length": int(r.get("max_gen_length") or DEFAULT_MAX_GEN),
                        },
                    )
                )
        return out

    def problems(self, limit: int | None = None) -> list[Problem]:
        """`limit` counts MTPB problems (each brings its 5 test cases)."""
        allp = super().problems(None)
        if limit is None:
            return allp
        keep = list(dict.fromkeys(p.meta["problem_id"] for p in allp))[:limit]
        return [p for p in allp if p.meta["problem_id"] in set(keep)]

    def info(self) -> dict[str, Any]:
        return {**super().info(), "prefix": PREFIX, "unit": "problem x test case"}

    # generation ---------------------------------------------------------
    def turns(self, problem: Problem) -> list[str]:
        comments = [f"# {p}\n" for p in problem.meta["prompts"]]
        if self.protocol == "single":
            return [PREFIX + "".join(comments)]
        return [PREFIX + comments[0], *comments[1:]]

    def absorb(self, completion: str) -> str:
        return truncate_turn(completion) + "\n\n"

    def stop(self, problem: Problem) -> list[str]:
        return list(BACKEND_STOPS_MULTI) if self.protocol == "multi" else ["<|endoftext|>"]

    def max_new_tokens(self, problem: Problem, default: int) -> int:
        per_turn = problem.meta["max_gen_length"]
        budget = per_turn if self.protocol == "multi" else per_turn * len(problem.meta["prompts"])
        return min(default, budget)

    # scoring ------------------------------------------------------------
    def extract(self, problem: Problem, raw: str | list[str]) -> str:
        turns = self.turns(problem)
        outs = [raw] if isinstance(raw, str) else list(raw)
        if self.protocol == "single":
            return turns[0] + truncate_single(outs[0] if outs else "")
        program = ""
        for i, t in enumerate(turns):
            program += t + (self.absorb(outs[i]) if i < len(outs) else "")
        return program

    def job(self, problem: Problem, program: str):
        from codebench.sandbox import CallJob

        return CallJob(
            program=HARNESS,
            function="mtpb_run",
            calls=[(program,)],
            timeout=self.options.get("timeout", 10.0),
        )

    def verdict(self, problem: Problem, program: str, result) -> tuple[str, str]:
        if result.values is None or not result.values:
            return str(result.outcome), result.detail
        cr = result.values[0]
        if not cr.ok:
            return str(cr.outcome), cr.error or result.detail
        enc = cr.value if isinstance(cr.value, dict) else {}
        if enc.get("printed") is not True:
            return "failed", f"no printed output ({enc.get('error')})"
        ok, how = equivalent(enc, problem.meta["output"])
        if ok:
            return "passed", ""
        shown = enc.get("str") if isinstance(enc.get("str"), str) else enc.get("value")
        detail = f"printed {str(shown)[:200]!s} != expected {json.dumps(problem.meta['output'])[:200]} ({how})"
        if enc.get("error"):
            detail += f"; error: {enc['error']}"
        return "failed", detail

    # canaries -------------------------------------------------------------
    def reference(self, problem: Problem) -> list[str] | None:
        ref = REFERENCES.get(problem.meta["problem_id"])
        if ref is None:
            return None
        filled = [t.format(**problem.meta["inputs"]) for t in ref]
        return ["\n".join(filled)] if self.protocol == "single" else filled

    def wrong(self, problem: Problem) -> list[str]:
        n = len(problem.meta["prompts"])
        turns = ["pass"] * (n - 1) + ['print("codebench-wrong")']
        return ["\n".join(turns)] if self.protocol == "single" else turns

    def canary_problems(self) -> list[Problem]:
        return [p for p in self.problems() if self.reference(p) is not None and p.meta["case"] < 2][
            : self.canary_count * 2
        ]
