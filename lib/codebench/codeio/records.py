"""Record schemas, stable ids and canonical JSON for the CodeI/O stages.

Every record carries ids derived from content, never from a line number:

- function id `fid`: ``"f" + sha256(funcname NUL normalized refcode)[:16]``; two records with
  the same code are the same function (the second is dropped as a duplicate);
- pair index `idx`: position of an I/O pair among the function's kept pairs (generation is
  seeded, so the same code and parameters give the same pairs);
- sample id: ``"{fid}:{idx}:{direction}"`` with direction ``output`` (predict the output from
  the input) or ``input`` (predict a feasible input from the output).

Values crossing a stage boundary are *plain JSON*: None, bool, int, finite float, str, lists,
and dicts with string keys. `to_plain` converts what a function returns (tuples become lists,
like `json.dumps` would) and rejects everything else with a reason.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Literal

Direction = Literal["output", "input"]
DIRECTIONS: tuple[str, ...] = ("output", "input")

# Function-level drop reasons (ios.jsonl `reason`, result file `drop_reasons`).
DROP_REASONS: tuple[str, ...] = (
    "duplicate",  # same code as an earlier function
    "contaminated",  # n-gram overlap with an evaluation set
    "load-error",  # the program does not import/define the function
    "non-deterministic",  # a second run (other seeds, reversed order) gives other outputs
    "mutates-input",  # the call changes its arguments in place
    "irreproducible",  # stored pairs that a deterministic run does not reproduce
    "exception",  # every call raised
    "timeout",  # calls exceeded the per-call time limit
    "not-serializable",  # outputs are not plain JSON (sets, objects, NaN, ...)
    "too-large",  # inputs or outputs over the size limits
    "constant-output",  # the same output for every input
    "too-few-pairs",  # fewer distinct pairs than the minimum
    "sandbox-error",  # the sandbox itself failed (crash, out of memory)
)

# Verification statuses (verified.jsonl `status`).
STATUSES: tuple[str, ...] = (
    "success",
    "wrong",
    "no-answer",
    "exception",
    "timeout",
    "truncated",
    "sandbox-error",  # the sandbox failed, not the prediction: rerun on resume, never final
)


class NotPlain(ValueError):
    """A value is not plain JSON; the message says what and where."""


def to_plain(value: Any, path: str = "$", *, _depth: int = 0) -> Any:
    """Return `value` as plain JSON (tuples -> lists) or raise NotPlain naming the bad part."""
    if _depth > 64:
        raise NotPlain(f"{path}: nested deeper than 64 levels")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotPlain(f"{path}: non-finite float {value!r}")
        return float(value)
    if isinstance(value, list | tuple):
        return [to_plain(v, f"{path}[{i}]", _depth=_depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise NotPlain(f"{path}: dict key {k!r} is not a string")
            out[k] = to_plain(v, f"{path}.{k}", _depth=_depth + 1)
        return out
    raise NotPlain(f"{path}: {type(value).__name__} is not JSON")


def canonical(value: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, no NaN; equal values give equal text."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def render(value: Any) -> str:
    """JSON as shown to a model (compact, keys in their own order, non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def normalize_code(code: str) -> str:
    """Line endings unified, trailing blanks stripped: cosmetic edits keep the same id."""
    lines = code.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n") + "\n"


def function_id(refcode: str, funcname: str = "main_solution") -> str:
    """Stable function id from the code's content."""
    h = hashlib.sha256(f"{funcname}\0{normalize_code(refcode)}".encode()).hexdigest()
    return "f" + h[:16]


def sample_id(fid: str, idx: int, direction: str) -> str:
    """Stable id of one prediction sample: function, pair index, direction."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return f"{fid}:{idx}:{direction}"


def parse_sample_id(sid: str) -> tuple[str, int, str]:
    """Inverse of `sample_id`."""
    fid, idx, direction = sid.split(":")
    return fid, int(idx), direction


def stable_fraction(key: str, salt: str = "") -> float:
    """A number in [0, 1) fixed by `key` (for seeded splits that do not depend on order)."""
    h = hashlib.sha256(f"{salt}\0{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def unified_record(
    *,
    refcode: str,
    funcname: str = "main_solution",
    problem: str,
    io_requirements: str,
    origin: dict,
    input_generator: str | None = None,
    input_spec: dict | None = None,
    ios: list[dict] | None = None,
) -> dict:
    """A unified function record (one line of unified.jsonl).

    `input_spec` (a type spec from `annotate`) or `input_generator` (code run in the sandbox)
    supply fresh inputs; `ios` holds stored pairs from an already-unified source.
    """
    return {
        "fid": function_id(refcode, funcname),
        "funcname": funcname,
        "problem": problem,
        "io_requirements": io_requirements,
        "refcode": refcode,
        "input_generator": input_generator,
        "input_spec": input_spec,
        "ios": ios or [],
        "origin": origin,
    }
