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
    files = ["mbpp/mbpp.jsonl", "mtpb/mtpb.jsonl"]  # shipped with codebench: any clone has them
    st = fetch(out, ["mbpp", "mtpb"], base_url=mirror, files=files, log=lambda *_: None)
    assert st == {"mbpp/mbpp.jsonl": "fetched", "mtpb/mtpb.jsonl": "fetched"}
    (out / "mtpb" / "mtpb.jsonl").write_text("tampered\n")
    st = fetch(out, ["mbpp", "mtpb"], base_url=mirror, files=files, log=lambda *_: None)
    assert st["mbpp/mbpp.jsonl"] == "present" and st["mtpb/mtpb.jsonl"] == "fetched"
    assert not list(out.rglob("*.part"))


def test_fetch_failure_is_reported(tmp_path: Path) -> None:
    st = fetch(tmp_path, ["mtpb"], base_url="http://127.0.0.1:9", timeout=2, log=lambda *_: None)
    assert st["mtpb/mtpb.jsonl"].startswith("failed: http://127.0.0.1:9/mtpb/mtpb.jsonl")
    assert not (tmp_path / "mtpb" / "mtpb.jsonl").exists()


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `payload` at every path, honouring `Range: bytes=N-` (records the ranges)."""

    payload = b""
    ranges: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        rng = self.headers.get("Range")
        body, code = self.payload, 200
        if rng:
            self.ranges.append(rng)
            start = int(rng.split("=")[1].rstrip("-"))
            body, code = self.payload[start:], 206
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a) -> None:
        pass


@pytest.fixture
def range_server():
    handler = type("H", (_RangeHandler,), {"payload": b"", "ranges": []})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_interrupted_download_resumes_with_a_range_request(
    tmp_path: Path, range_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from codebench import fetch as F

    handler, url = range_server
    payload = b"".join(b'{"id": %d}\n' % i for i in range(5000))
    handler.payload = payload
    src = F.Source("mtpb/mtpb.jsonl", "unused", hashlib.sha256(payload).hexdigest())
    monkeypatch.setitem(F.SOURCES, "mtpb", [src])
    part = tmp_path / "mtpb" / "mtpb.jsonl.part"
    part.parent.mkdir()
    part.write_bytes(payload[:1000])  # what an interrupted download left
    st = fetch(tmp_path, ["mtpb"], base_url=url, strict=True, log=lambda *_: None)
    assert st == {"mtpb/mtpb.jsonl": "fetched"}
    assert handler.ranges == ["bytes=1000-"]
    assert (tmp_path / "mtpb" / "mtpb.jsonl").read_bytes() == payload
    assert not part.exists()


def test_strict_fetch_refuses_a_hash_mismatch(
    tmp_path: Path, range_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codebench import fetch as F

    handler, url = range_server
    handler.payload = b"not the tested copy\n"
    monkeypatch.setitem(F.SOURCES, "mtpb", [F.Source("mtpb/mtpb.jsonl", "unused", "0" * 64)])
    st = fetch(tmp_path, ["mtpb"], base_url=url, strict=True, log=lambda *_: None)
    assert st["mtpb/mtpb.jsonl"].startswith("failed: ") and "differs" in st["mtpb/mtpb.jsonl"]
    assert not (tmp_path / "mtpb" / "mtpb.jsonl").exists()
    assert not list(tmp_path.rglob("*.part"))
    st = fetch(tmp_path, ["mtpb"], base_url=url, log=lambda *_: None)  # fetch-data keeps it
    assert st["mtpb/mtpb.jsonl"] == "fetched (hash differs from the tested copy)"


def test_fetch_missing_maps_files_to_sets(tmp_path: Path) -> None:
    from codebench.fetch import fetch_missing, set_of

    assert set_of("humaneval-x/humaneval-cpp.jsonl") == "humaneval-x"
    assert set_of("nope/x.jsonl") is None
    seen = []

    def fake(dest, sets, **kw):
        seen.append((sets, kw["strict"], kw["files"]))
        return {"pal-math/svamp/test.json": "fetched"}

    st = fetch_missing(
        tmp_path, ["pal-math/svamp/test.json", "nope/x.jsonl"], fetcher=fake, log=None
    )
    assert seen == [(["pal-math"], True, ["pal-math/svamp/test.json"])]
    assert st == {"pal-math/svamp/test.json": "fetched", "nope/x.jsonl": "unknown"}


def test_fetch_data_defaults_to_the_user_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from codebench import cli
    from codebench import fetch as F

    monkeypatch.setenv("CODEBENCH_CACHE", str(tmp_path / "cache"))
    seen = []
    monkeypatch.setattr(
        F, "fetch", lambda dest, sets, **k: seen.append((Path(dest), sets)) or {"x": "fetched"}
    )
    assert cli._cmd_fetch_data(argparse.Namespace(dest=None, sets=["mtpb"], mirror=None)) == 0
    assert seen == [(tmp_path / "cache" / "data", ["mtpb"])]
    monkeypatch.setattr(F, "fetch", lambda dest, sets, **k: {"x": "failed: no network"})
    assert cli._cmd_fetch_data(argparse.Namespace(dest=str(tmp_path), sets=None, mirror=None)) == 1
