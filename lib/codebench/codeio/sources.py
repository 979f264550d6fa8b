"""Where source code comes from: the CodeI/O demo files, a JSONL, a folder, the stdlib.

Each source yields `SourceItem`s with a stable key (blob id, record content hash or file
path; never a line number, except to name a line that is not JSON at all).

Source names:
  ``codeio-demo``  data_dir/codeio/rawcode_1k_parsed.jsonl (already unified, with stored I/O)
  ``codeio-raw``   data_dir/codeio/rawcode_1k.jsonl (raw Python files)
  ``stdlib``       this interpreter's standard library (.py files, sorted by path)
  a path           a .jsonl (unified records if they have ``refcode``, else raw with
                   ``content``/``code``/``text``) or a folder of .py files (sorted by path)
"""

from __future__ import annotations

import hashlib
import json
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEMO_UNIFIED = "codeio/rawcode_1k_parsed.jsonl"
DEMO_RAW = "codeio/rawcode_1k.jsonl"


@dataclass
class SourceItem:
    """One source record: `kind` is 'unified', 'raw' or 'malformed' (then `error` says why)."""

    key: str
    kind: str
    payload: Any
    source: str
    error: str | None = None


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _from_jsonl(path: Path, name: str) -> Iterator[SourceItem]:
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                yield SourceItem(
                    f"{path.name}:{lineno}", "malformed", line[:200], name, f"line is not JSON: {e}"
                )
                continue
            yield _classify(rec, name, line)


def _classify(rec: Any, name: str, line: str) -> SourceItem:
    if not isinstance(rec, dict):
        return SourceItem(
            _hash(line), "malformed", rec, name, f"expected a JSON object, got {type(rec).__name__}"
        )
    if "refcode" in rec:
        if not isinstance(rec.get("refcode"), str):
            return SourceItem(_hash(line), "malformed", rec, name, "'refcode' is not a string")
        return SourceItem(_hash(rec["refcode"]), "unified", rec, name)
    for field in ("content", "code", "text"):
        if isinstance(rec.get(field), str):
            key = rec.get("blob_id") or _hash(rec[field])
            return SourceItem(str(key), "raw", {"content": rec[field], "meta": _meta(rec)}, name)
    return SourceItem(
        _hash(line),
        "malformed",
        rec,
        name,
        "no 'refcode', 'content', 'code' or 'text' string field",
    )


def _meta(rec: dict) -> dict:
    return {k: rec[k] for k in ("blob_id", "repo_name", "path") if k in rec}


def _from_folder(folder: Path, name: str) -> Iterator[SourceItem]:
    for f in sorted(folder.rglob("*.py")):
        if any(
            part in ("test", "tests", "idlelib", "site-packages", "__pycache__") for part in f.parts
        ):
            continue
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            yield SourceItem(str(f), "malformed", None, name, f"unreadable: {e}")
            continue
        rel = str(f.relative_to(folder))
        yield SourceItem(rel, "raw", {"content": text, "meta": {"path": rel}}, name)


def iter_source(spec: str, data_dir: Path | None) -> Iterator[SourceItem]:
    """Yield the records of one source (names in the module doc)."""
    if spec == "codeio-demo":
        return _from_jsonl(_data(data_dir) / DEMO_UNIFIED, spec)
    if spec == "codeio-raw":
        return _from_jsonl(_data(data_dir) / DEMO_RAW, spec)
    if spec == "stdlib":
        return _from_folder(Path(sysconfig.get_paths()["stdlib"]), spec)
    p = Path(spec).expanduser()
    if p.is_dir():
        return _from_folder(p, spec)
    if p.is_file():
        return _from_jsonl(p, spec)
    raise FileNotFoundError(
        f"data.sources: {spec!r} is not a known source name, a .jsonl file or a folder"
    )


def _data(data_dir: Path | None) -> Path:
    from codebench.paths import data_dir as resolve

    return resolve(data_dir)
