"""Append-only records survive kill -9; broken lines are named by file and line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codebench.records import JsonlStore, RecordError, read_jsonl, write_json


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
