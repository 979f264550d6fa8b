"""Append-only records survive kill -9; broken lines are named by file and line."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codebench.records import (
    JsonlStore,
    RecordError,
    RecordWriteError,
    read_jsonl,
    write_json,
    write_jsonl,
)


def test_read_jsonl_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_text('{"a": 1}\n\n{"a": 2\n[1, 2]\n')
    with pytest.raises(RecordError, match=rf"{f}:3: malformed JSONL line"):
        list(read_jsonl(f))
    errs: list[str] = []
    assert [r["a"] for r in read_jsonl(f, skip_bad=True, errors=errs)] == [1]
    assert [e.split(": ")[0] for e in errs] == [f"{f}:3", f"{f}:4"]
    assert "expected a JSON object" in errs[1]


def test_store_dedups_and_repairs_torn_tail(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    with JsonlStore(f, key=("task", "i")) as s:
        s.append({"task": "a", "i": 0, "v": 1})
        s.append({"task": "a", "i": 0, "v": 2})  # duplicate key: ignored
        s.extend([{"task": "a", "i": 1}, {"task": "b", "i": 0}])
    with f.open("a") as fh:
        fh.write('{"task": "b", "i": 1, "v": tor')  # a writer died mid-line
    s = JsonlStore(f, key=("task", "i"))
    assert len(s) == 3 and s.has(("a", 1)) and not s.has(("b", 1))
    s.append({"task": "b", "i": 1})
    s.close()
    lines = f.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x) for x in lines)


WRITER = """
import sys, time
from codebench.records import JsonlStore
s = JsonlStore(sys.argv[1], key="i")
for i in range(100000):
    if not s.has(i):
        s.append({"i": i, "pad": "x" * 200})
        if i == 50:
            print("ready", flush=True)
"""


def test_kill_9_resume_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    f = tmp_path / "k.jsonl"
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(f)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    s = JsonlStore(f, key="i")
    n = len(s)
    assert n > 50
    assert sorted(r["i"] for r in s) == list(range(n)), "records are a gap-free prefix"
    for i in range(n + 10):
        s.append({"i": i, "pad": "x" * 200})
    s.close()
    ids = [json.loads(x)["i"] for x in f.read_text().splitlines()]
    assert ids == list(range(n + 10))


def test_write_json_is_atomic(tmp_path: Path) -> None:
    f = tmp_path / "r.json"
    write_json(f, {"a": 1})
    write_json(f, {"a": 2})
    assert json.loads(f.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


# ---------------------------------------------------------------- hostile strings, faults
ODD = ["\ud800", "a\x00b", "\udcff\ud83d", "é∑😀", "x" * 3_000_000, '"\\\n\r\t']


def test_any_string_is_stored_and_read_back(tmp_path: Path) -> None:
    f = tmp_path / "odd.jsonl"
    with JsonlStore(f, key="i") as s:
        for i, text in enumerate(ODD):
            s.append({"i": i, "text": text, "k": {text[:10]: text[:10]}})
    assert f.read_bytes().isascii()
    back = {r["i"]: r["text"] for r in read_jsonl(f)}
    assert [back[i] for i in range(len(ODD))] == ODD
    assert [r["text"] for r in JsonlStore(f, key="i")] == ODD
    write_jsonl(tmp_path / "w.jsonl", [{"t": t} for t in ODD])
    assert [r["t"] for r in read_jsonl(tmp_path / "w.jsonl")] == ODD
    write_json(tmp_path / "w.json", {"t": ODD})
    assert json.loads((tmp_path / "w.json").read_text())["t"] == ODD


def test_short_writes_are_completed(tmp_path: Path, monkeypatch) -> None:
    real = os.write
    calls = []

    def short(fd, data):
        calls.append(len(data))
        return real(fd, bytes(data[:7]))

    monkeypatch.setattr(os, "write", short)
    f = tmp_path / "s.jsonl"
    with JsonlStore(f, key="i") as s:
        s.extend([{"i": i, "pad": "p" * 50} for i in range(5)])
        s.append({"i": 9})
    write_json(tmp_path / "j.json", {"a": list(range(30))})
    monkeypatch.undo()
    assert len(calls) > 20
    assert [r["i"] for r in read_jsonl(f)] == [0, 1, 2, 3, 4, 9]
    assert json.loads((tmp_path / "j.json").read_text()) == {"a": list(range(30))}


def _disk_full_after(monkeypatch, nbytes: int) -> None:
    """os.write writes `nbytes` in all, then fails with ENOSPC (a disk that fills up)."""
    real = os.write
    left = [nbytes]

    def write(fd, data):
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real(fd, bytes(data[: left[0]]))
        left[0] -= n
        return n

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("fail_after", [0, 1, 30, 75])
def test_full_disk_keeps_old_records_and_names_the_file(
    tmp_path: Path, monkeypatch, fail_after: int
) -> None:
    f = tmp_path / "s.jsonl"
    with JsonlStore(f, key="i") as s:
        s.extend([{"i": i} for i in range(3)])
    before = f.read_bytes()
    s = JsonlStore(f, key="i")
    _disk_full_after(monkeypatch, fail_after)
    with pytest.raises(RecordWriteError) as ei:
        s.extend([{"i": i, "pad": "x" * 40} for i in range(3, 6)])
    monkeypatch.undo()
    msg = str(ei.value)
    assert str(f) in msg and "No space left on device" in msg and "\n" not in msg
    assert f.read_bytes() == before, "the old records, never a torn line"
    assert not s.has(3)
    s.append({"i": 3})  # space again: the store goes on
    s.close()
    assert [r["i"] for r in read_jsonl(f)] == [0, 1, 2, 3]


def test_full_disk_atomic_writes_leave_old_file_and_no_temp(tmp_path: Path, monkeypatch) -> None:
    f = tmp_path / "r.json"
    write_json(f, {"a": 1})
    write_jsonl(tmp_path / "r.jsonl", [{"a": 1}])
    _disk_full_after(monkeypatch, 5)
    with pytest.raises(RecordWriteError, match=rf"^{tmp_path}/r.json: cannot write: No space"):
        write_json(f, {"a": 2, "pad": "x" * 100})
    with pytest.raises(RecordWriteError, match="r.jsonl"):
        write_jsonl(tmp_path / "r.jsonl", [{"a": 2, "pad": "x" * 100}])
    monkeypatch.undo()
    assert json.loads(f.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.jsonl"]


def test_read_only_file_system_is_one_error_line(tmp_path: Path, monkeypatch) -> None:
    def erofs(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "open", erofs)
    with pytest.raises(RecordWriteError, match=rf"{tmp_path}/s.jsonl: .*Read-only file system$"):
        JsonlStore(tmp_path / "s.jsonl", key="i")
    monkeypatch.setattr("tempfile.mkstemp", erofs)
    with pytest.raises(RecordWriteError, match=rf"{tmp_path}/r.json: .*Read-only file system$"):
        write_json(tmp_path / "r.json", {})


def test_two_writers_never_store_a_key_twice(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    a, b = JsonlStore(f, key="i"), JsonlStore(f, key="i")
    assert a.append({"i": 1, "by": "a"})
    assert not b.append({"i": 1, "by": "b"}), "b sees a's record under the lock"
    assert b.extend([{"i": 1}, {"i": 2, "by": "b"}]) == 1
    assert not a.append({"i": 2, "by": "a"})
    a.close()
    b.close()
    assert [(r["i"], r["by"]) for r in read_jsonl(f)] == [(1, "a"), (2, "b")]


CONCURRENT = """
import sys
from codebench.records import JsonlStore
s = JsonlStore(sys.argv[1], key="i")
for i in range(300):
    s.append({"i": i, "by": sys.argv[2]}, sync=False)
"""


def test_concurrent_processes_write_each_key_once(tmp_path: Path) -> None:
    f = tmp_path / "c.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(f), str(n)]) for n in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    ids = [r["i"] for r in read_jsonl(f)]
    assert sorted(ids) == list(range(300))


def test_duplicates_on_disk_are_dropped_with_one_warning(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text('{"i": 1, "v": "first"}\n{"i": 2}\n{"i": 1, "v": "second"}\n{"i": 2}\n')
    with pytest.warns(UserWarning, match=r"d.jsonl: 2 duplicate record\(s\) \(first at line 3\)"):
        s = JsonlStore(f, key="i")
    assert len(s) == 2 and s.records[(1,)]["v"] == "first"
    s.append({"i": 3})
    s.close()
    assert [r["i"] for r in read_jsonl(f)] == [1, 2, 3]


def test_non_utf8_and_directory_are_named(tmp_path: Path) -> None:
    f = tmp_path / "b.jsonl"
    f.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n')
    with pytest.raises(RecordError, match=rf"^{f}:2: not UTF-8"):
        list(read_jsonl(f))
    with pytest.raises(RecordError, match=rf"^{tmp_path}: is a directory"):
        list(read_jsonl(tmp_path))
