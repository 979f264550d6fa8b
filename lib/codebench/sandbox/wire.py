"""Tagged-JSON codec for plain data crossing the sandbox boundary. Never pickle.

Round-trips None, bool, int (any size), float (nan, inf, -0.0), complex, str, bytes,
bytearray, list, tuple, dict (any encodable hashable keys), set and frozenset.

JSON scalars (null, true/false, small ints, finite floats, strings) and arrays (lists) are
used as is; everything else is a one-key object whose key is a tag:
``{"$t": [...]}`` tuple, ``{"$s": [...]}`` set, ``{"$fs": [...]}`` frozenset,
``{"$d": {...}}`` dict with str keys, ``{"$D": [[k, v], ...]}`` other dicts,
``{"$i": "hex"}`` big int, ``{"$f": "nan"|"inf"|"-inf"}``, ``{"$c": [re, im]}`` complex,
``{"$b": "base64"}`` bytes, ``{"$ba": "base64"}`` bytearray, ``{"$ref": name}`` a name
in the sandboxed program's namespace (host to sandbox only), ``{"$h": [id, type_name]}``
an object that stays in the sample process (a handle; only where the decoder was given a
resolver: trusted tests' proxies, see `trusted.Handle`), ``{"$o": [class_name, attrs]}``
an instance of an ordinary class sent by value (host to sandbox only: a trusted test's
ListNode becomes an instance of the program's own ListNode).

`loads` is the trusted side: it builds only exact builtin types, checks every tag and
raises WireError on anything else. `dumps` coerces subclasses of builtins (namedtuple,
Counter, IntEnum, numpy scalars/arrays via tolist) to their plain base value, so an object
with an overridden ``__eq__`` arrives as the plain value it wraps.

This module is imported inside the sandbox too: standard library only.
"""

from __future__ import annotations

import base64
import json
import math
import sys
import types
from collections import Counter
from typing import Any

MAX_DEPTH = 200
_SAFE_INT = 1 << 53
MAX_COLLISIONS = 64  # distinct values one hash value may stand for in a guarded reply
# with hash randomization off (PYTHONHASHSEED set) str/bytes hashes are predictable too
_PREDICTABLE = (int, float, complex) + (() if sys.flags.hash_randomization else (str, bytes))


class WireError(ValueError):
    """A value cannot be encoded, or received data is not valid tagged JSON."""


class Remote:
    """Base of host-side stand-ins for objects that live in the sandbox (handles); encoded
    as {"$h": [id, ""]} so the sample process gets its own object back."""

    __slots__ = ("_hid",)


class Ref:
    """A reference to a global name of the sandboxed program (for MBPP test_setup_code)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<sandbox object {self.name}>"


def _float(x: float) -> Any:
    if math.isfinite(x):
        return x
    return {"$f": "nan" if x != x else ("inf" if x > 0 else "-inf")}


def _plain(x: Any) -> Any:
    """Coerce a subclass of a builtin (or a numpy value) to its exact base value."""
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int):
        return int.__index__(x)
    if isinstance(x, float):
        return float.__float__(x)
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, tuple):
        return tuple(tuple.__iter__(x))
    if isinstance(x, list):
        return list(list.__iter__(x))
    if isinstance(x, dict):
        return dict(dict.items(x))
    if isinstance(x, frozenset):
        return frozenset(frozenset.__iter__(x))
    if isinstance(x, set):
        return set(set.__iter__(x))
    if isinstance(x, bytes):
        return bytes.__bytes__(x)
    if isinstance(x, complex):
        return complex.__complex__(x)
    if isinstance(x, bytearray):
        return bytearray(memoryview(x))
    mod = getattr(type(x), "__module__", "") or ""
    if mod.split(".")[0] == "numpy" and hasattr(x, "tolist"):
        return x.tolist()
    raise WireError(f"cannot send a value of type {type(x).__module__}.{type(x).__qualname__}")


def _enc(x: Any, depth: int, seen: set[int], handle: Any = None, objects: bool = False) -> Any:
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is int:
        return x if -_SAFE_INT < x < _SAFE_INT else {"$i": hex(x)}
    if t is float:
        return _float(x)
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    if isinstance(x, Ref):  # Ref and its subclasses (the tests' function proxies)
        return {"$ref": x.name}
    if t in (list, tuple, set, frozenset, dict):
        if id(x) in seen:
            raise WireError("cannot send a self-referencing value")
        seen.add(id(x))
        try:
            d = depth + 1
            if t is list:
                return [_enc(v, d, seen, handle, objects) for v in x]
            if t is tuple:
                return {"$t": [_enc(v, d, seen, handle, objects) for v in x]}
            if t is dict:
                if all(type(k) is str for k in x):
                    return {"$d": {k: _enc(v, d, seen, handle, objects) for k, v in x.items()}}
                return {
                    "$D": [
                        [_enc(k, d, seen, handle, objects), _enc(v, d, seen, handle, objects)]
                        for k, v in x.items()
                    ]
                }
            return {("$s" if t is set else "$fs"): [_enc(v, d, seen, handle, objects) for v in x]}
        finally:
            seen.discard(id(x))
    if t is bytes:
        return {"$b": base64.b64encode(x).decode("ascii")}
    if t is bytearray:
        return {"$ba": base64.b64encode(x).decode("ascii")}
    if t is complex:
        return {"$c": [_float(x.real), _float(x.imag)]}
    if isinstance(x, Remote):
        return {"$h": [object.__getattribute__(x, "_hid"), ""]}
    try:
        plain = _plain(x)
    except WireError:
        if handle is not None:
            return handle(x)
        if objects and _is_object(x):
            if id(x) in seen:
                raise WireError("cannot send a self-referencing value") from None
            seen.add(id(x))
            try:
                attrs = _enc(dict(vars(x)), depth + 1, seen, None, True)
            finally:
                seen.discard(id(x))
            return {"$o": [type(x).__name__, attrs]}
        raise
    return _enc(plain, depth + 1, seen, handle, objects)


def _is_object(x: Any) -> bool:
    """An instance of an ordinary class (attributes in __dict__), not a class, module or
    function: sent by value as {"$o": [class name, attributes]} (trusted test objects)."""
    return isinstance(getattr(x, "__dict__", None), dict) and not isinstance(
        x,
        type | types.ModuleType | types.FunctionType | types.MethodType | types.BuiltinFunctionType,
    )


def encode(value: Any, handle: Any = None, objects: bool = False) -> Any:
    """Value -> JSON-compatible tree (raises WireError for unsupported values, or, with
    `handle`, encodes them as handle(value): the sample side's {"$h": [id, type]}; with
    `objects`, instances of ordinary classes go by value as {"$o": [class, attributes]},
    rebuilt in the sandbox as instances of the program's class of that name)."""
    try:
        return _enc(value, 0, set(), handle, objects)
    except RecursionError:
        raise WireError("value nested too deeply") from None


def dumps(value: Any, handle: Any = None) -> bytes:
    """Value -> UTF-8 tagged JSON bytes."""
    return json.dumps(encode(value, handle), separators=(",", ":"), allow_nan=False).encode()


def _num(x: Any) -> float:
    if type(x) in (int, float):
        return float(x)
    if type(x) is dict and len(x) == 1 and "$f" in x and x["$f"] in ("nan", "inf", "-inf"):
        return float(x["$f"])
    raise WireError("bad float")


def check_collisions(values: list[Any]) -> None:
    """Raise WireError when more than MAX_COLLISIONS distinct values share one hash value.

    Building a set or dict of n such values (or `x in s` lookups against one) costs O(n^2):
    an attacker can make ints (k * (2**61 - 1) all hash alike), floats and complex numbers
    collide at will. Counting hash values is linear (equal hashes are equal ints, so the
    Counter's own lookups never chain); only an oversized bucket is examined further, by
    adding its values to a set that is abandoned as soon as it holds more than
    MAX_COLLISIONS of them -- so each insertion probes at most that many entries, and many
    copies of one value (harmless: they are equal) stay linear."""
    if len(values) <= MAX_COLLISIONS:
        return
    try:
        counts = Counter(map(hash, values))
    except TypeError:
        return  # unhashable: the caller's set()/dict() raises as it would anyway
    bad = {h for h, n in counts.items() if n > MAX_COLLISIONS}
    if not bad:
        return
    seen: dict[int, set[Any]] = {h: set() for h in bad}
    for v in values:
        h = hash(v)
        if h in bad:
            group = seen[h]
            group.add(v)
            if len(group) > MAX_COLLISIONS:
                raise WireError(
                    f"value holds more than {MAX_COLLISIONS} distinct elements with one hash "
                    "value (a hash-collision attack on the checker)"
                )


class _Ctx:
    """Decoding context: $ref and $h resolvers, and (guard on) the leaves whose hashes an
    attacker can predict, checked once decoding is done."""

    __slots__ = ("refs", "handles", "leaves")

    def __init__(self, refs: Any, handles: Any, guard: bool) -> None:
        self.refs, self.handles = refs, handles
        self.leaves: list[Any] | None = [] if guard else None


def _dec(x: Any, depth: int, c: _Ctx) -> Any:
    t = type(x)
    if x is None or t is bool:
        return x
    if t is int or t is float or t is str:
        if c.leaves is not None and t in _PREDICTABLE:
            c.leaves.append(x)
        return x
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    d = depth + 1
    if t is list:
        return [_dec(v, d, c) for v in x]
    if t is not dict or len(x) != 1:
        raise WireError("malformed value")
    ((tag, v),) = x.items()
    tv = type(v)
    if tag == "$t" and tv is list:
        return tuple([_dec(e, d, c) for e in v])
    if tag == "$d" and tv is dict:
        return {k: _dec(e, d, c) for k, e in v.items()}
    if tag == "$D" and tv is list:
        if not all(type(p) is list and len(p) == 2 for p in v):
            raise WireError("malformed dict")
        pairs = [(_dec(k, d, c), _dec(e, d, c)) for k, e in v]
        if c.leaves is not None:
            check_collisions([k for k, _ in pairs])
        return dict(pairs)
    if tag in ("$s", "$fs") and tv is list:
        items = [_dec(e, d, c) for e in v]
        if c.leaves is not None:
            check_collisions(items)
        return set(items) if tag == "$s" else frozenset(items)
    if tag == "$i" and tv is str and len(v) < 100_000:
        n = int(v, 16)
        if c.leaves is not None:
            c.leaves.append(n)
        return n
    if tag == "$f" and tv is str:
        return _num(x)
    if tag == "$c" and tv is list and len(v) == 2:
        z = complex(_num(v[0]), _num(v[1]))
        if c.leaves is not None:
            c.leaves.append(z)
        return z
    if tag in ("$b", "$ba") and tv is str:
        raw = base64.b64decode(v.encode("ascii"), validate=True)
        return raw if tag == "$b" else bytearray(raw)
    if tag == "$ref" and tv is str and c.refs is not None:
        return c.refs(v)
    if (
        tag == "$o"
        and c.refs is not None
        and tv is list
        and len(v) == 2
        and type(v[0]) is str
        and type(v[1]) is dict
    ):
        attrs = _dec(v[1], d, c)
        if type(attrs) is not dict:
            raise WireError("malformed object")
        cls = c.refs(v[0])
        if not isinstance(cls, type):
            raise WireError(f"{v[0]!r} is not a class of the program")
        obj = cls.__new__(cls)
        obj.__dict__.update(attrs)
        return obj
    if (
        tag == "$h"
        and c.handles is not None
        and tv is list
        and len(v) == 2
        and type(v[0]) is int
        and type(v[1]) is str
    ):
        return c.handles(v[0], v[1][:200])
    raise WireError(f"unknown or malformed tag {str(tag)[:20]!r}")


def decode(tree: Any, refs: Any = None, guard: bool = False, handles: Any = None) -> Any:
    """JSON tree -> value of exact builtin types. `refs(name)` resolves {"$ref": name};
    `handles(id, type_name)` resolves {"$h": [id, type_name]} (an object that stays in the
    sandbox, see `Remote`); without a resolver those tags are malformed.

    guard=True (the host decoding a sample's reply): refuse values holding more than
    MAX_COLLISIONS distinct hash-colliding elements anywhere (see `check_collisions`), so
    neither decoding nor trusted code that puts the value in a set or dict costs the host
    quadratic time; decoding is then linear in the reply's size."""
    try:
        c = _Ctx(refs, handles, guard)
        value = _dec(tree, 0, c)
        if c.leaves is not None:
            check_collisions(c.leaves)
        return value
    except WireError:
        raise
    except (TypeError, ValueError, RecursionError, UnicodeError) as e:  # unhashable key, bad b64
        raise WireError(f"malformed value: {type(e).__name__}") from None


def _pairs_checked(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    check_collisions([k for k, _ in pairs])
    return dict(pairs)


def parse_json(data: bytes | str) -> Any:
    """json.loads for untrusted replies: with hash randomization off (PYTHONHASHSEED set),
    JSON objects with many colliding keys are refused (WireError) before a dict is built."""
    if sys.flags.hash_randomization:
        return json.loads(data)
    return json.loads(data, object_pairs_hook=_pairs_checked)


def loads(
    data: bytes | str, refs: Any = None, max_bytes: int | None = None, guard: bool = True
) -> Any:
    """Tagged JSON bytes -> value (strict; raises WireError; hash-collision guard on)."""
    if max_bytes is not None and len(data) > max_bytes:
        raise WireError(f"value too large ({len(data)} bytes > {max_bytes})")
    try:
        tree = parse_json(data) if guard else json.loads(data)
    except (ValueError, RecursionError) as e:
        raise WireError(f"not JSON: {type(e).__name__}") from None
    return decode(tree, refs, guard)
