"""`codebench fetch-data` against a local mirror (tests never touch the network)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from codebench.fetch import fetch
from codebench.paths import DataDirError, data_dir


@pytest.fixture
def mirror():
    try:
        root = data_dir()
    except DataDirError as e:
        pytest.skip(str(e))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_fetch_verifies_and_resumes(tmp_path: Path, mirror: str) -> None:
    out = tmp_path / "data"
    st = fetch(out, ["mbpp", "mtpb"], base_url=mirror, log=lambda *_: None)
    assert st == {
        "mbpp/mbpp.jsonl": "fetched",
        "mbpp/mbpp_test.jsonl": "fetched",
        "mtpb/mtpb.jsonl": "fetched",
    }
    (out / "mtpb" / "mtpb.jsonl").write_text("tampered\n")
    st = fetch(out, ["mbpp", "mtpb"], base_url=mirror, log=lambda *_: None)
    assert st["mbpp/mbpp.jsonl"] == "present" and st["mtpb/mtpb.jsonl"] == "fetched"
    assert not list(out.rglob("*.part"))


def test_fetch_failure_is_reported(tmp_path: Path) -> None:
    st = fetch(tmp_path, ["mtpb"], base_url="http://127.0.0.1:9", timeout=2, log=lambda *_: None)
    assert st["mtpb/mtpb.jsonl"].startswith("failed: http://127.0.0.1:9/mtpb/mtpb.jsonl")
    assert not (tmp_path / "mtpb" / "mtpb.jsonl").exists()
