"""Answer extraction and tolerant comparison of predicted values.

Extraction (`extract_answer(text, key)`), first rule that yields a JSON object holding `key`:

1. ``fenced``   the last fenced block (```json ...``` or plain ```...```) that parses as JSON;
2. ``balanced`` the last balanced ``{...}`` in the text that parses as JSON (strings and
   nesting respected, so prose braces before it do not matter);
3. ``literal``  the same spans read as a Python literal (True/False/None, single quotes,
   tuples), as models trained on Python often write them;
4. ``boxed``    the content of the last ``\\boxed{...}`` read by rules 2-3.

An object without `key` is not an answer (a bare input dict is ambiguous with the answer
wrapper). Nothing found gives ``Extraction(found=False, reason=...)``; the reason says whether
an object was unterminated (typical of an answer cut off by the token limit).

Comparison (`values_match(pred, target)`), recursive:

- bool is its own type: ``True`` never equals ``1``;
- numbers (int/float, not bool): ints against ints exactly; if either is a float,
  ``|p - t| <= max(abs_tol, rel_tol * |t|)`` (defaults 1e-6 absolute, 1e-3 relative, the
  reference's relative tolerance); NaN matches only NaN, an infinity only the same infinity;
- str and None exactly; lists element-wise with equal length; dicts with equal key sets.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from codebench.codeio.records import NotPlain, to_plain

REL_TOL = 1e-3
ABS_TOL = 1e-6
MAX_SCAN_CHARS = 32_000  # answers are read from the end of the text; longer text is cut
MAX_CANDIDATES = 200  # brace positions tried per text (hostile '{{{{...' stays cheap)
MAX_SPAN = 16_000  # longest answer object considered


@dataclass
class Extraction:
    """What `extract_answer` found: the value, the rule that found it, or why nothing was."""

    found: bool
    value: Any = None
    method: str | None = None
    reason: str | None = None


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)```", re.S)
_BOXED = "\\boxed{"


def _fenced(text: str, key: str) -> Any:
    blocks = _FENCE.findall(text)
    for lang, body in reversed(blocks):
        if lang.lower() not in ("", "json", "javascript", "js", "python", "py"):
            continue
        for parse in (json.loads, _literal):
            try:
                obj = parse(body.strip())
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(obj, dict) and key in obj:
                return obj
    return None


def _literal(s: str) -> Any:
    obj = ast.literal_eval(s)
    return to_plain(obj)


def _spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every '{...}' span that closes, found by JSON- and Python-aware scanning
    from each '{' (the last MAX_CANDIDATES ones)."""
    starts = [m.start() for m in re.finditer(r"\{", text)][-MAX_CANDIDATES:]
    out = []
    for s in starts:
        end = _match_brace(text, s)
        if end is not None:
            out.append((s, end))
    return out


def _match_brace(text: str, start: int) -> int | None:
    depth = 0
    quote: str | None = None
    i = start
    n = min(len(text), start + MAX_SPAN)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1 if c == "}" else None
            if depth < 0:
                return None
        i += 1
    return None


def _balanced(text: str, key: str, lenient: bool) -> Any:
    # the answer is the object that ends last; among those, the outermost
    spans = sorted(_spans(text), key=lambda se: (se[1], -(se[1] - se[0])), reverse=True)
    for s, e in spans:
        chunk = text[s:e]
        try:
            obj = _literal(chunk) if lenient else json.loads(chunk)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, NotPlain):
            continue
        if isinstance(obj, dict) and key in obj:
            return obj
    return None


def extract_answer(text: str, key: str = "output") -> Extraction:
    """Find the model's final ``{"<key>": ...}`` answer in `text` (rules in the module doc)."""
    if not isinstance(text, str) or not text.strip():
        return Extraction(False, reason="empty response")
    text = text[-MAX_SCAN_CHARS:]
    obj = _fenced(text, key)
    if obj is not None:
        return _found(obj, key, "fenced")
    for lenient, method in ((False, "balanced"), (True, "literal")):
        obj = _balanced(text, key, lenient)
        if obj is not None:
            return _found(obj, key, method)
    if _BOXED in text:
        inner = text[text.rfind(_BOXED) + len(_BOXED) :]
        inner = inner.replace("\\{", "{").replace("\\}", "}")
        for lenient in (False, True):
            obj = _balanced(inner, key, lenient)
            if obj is not None:
                return _found(obj, key, "boxed")
    return Extraction(False, reason=_why_not(text, key))


def _found(obj: dict, key: str, method: str) -> Extraction:
    try:
        value = to_plain(obj[key])
    except NotPlain as e:
        return Extraction(False, reason=f"answer is not plain JSON: {e}")
    return Extraction(True, value=value, method=method)


def _why_not(text: str, key: str) -> str:
    q = f'"{key}"'
    if q in text or f"'{key}'" in text:
        pos = max(text.rfind(q), text.rfind(f"'{key}'"))
        if _match_brace(text, max(text.rfind("{", 0, pos), 0)) is None:
            return f"unterminated object with key {q} (answer cut off?)"
        return f"object with key {q} does not parse as JSON or a Python literal"
    if "{" in text:
        return f"no JSON object with key {q}"
    return "no JSON object in the response"


# --------------------------------------------------------------------------- comparison
def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def numbers_match(p: float, t: float, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL) -> bool:
    """Numeric comparison with the documented tolerance (ints against ints exactly)."""
    if isinstance(p, int) and isinstance(t, int):
        return p == t
    p, t = float(p), float(t)
    if math.isnan(p) or math.isnan(t):
        return math.isnan(p) and math.isnan(t)
    if math.isinf(p) or math.isinf(t):
        return p == t
    return abs(p - t) <= max(abs_tol, rel_tol * abs(t))


def values_match(
    pred: Any, target: Any, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL, _depth: int = 0
) -> bool:
    """True when `pred` equals `target` up to the numeric tolerance (rules in the module doc)."""
    if _depth > 200:
        return False
    if isinstance(pred, bool) or isinstance(target, bool):
        return isinstance(pred, bool) and isinstance(target, bool) and pred == target
    if _is_number(pred) and _is_number(target):
        try:
            return numbers_match(pred, target, rel_tol, abs_tol)
        except OverflowError:
            return False
    if isinstance(pred, list | tuple) and isinstance(target, list | tuple):
        return len(pred) == len(target) and all(
            values_match(p, t, rel_tol, abs_tol, _depth + 1)
            for p, t in zip(pred, target, strict=True)
        )
    if isinstance(pred, dict) and isinstance(target, dict):
        return pred.keys() == target.keys() and all(
            values_match(pred[k], target[k], rel_tol, abs_tol, _depth + 1) for k in pred
        )
    if type(pred) is not type(target):
        return False
    return pred == target


# --------------------------------------------------------------------------- verification
@dataclass
class VerifyConfig:
    """Tolerances and limits of verification."""

    rel_tol: float = REL_TOL
    abs_tol: float = ABS_TOL
    call_timeout: float = 2.0  # seconds to run the function on a predicted input
    max_input_chars: int = 1024  # a predicted input larger than this is wrong, not run


def _base(prompt: dict, pred: dict) -> dict:
    return {
        "id": prompt["id"],
        "fid": prompt["fid"],
        "idx": prompt["idx"],
        "direction": prompt["direction"],
        "turn": pred.get("turn", 1),
        "truncated": bool(pred.get("truncated")),
        "finish_reason": pred.get("finish_reason"),
    }


def judge_text(prompt: dict, pred: dict, cfg: VerifyConfig) -> tuple[dict, Any]:
    """First half of verification: extraction, and for output prediction the comparison.

    Returns the verification record (status None when an input still has to be run) and the
    extracted value.
    """
    rec = _base(prompt, pred)
    if pred.get("finish_reason") == "error":
        rec.update(
            status="no-answer", reason=f"generation error: {pred.get('error') or 'unknown'}"[:300]
        )
        return rec, None
    key = prompt["direction"]
    ex = extract_answer(pred.get("text", ""), key)
    if not ex.found:
        status = "truncated" if pred.get("finish_reason") == "length" else "no-answer"
        rec.update(status=status, reason=ex.reason)
        return rec, None
    rec.update(answer=ex.value, method=ex.method)
    if key == "output":
        ok = values_match(ex.value, prompt["output"], cfg.rel_tol, cfg.abs_tol)
        rec.update(
            status="success" if ok else "wrong",
            reason=None if ok else "output differs from the executed output",
        )
        return rec, ex.value
    problem = _input_problem(ex.value, prompt["input"], cfg)
    if problem:
        rec.update(status="wrong", reason=problem)
    elif _canon(ex.value) == _canon(prompt["input"]):
        rec.update(status="success", reason=None, actual_output=prompt["output"])  # the known input
    else:
        rec["status"] = None  # to run in the sandbox
    return rec, ex.value


def _canon(v: Any) -> str:
    from codebench.codeio.records import canonical

    return canonical(v)


def _input_problem(value: Any, reference: dict, cfg: VerifyConfig) -> str | None:
    if not isinstance(value, dict):
        return f"predicted input is a {type(value).__name__}, not an object of arguments"
    if set(value) != set(reference):
        return f"predicted input has keys {sorted(value)}, the function takes {sorted(reference)}"
    if len(_canon(value)) > cfg.max_input_chars:
        return "predicted input is larger than the input size limit"
    return None


def verify_batch(
    pairs: list[tuple[dict, dict]],
    unified_by_fid: dict[str, dict],
    executor: Any,
    cfg: VerifyConfig,
) -> list[dict]:
    """Verification records for (prompt, prediction) pairs; predicted inputs run in the sandbox.

    Input predictions of one function go to the sandbox as one call job (fresh argument copy
    per call, per-call timeout); the output they produce must match the expected output.
    """
    from codebench.codeio import execute

    recs: list[dict] = []
    to_run: dict[str, list[tuple[int, dict, Any]]] = {}
    for prompt, pred in pairs:
        rec, value = judge_text(prompt, pred, cfg)
        if rec["status"] is None:
            to_run.setdefault(prompt["fid"], []).append((len(recs), prompt, value))
        recs.append(rec)
    fids = list(to_run)
    jobs = [
        execute.probe_job(
            unified_by_fid[f], [(0, v) for _, _, v in to_run[f]], cfg.call_timeout, 1 << 18
        )
        for f in fids
    ]
    results = executor.map(jobs) if jobs else []
    for fid, res in zip(fids, results, strict=True):
        items = to_run[fid]
        vals = (
            res.values
            if res.values is not None and len(res.values) == len(items)
            else [None] * len(items)
        )
        for (pos, prompt, _), v in zip(items, vals, strict=True):
            recs[pos].update(_judge_run(prompt, v, res, cfg))
    return recs


def _judge_run(prompt: dict, v: Any, job: Any, cfg: VerifyConfig) -> dict:
    iso = {"isolation": getattr(job, "isolation", None)}
    if str(getattr(job, "outcome", "")) == "sandbox-error" or (
        v is not None and str(v.outcome) == "sandbox-error"
    ):  # our failure, not the prediction's: not a verdict (rerun on resume)
        return {"status": "sandbox-error", "reason": str(job.detail)[:300], **iso}
    if v is None:
        return {
            "status": "exception",
            "reason": f"program failed to load: {job.detail}"[:300],
            **iso,
        }
    return {**_judge_value(prompt, v, cfg), **iso}


def _judge_value(prompt: dict, v: Any, cfg: VerifyConfig) -> dict:
    from codebench.codeio.execute import call_reason

    if not v.ok:
        why = call_reason(v.outcome, v.error)
        status = "timeout" if why == "timeout" else "exception"
        return {"status": status, "reason": (v.error or str(v.outcome))[:300]}
    try:
        out = to_plain(v.value[0])
    except NotPlain as e:
        return {
            "status": "wrong",
            "reason": f"the predicted input gives a non-JSON output: {e}"[:300],
        }
    ok = values_match(out, prompt["output"], cfg.rel_tol, cfg.abs_tol)
    return {
        "status": "success" if ok else "wrong",
        "reason": None if ok else "the predicted input gives another output",
        "actual_output": out,
    }


def verify_heldout(
    records: list[dict], texts: list[str], executor: Any, finish_reasons: list[str] | None = None
) -> list[dict]:
    """Verify one model answer per heldout.jsonl record (the I/O-prediction benchmark).

    `texts[i]` answers `records[i]` (repeat a record for several samples); `finish_reasons[i]`
    ('stop' | 'length' | 'error') marks truncated answers. Input predictions run in `executor`
    (a `codebench.sandbox.Sandbox`). Returns verification records in order (status, reason,
    answer, ...), exactly as the data pipeline verifies its own predictions.
    """
    if len(texts) != len(records):
        raise ValueError(f"{len(texts)} answers for {len(records)} records")
    reasons = finish_reasons or ["stop"] * len(records)
    pairs, unified = [], {}
    for rec, text, fr in zip(records, texts, reasons, strict=True):
        prompt = {k: rec[k] for k in ("id", "fid", "idx", "direction", "input", "output")}
        pairs.append((prompt, {"text": text, "finish_reason": fr, "truncated": fr == "length"}))
        unified[rec["fid"]] = {
            "fid": rec["fid"],
            "refcode": rec["refcode"],
            "funcname": rec.get("funcname", "main_solution"),
        }
    cfg = (
        VerifyConfig(**records[0]["verify"])
        if records and records[0].get("verify")
        else VerifyConfig()
    )
    return verify_batch(pairs, unified, executor, cfg)
