"""Append-only JSONL records keyed by stable ids, and atomic JSON writes.

Long stages (generation, verification, scoring) append one record per unit of work and
flush it to disk, so a killed run resumes where it stopped without losing or duplicating
records. A torn last line (the process died mid-write) is cut off on reopen; a broken line
anywhere else is an error naming the file and line number.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any


class RecordError(ValueError):
    """A JSONL file has a malformed line; the message names file and line."""


def read_jsonl(
    path: str | os.PathLike, *, skip_bad: bool = False, errors: list[str] | None = None
) -> Iterator[dict]:
    """Yield each JSON object of a JSONL file.

    A malformed line raises RecordError("file:line: reason"), or with `skip_bad` is skipped
    and its reason appended to `errors`. Blank lines are ignored.
    """
    p = Path(path)
    with p.open("r", encoding="utf-8", errors="strict") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            except ValueError as e:
                msg = f"{p}:{lineno}: malformed JSONL line: {e}"
                if not skip_bad:
                    raise RecordError(msg) from None
                if errors is not None:
                    errors.append(msg)
                continue
            yield obj


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records atomically (temp file + rename); return how many were written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with tempfile.NamedTemporaryFile(
        "w", dir=p.parent, delete=False, suffix=".tmp", encoding="utf-8"
    ) as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(fh.name, p)
    return n


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically so a reader never sees a half-written file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=p.parent, delete=False, suffix=".tmp", encoding="utf-8"
    ) as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(fh.name, p)


def _repair_tail(p: Path) -> None:
    """Cut a torn final line (no trailing newline) left by a killed writer."""
    if not p.exists() or p.stat().st_size == 0:
        return
    with p.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        data = p.read_bytes()
        cut = data.rfind(b"\n") + 1
        fh.truncate(cut)


class JsonlStore:
    """An append-only JSONL file of records keyed by `key(record)`.

    Reopening after a crash keeps every complete record, drops a torn last line, and
    `has(key)` tells which units of work are already done.
    """

    def __init__(self, path: str | os.PathLike, key: Callable[[dict], Any] | str | Iterable[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(key, str):
            key = (key,)
        if not callable(key):
            fields = tuple(key)
            key = lambda r: tuple(r.get(f) for f in fields)  # noqa: E731
        self._key = key
        _repair_tail(self.path)
        self.records: dict[Any, dict] = {}
        if self.path.exists():
            for r in read_jsonl(self.path):
                self.records[self._key(r)] = r
        self._fh = self.path.open("a", encoding="utf-8")

    def has(self, key: Any) -> bool:
        return key in self.records

    def key_of(self, record: dict) -> Any:
        return self._key(record)

    def append(self, record: dict, *, sync: bool = True) -> None:
        """Append one record (ignored if its key is already stored) and flush it to disk."""
        k = self._key(record)
        if k in self.records:
            return
        self._fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())
        self.records[k] = record

    def extend(self, records: Iterable[dict]) -> None:
        """Append many records with one fsync."""
        for r in records:
            self.append(r, sync=False)
        os.fsync(self._fh.fileno())

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.records.values())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> JsonlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
