"""Raw code -> unified records (problem, I/O description, `main_solution`, input source).

Three routes, all returning `unified_record`s or raising `Reject(reason, detail)`:

- `unify_unified`: a record already in the unified format (CodeI/O's parsed demo data) is
  checked (fields, syntax, entry point) and passed through with its stored I/O pairs.
- `unify_annotated`: a raw Python file is parsed (never imported); a function (or a method of
  a class that needs no constructor arguments) whose parameters carry JSON-shaped annotations
  becomes `main_solution` with an input spec from `annotate`. Top-level statements that would
  run on import (prints, scripts, I/O) are dropped; unavailable imports too.
- `transform_prompt` / `parse_transform`: the model route, with CodeI/O's four-section prompt
  (Main Function, Input Output Description, Input Generator, Problem Statement). Every way a
  response can fail to parse has its own reason.
"""

from __future__ import annotations

import ast
import re
import sys
import warnings

from codebench.codeio import annotate
from codebench.codeio.records import unified_record


class Reject(Exception):
    """A record that cannot be unified: `reason` (a short slug) and `detail`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail[:500]


def parse_module(code: str) -> ast.Module:
    """ast.parse with every failure mapped to Reject('syntax-error')."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # invalid escape sequences in raw code are not our concern
            return ast.parse(code)
    except SyntaxError as e:
        raise Reject("syntax-error", f"line {e.lineno}: {e.msg}") from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise Reject("syntax-error", f"{type(e).__name__}: {e}") from None


def defines(tree: ast.Module, name: str) -> bool:
    return any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name for n in tree.body
    )


# --------------------------------------------------------------------------- unified input
def unify_unified(rec: dict, origin: dict) -> dict:
    """Validate an already-unified record (CodeI/O parsed format) and return ours."""
    for field in ("refcode", "problem_description", "io_requirements"):
        if not isinstance(rec.get(field), str) or not rec[field].strip():
            raise Reject("malformed-record", f"missing or empty {field!r}")
    funcname = rec.get("funcname") or "main_solution"
    if not isinstance(funcname, str) or not funcname.isidentifier():
        raise Reject("malformed-record", f"funcname {funcname!r} is not an identifier")
    tree = parse_module(rec["refcode"])
    if not defines(tree, funcname):
        raise Reject("no-entry-point", f"refcode defines no top-level {funcname}()")
    ios = []
    for io in rec.get("ios") or []:
        if isinstance(io, dict) and isinstance(io.get("input"), dict) and "output" in io:
            ios.append({"input": io["input"], "output": io["output"]})
    return unified_record(
        refcode=rec["refcode"],
        funcname=funcname,
        problem=rec["problem_description"].strip(),
        io_requirements=rec["io_requirements"].strip(),
        input_generator=rec.get("input_generator")
        if isinstance(rec.get("input_generator"), str)
        else None,
        ios=ios,
        origin=origin,
    )


# --------------------------------------------------------------------------- annotated raw
_SAFE_CALLS = {
    "range",
    "set",
    "dict",
    "list",
    "tuple",
    "frozenset",
    "float",
    "int",
    "str",
    "len",
    "bool",
    "defaultdict",
    "namedtuple",
    "TypeVar",
    "compile",
    "deque",
    "Counter",
    "OrderedDict",
    "object",
}
_ALLOWED_THIRD_PARTY = {"numpy"}


def _keep_import(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        if node.level:  # relative import: the sibling module is not here
            return False
        roots = [(node.module or "").split(".")[0]]
    else:
        roots = [a.name.split(".")[0] for a in node.names]
    return all(r in sys.stdlib_module_names or r in _ALLOWED_THIRD_PARTY for r in roots)


def _keep_assign(node: ast.Assign | ast.AnnAssign) -> bool:
    if node.value is None:
        return True
    for sub in ast.walk(node.value):
        if isinstance(sub, ast.Call):
            fn = sub.func
            name = (
                fn.id
                if isinstance(fn, ast.Name)
                else fn.attr
                if isinstance(fn, ast.Attribute)
                else ""
            )
            if name not in _SAFE_CALLS:
                return False
        if isinstance(sub, ast.Lambda | ast.Await | ast.Yield | ast.YieldFrom | ast.NamedExpr):
            return False
    return True


def sanitize_module(tree: ast.Module) -> str:
    """Definitions, importable imports and simple constants; no code that runs on import."""
    keep = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            if _keep_import(node):
                keep.append(node)
        elif (
            isinstance(node, ast.FunctionDef | ast.ClassDef)
            or isinstance(node, ast.Assign | ast.AnnAssign)
            and _keep_assign(node)
        ):
            keep.append(node)
    return ast.unparse(ast.Module(body=keep, type_ignores=[]))


def _is_generator(fn: ast.FunctionDef) -> bool:
    return any(isinstance(n, ast.Yield | ast.YieldFrom) for n in ast.walk(fn))


def _constructible(cls: ast.ClassDef) -> bool:
    for n in cls.body:
        if isinstance(n, ast.FunctionDef) and n.name == "__init__":
            a = n.args
            required = len(a.args) - 1 - len(a.defaults)
            return required <= 0 and not [
                k for k, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is None
            ]
    return True


def _candidates(tree: ast.Module) -> list[tuple[ast.FunctionDef, ast.ClassDef | None]]:
    out = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out.append((node, None))
        elif isinstance(node, ast.ClassDef) and _constructible(node) and not node.decorator_list:
            for m in node.body:
                if isinstance(m, ast.FunctionDef) and not m.decorator_list:
                    out.append((m, node))
    return [(f, c) for f, c in out if not f.name.startswith(("_", "test")) and not _is_generator(f)]


def _return_ok(fn: ast.FunctionDef) -> bool:
    if fn.returns is None:
        return True
    if isinstance(fn.returns, ast.Constant) and fn.returns.value is None:
        return False  # returns nothing: a procedure, every output would be None
    try:
        annotate.spec_of(fn.returns, "return")
    except annotate.Unsupported:
        return False
    return True


def unify_annotated(code: str, origin: dict, max_functions: int = 1) -> list[dict]:
    """Unified records for the annotated functions of one raw Python file."""
    tree = parse_module(code)
    found: list[tuple[ast.FunctionDef, ast.ClassDef | None, dict]] = []
    unsupported: list[str] = []
    for fn, cls in _candidates(tree):
        args = fn.args.args[1:] if cls else fn.args.args
        if not args or any(a.annotation is None for a in args):
            continue
        try:
            spec = annotate.function_spec(fn, skip_first=cls is not None)
        except annotate.Unsupported as e:
            unsupported.append(f"{fn.name}: {e}")
            continue
        if not _return_ok(fn):
            unsupported.append(f"{fn.name}: returns {annotate.type_text(fn.returns)}")
            continue
        found.append((fn, cls, spec))
    if not found:
        if unsupported:
            raise Reject("unsupported-annotation", "; ".join(unsupported))
        raise Reject("no-annotated-function", "no function with annotated parameters")
    found.sort(key=lambda t: t[0].returns is None)  # functions with a return annotation first
    module = sanitize_module(tree)
    return [_record(module, fn, cls, spec, origin) for fn, cls, spec in found[:max_functions]]


def _record(
    module: str, fn: ast.FunctionDef, cls: ast.ClassDef | None, spec: dict, origin: dict
) -> dict:
    params = list(spec["params"])
    target = f"{cls.name}().{fn.name}" if cls else fn.name
    lines = [f"def main_solution({', '.join(params)}):"]
    lines += [f"    {p} = tuple({p})" for p in annotate.tuple_params(spec)]
    lines.append(f"    return {target}({', '.join(f'{p}={p}' for p in params)})")
    refcode = (
        f"{module}\n\n\n# main function: calls {target} (generated from its annotations)\n"
        + "\n".join(lines)
        + "\n"
    )
    argdefs = {a.arg: a for a in fn.args.args + fn.args.kwonlyargs}
    qual = f"{cls.name}.{fn.name}" if cls else fn.name
    io_req = "Input:\n" + "".join(
        f"  `{p}` ({annotate.type_text(argdefs[p].annotation)}): the argument `{p}` of `{qual}`\n"
        for p in params
    )
    ret = annotate.type_text(fn.returns) if fn.returns is not None else "any JSON value"
    io_req += f"Output:\n  `return` ({ret}): the value returned by `{qual}`"
    doc = (ast.get_docstring(fn) or "").strip().split("\n\n")[0].strip()
    names = ", ".join(f"`{p}`" for p in params)
    problem = (
        f"{doc}\n\n" if doc else ""
    ) + f"Given the inputs {names}, what does `{qual}` return?"
    return unified_record(
        refcode=refcode,
        problem=problem,
        io_requirements=io_req,
        input_spec=spec,
        origin={**origin, "function": qual, "route": "annotations"},
    )


# --------------------------------------------------------------------------- model route
TRANSFORM_PROMPT = """Task Overview:

Given a code file, organize a main function in Python and write a problem based on it. Give four parts:

1. Main Function: a function named `main_solution` that holds the main logic of the code file. Its inputs and outputs must be JSON serializable (convert sets, tuples, arrays and objects at its start and end). Keep inputs and outputs small (under 1KB). No printing, plotting or file writing.
2. Input Output Description: the type and meaning of every input variable and of the output.
3. Input Generator: a function `input_generator()` without arguments that returns a dict of random, reasonable arguments for `main_solution` (called as `main_solution(**input_generator())`).
4. Problem Statement: a non-programming question about the inputs (name the input variables) that asks for the returned value.

Answer in exactly this format:
## Main Function
```python
...
def main_solution(...):
    ...
```
## Input Output Description
Input:
  `arg1` (type): description
Output:
  `return` (type): description
## Input Generator
```python
def input_generator():
    ...
    return {"arg1": ...}
```
## Problem Statement
...

Here is the code file:
[Code Start]
<<<<code>>>>
[Code End]
"""

SECTIONS = ("Main Function", "Input Output Description", "Input Generator", "Problem Statement")
_CODE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S)


def transform_prompt(code: str, max_code_chars: int = 6000) -> str:
    """The four-section unification prompt for one raw code file."""
    return TRANSFORM_PROMPT.replace("<<<<code>>>>", code[:max_code_chars])


def split_sections(text: str) -> dict[str, str]:
    """Map each '## <Section>' header found in `text` to its body."""
    pattern = re.compile(r"^#{1,4}\s*(" + "|".join(SECTIONS) + r")\s*:?\s*$", re.M | re.I)
    marks = list(pattern.finditer(text))
    out = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        title = next(s for s in SECTIONS if s.lower() == m.group(1).lower())
        out.setdefault(title, text[m.end() : end].strip())
    return out


def _code_of(body: str, section: str) -> str:
    m = _CODE.search(body)
    code = (m.group(1) if m else body).strip()
    if not code:
        raise Reject("empty-section", section)
    return code


def parse_transform(text: str, origin: dict, finish_reason: str = "stop") -> dict:
    """A unified record from a model's four-section answer, or Reject naming what is wrong."""
    if finish_reason == "error":
        raise Reject("generation-error", text[:200])
    secs = split_sections(text or "")
    missing = [s for s in SECTIONS if s not in secs]
    if missing:
        reason = "truncated" if finish_reason == "length" else "missing-section"
        raise Reject(reason, "missing: " + ", ".join(missing))
    main = _code_of(secs["Main Function"], "Main Function")
    gen = _code_of(secs["Input Generator"], "Input Generator")
    try:
        tree = parse_module(main)
        gtree = parse_module(gen)
    except Reject:
        raise
    except (SyntaxError, ValueError, RecursionError) as e:
        raise Reject("syntax-error", str(e)) from None
    if not defines(tree, "main_solution"):
        raise Reject("no-entry-point", "the main function section defines no main_solution()")
    if not defines(gtree, "input_generator"):
        raise Reject(
            "no-input-generator", "the input generator section defines no input_generator()"
        )
    problem = secs["Problem Statement"].strip()
    if not problem or not secs["Input Output Description"].strip():
        raise Reject("empty-section", "problem statement or I/O description is empty")
    return unified_record(
        refcode=main,
        problem=problem,
        io_requirements=secs["Input Output Description"].strip(),
        input_generator=gen,
        origin={**origin, "route": "model"},
    )
