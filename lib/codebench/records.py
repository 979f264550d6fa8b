"""Append-only JSONL records keyed by stable ids, and atomic JSON writes.

Long stages (generation, verification, scoring) append one record per unit of work and
flush it to disk, so a killed run resumes where it stopped without losing or duplicating
records. A torn last line (the process died mid-write) is cut off on reopen; a broken line
anywhere else is an error naming the file and line number.

Every write is checked: a short write is completed, and a failed one (disk full, read-only
file system) leaves the file as it was (the old records, never a torn line) and raises one
`RecordWriteError` line naming the file. Records are written as ASCII JSON, so any string a
model produces (lone surrogates, NULs, any size) is stored and read back unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any


class RecordError(ValueError):
    """A JSONL file has a malformed line; the message names file and line."""


class RecordWriteError(OSError):
    """A write failed (disk full, read-only, ...); the file keeps its previous content."""

    def __str__(self) -> str:  # one line naming the file, without the "[Errno N]" prefix
        return str(self.strerror)


def dumps_record(record: Any) -> bytes:
    """One JSONL line: ASCII JSON (lone surrogates and NULs escaped), newline-terminated."""
    return (json.dumps(record, ensure_ascii=True, default=str) + "\n").encode("ascii")


def write_error(path: Path, e: OSError, what: str = "cannot write") -> RecordWriteError:
    reason = e.strerror or (errno.errorcode.get(e.errno or 0) if e.errno else None) or str(e)
    return RecordWriteError(e.errno or errno.EIO, f"{path}: {what}: {reason}")


def write_all(fd: int, data: bytes, path: str | os.PathLike) -> None:
    """Write every byte of `data` to `fd` (completing short writes) or raise RecordWriteError."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError as e:
            raise write_error(Path(path), e) from None
        if n <= 0:
            raise write_error(Path(path), OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        view = view[n:]


def read_jsonl(
    path: str | os.PathLike, *, skip_bad: bool = False, errors: list[str] | None = None
) -> Iterator[dict]:
    """Yield each JSON object of a JSONL file (gzip-compressed when it ends in .gz).

    A malformed line (bad JSON, not an object, not UTF-8) raises RecordError("file:line:
    reason"), or with `skip_bad` is skipped and its reason appended to `errors`. Blank lines
    are ignored. A directory or unreadable file raises RecordError naming it.
    """
    p = Path(path)
    try:
        fh = gzip.open(p, "rb") if p.suffix == ".gz" else p.open("rb")  # noqa: SIM115 - with below
    except IsADirectoryError:
        raise RecordError(f"{p}: is a directory, expected a JSONL file") from None
    with fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                msg = f"{p}:{lineno}: not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})"
                if not skip_bad:
                    raise RecordError(msg) from None
                if errors is not None:
                    errors.append(msg)
                continue
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


def write_dir_atomic(dest: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Run `write(tmp)` into a temp folder beside `dest`, then swap it in with renames.

    A run killed mid-save leaves the previous folder (or nothing), never half a folder. The one
    home for saving a model or variant folder (`_atomic_write` is its single-file sibling).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        write(tmp)
        old = None
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _atomic_write(p: Path, chunks: Iterable[bytes]) -> None:
    """Write `chunks` to a temporary file beside `p`, fsync, rename over `p`.

    On any failure the temporary file is removed, `p` keeps its old content, and one
    RecordWriteError line naming `p` is raised.
    """
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    except OSError as e:
        raise write_error(p, e) from None
    tmp = Path(name)
    os.fchmod(fd, 0o644)
    try:
        try:
            for chunk in chunks:
                write_all(fd, chunk, p)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
    except RecordWriteError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise write_error(p, e) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records atomically (temp file + rename); return how many were written."""
    n = 0

    def lines() -> Iterator[bytes]:
        nonlocal n
        for r in records:
            n += 1
            yield dumps_record(r)

    _atomic_write(Path(path), lines())
    return n


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically so a reader never sees a half-written file."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str, ensure_ascii=True) + "\n"
    _atomic_write(Path(path), [text.encode("ascii")])


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
    `has(key)` tells which units of work are already done. Appends take an exclusive lock on
    the file and first read what other writers appended, so a key is never stored twice even
    when two processes write one store. A file that already holds duplicate keys (written by
    an older version) is rewritten with the first record of each key, with one warning.
    """

    def __init__(self, path: str | os.PathLike, key: Callable[[dict], Any] | str | Iterable[str]):
        self.path = Path(path)
        if isinstance(key, str):
            key = (key,)
        if not callable(key):
            fields = tuple(key)
            key = lambda r: tuple(r.get(f) for f in fields)  # noqa: E731
        self._key = key
        self.records: dict[Any, dict] = {}
        self._fd = -1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except RecordWriteError:
            raise
        except OSError as e:
            raise write_error(self.path, e, "cannot open for appending") from None
        with self._locked():
            _repair_tail(self.path)
            dups = self._read_new()
            if dups:
                self._rewrite_deduplicated(dups)

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._ino = os.fstat(self._fd).st_ino
        self._offset = 0
        self._lines = 0

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            try:  # another writer may have replaced the file (deduplication): follow it
                if os.stat(self.path).st_ino != self._ino:
                    os.close(self._fd)
                    self.records.clear()
                    self._open()
                    fcntl.flock(self._fd, fcntl.LOCK_EX)
            except FileNotFoundError:
                pass
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _read_new(self) -> list[int]:
        """Load complete records appended since our last read; return duplicate line numbers."""
        size = os.fstat(self._fd).st_size
        if size <= self._offset:
            return []
        data = os.pread(self._fd, size - self._offset, self._offset)
        cut = data.rfind(b"\n") + 1
        first_line = self._lines
        dups = []
        for i, raw in enumerate(data[:cut].splitlines(), first_line + 1):
            if not raw.strip():
                continue
            try:
                r = json.loads(raw)
                if not isinstance(r, dict):
                    raise ValueError(f"expected a JSON object, got {type(r).__name__}")
            except ValueError as e:
                raise RecordError(f"{self.path}:{i}: malformed JSONL line: {e}") from None
            k = self._key(r)
            if k in self.records:
                dups.append(i)
            else:
                self.records[k] = r
        self._lines = first_line + data[:cut].count(b"\n")
        self._offset += cut
        return dups

    def _rewrite_deduplicated(self, dups: list[int]) -> None:
        warnings.warn(
            f"{self.path}: {len(dups)} duplicate record(s) (first at line {dups[0]}) dropped; "
            "kept the first record of each key",
            stacklevel=3,
        )
        _atomic_write(self.path, (dumps_record(r) for r in self.records.values()))
        os.close(self._fd)
        self._open()
        self._offset = os.fstat(self._fd).st_size
        self._lines = len(self.records)

    def has(self, key: Any) -> bool:
        return key in self.records

    def key_of(self, record: dict) -> Any:
        return self._key(record)

    def append(self, record: dict, *, sync: bool = True) -> bool:
        """Append one record and flush it to disk; return False if its key is already stored.

        A failed write leaves the file as it was and raises RecordWriteError naming it.
        """
        return self._append_many([record], sync=sync) == 1

    def extend(self, records: Iterable[dict]) -> int:
        """Append many records with one lock and one fsync; return how many were new."""
        return self._append_many(list(records), sync=True)

    def _append_many(self, records: list[dict], *, sync: bool) -> int:
        if not records:
            return 0
        with self._locked():
            self._read_new()
            new: dict[Any, dict] = {}
            for r in records:
                k = self._key(r)
                if k not in self.records and k not in new:
                    new[k] = r
            if not new:
                return 0
            data = b"".join(dumps_record(r) for r in new.values())
            start = os.fstat(self._fd).st_size
            try:
                write_all(self._fd, data, self.path)
                if sync:
                    os.fsync(self._fd)
            except (RecordWriteError, OSError) as e:
                with contextlib.suppress(OSError):  # keep the old records, never a torn line
                    os.ftruncate(self._fd, start)
                if isinstance(e, RecordWriteError):
                    raise
                raise write_error(self.path, e) from None
            self.records.update(new)
            self._offset = start + len(data)
            self._lines += len(new)
            return len(new)

    def replace(self, records: Iterable[dict]) -> int:
        """Store `records`, replacing the stored record of each key that is already there
        (new keys are added); return how many records were written.

        Used to redo units whose stored result was not final (e.g. a sandbox error, our
        failure rather than the sample's). The file is rewritten atomically under the lock
        (a crash leaves either the old or the new file, never a torn one).
        """
        records = list(records)
        if not records:
            return 0
        with self._locked():
            self._read_new()
            merged = dict(self.records)
            for r in records:
                merged[self._key(r)] = r
            _atomic_write(self.path, (dumps_record(r) for r in merged.values()))
            os.close(self._fd)
            self._open()
            self._offset = os.fstat(self._fd).st_size
            self._lines = len(merged)
            self.records = merged
        return len(records)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.records.values())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __enter__(self) -> JsonlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
