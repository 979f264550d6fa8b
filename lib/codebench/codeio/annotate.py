"""Type annotations -> input specs -> seeded random inputs.

Offline unification needs inputs without a model. A function whose parameters are annotated
with JSON-shaped types gets an *input spec*: plain JSON describing each parameter, built
from the annotation's AST (the untrusted source is parsed, never imported or executed here).
`draw(spec, rng)` turns a spec into a value with a seeded `random.Random`, so the same seed
gives the same inputs on every machine (hypothesis' `.example()` is neither seeded nor meant
for data generation; these generators are small, explicit and deterministic).

Supported: int, float, str, bool, None, list/List[T], set-free containers dict/Dict[str, T],
tuple/Tuple[T, ...] and Tuple[A, B], Optional[T], Union[...], X | Y, and bare list/dict/tuple
(elements int or str). Anything else (classes, Dict[int, ...], Callable, np.ndarray) is
unsupported and named in the reason.

Spec grammar (JSON)::

    {"type": "int", "lo": -10, "hi": 10}     {"type": "float"}   {"type": "str"}
    {"type": "bool"}  {"type": "none"}
    {"type": "list", "item": SPEC, "max_len": 6}
    {"type": "tuple", "items": [SPEC, ...]}  (fixed)  {"type": "tuple", "item": SPEC} (variable)
    {"type": "dict", "value": SPEC, "max_len": 4}   (string keys)
    {"type": "union", "options": [SPEC, ...]}
    {"type": "kwargs", "params": {"name": SPEC, ...}}   (the top level: one value per parameter)
"""

from __future__ import annotations

import ast
import random
import string
from typing import Any

_SCALARS = {"int", "float", "str", "bool", "None", "NoneType"}
_ALIASES = {
    "List": "list",
    "list": "list",
    "Sequence": "list",
    "Iterable": "list",
    "Dict": "dict",
    "dict": "dict",
    "Mapping": "dict",
    "Tuple": "tuple",
    "tuple": "tuple",
    "Optional": "optional",
    "Union": "union",
}
# ints named like sizes or counts stay small and non-negative (loops over range(n) stay fast)
_SIZE_NAMES = (
    "n",
    "k",
    "m",
    "num",
    "size",
    "count",
    "length",
    "len",
    "steps",
    "rows",
    "cols",
    "depth",
    "level",
    "times",
)


class Unsupported(ValueError):
    """An annotation that has no input spec; the message names it."""


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # typing.List, t.Optional
        return node.attr
    if isinstance(node, ast.Constant) and node.value is None:
        return "None"
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    raise Unsupported(ast.unparse(node))


def spec_of(node: ast.expr | None, param: str = "", depth: int = 0) -> dict:
    """The input spec of one annotation AST node (raises Unsupported)."""
    if node is None:
        raise Unsupported(f"parameter {param!r} has no annotation")
    if depth > 4:
        raise Unsupported("annotation nested too deeply")
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # "List[int]" forward ref
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            raise Unsupported(node.value) from None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # int | None
        return _union([spec_of(node.left, param, depth + 1), spec_of(node.right, param, depth + 1)])
    if isinstance(node, ast.Subscript):
        return _generic(node, param, depth)
    name = _name(node)
    if name in _SCALARS:
        return _scalar(name, param)
    kind = _ALIASES.get(name)
    if kind == "list":
        return {"type": "list", "item": {"type": "int", "lo": -10, "hi": 10}, "max_len": 6}
    if kind == "dict":
        return {"type": "dict", "value": {"type": "int", "lo": -10, "hi": 10}, "max_len": 4}
    if kind == "tuple":
        return {"type": "tuple", "item": {"type": "int", "lo": -10, "hi": 10}}
    raise Unsupported(ast.unparse(node))


def _scalar(name: str, param: str) -> dict:
    if name == "int":
        small = param.lower() in _SIZE_NAMES or param.lower().startswith(("num_", "n_"))
        return (
            {"type": "int", "lo": 0, "hi": 12} if small else {"type": "int", "lo": -10, "hi": 100}
        )
    if name in ("None", "NoneType"):
        return {"type": "none"}
    return {"type": name}


def _union(options: list[dict]) -> dict:
    flat: list[dict] = []
    for o in options:
        flat.extend(o["options"] if o["type"] == "union" else [o])
    return {"type": "union", "options": flat}


def _generic(node: ast.Subscript, param: str, depth: int) -> dict:
    kind = _ALIASES.get(_name(node.value))
    args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    sub = [a for a in args if not (isinstance(a, ast.Constant) and a.value is Ellipsis)]
    if kind == "list" and len(args) == 1:
        return {
            "type": "list",
            "item": spec_of(args[0], param + "[]", depth + 1),
            "max_len": 6 if depth == 0 else 4,
        }
    if kind == "dict" and len(args) == 2:
        if _name(args[0]) != "str":
            raise Unsupported(f"{ast.unparse(node)} (JSON object keys are strings)")
        return {"type": "dict", "value": spec_of(args[1], param + "{}", depth + 1), "max_len": 4}
    if kind == "tuple":
        if len(args) == 2 and len(sub) == 1:  # Tuple[int, ...]
            return {"type": "tuple", "item": spec_of(sub[0], param, depth + 1)}
        return {"type": "tuple", "items": [spec_of(a, param, depth + 1) for a in args]}
    if kind == "optional" and len(args) == 1:
        return _union([spec_of(args[0], param, depth + 1), {"type": "none"}])
    if kind == "union":
        return _union([spec_of(a, param, depth + 1) for a in args])
    raise Unsupported(ast.unparse(node))


def function_spec(fn: ast.FunctionDef, skip_first: bool = False) -> dict:
    """The kwargs spec of a function definition (skip `self`/`cls` with `skip_first`)."""
    a = fn.args
    if a.vararg or a.kwarg or a.posonlyargs:
        raise Unsupported(f"{fn.name}: *args, **kwargs or positional-only parameters")
    params = list(a.args) + list(a.kwonlyargs)
    if skip_first:
        params = params[1:]
    if not params:
        raise Unsupported(f"{fn.name}: no parameters")
    return {"type": "kwargs", "params": {p.arg: spec_of(p.annotation, p.arg) for p in params}}


def type_text(node: ast.expr | None) -> str:
    """The annotation as written (for the I/O description)."""
    return ast.unparse(node) if node is not None else "any"


# --------------------------------------------------------------------------- drawing
_ALPHABET = string.ascii_lowercase
_RICH = string.ascii_letters + string.digits + " "


def draw(spec: dict, rng: random.Random) -> Any:
    """One value drawn from `spec` (see the module doc) with the seeded `rng`."""
    t = spec["type"]
    if t == "kwargs":
        return {name: draw(s, rng) for name, s in spec["params"].items()}
    if t == "int":
        lo, hi = spec.get("lo", -10), spec.get("hi", 100)
        r = rng.random()
        if r < 0.15:
            return rng.choice([v for v in (0, 1, lo, hi) if lo <= v <= hi] or [lo])
        return rng.randint(lo, hi)
    if t == "float":
        return round(rng.uniform(-100.0, 100.0), rng.choice((1, 2, 3)))
    if t == "str":
        n = rng.choice((0, 1, 3, 5, 8)) if rng.random() < 0.3 else rng.randint(1, 8)
        chars = _RICH if rng.random() < 0.2 else _ALPHABET[: rng.choice((3, 6, 26))]
        return "".join(rng.choice(chars) for _ in range(n))
    if t == "bool":
        return rng.random() < 0.5
    if t == "none":
        return None
    if t == "list":
        n = rng.randint(0, spec.get("max_len", 6))
        return [draw(spec["item"], rng) for _ in range(n)]
    if t == "tuple":
        if "items" in spec:
            return [draw(s, rng) for s in spec["items"]]
        return [draw(spec["item"], rng) for _ in range(rng.randint(0, 5))]
    if t == "dict":
        n = rng.randint(0, spec.get("max_len", 4))
        keys = sorted({draw({"type": "str"}, rng) or "k" for _ in range(n)})
        return {k: draw(spec["value"], rng) for k in keys}
    if t == "union":
        opts = spec["options"]
        # None is one option, but not half of the draws
        weights = [0.2 if o["type"] == "none" else 1.0 for o in opts]
        return draw(rng.choices(opts, weights)[0], rng)
    raise ValueError(f"unknown spec type {t!r}")


def draw_inputs(spec: dict, seed: int, n: int) -> list[dict]:
    """`n` input dicts from a kwargs spec, fixed by `seed`."""
    rng = random.Random(seed)
    return [draw(spec, rng) for _ in range(n)]


def tuple_params(spec: dict) -> list[str]:
    """Top-level parameters whose spec is a tuple (the wrapper converts JSON lists back)."""
    return [k for k, s in spec.get("params", {}).items() if s["type"] == "tuple"]
