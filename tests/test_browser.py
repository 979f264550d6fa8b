"""The playground in a real browser: JupyterLab headless on 127.0.0.1, Debian's Chromium via
Playwright, Run All, widgets render, no cell errors, a control changes what is shown, tokens
stream from the tiny model, screenshot in test-output/browser/.

Skips (with the reason) when Playwright or Chromium is missing. JupyterLab, its kernels and
the browser are shut down at the end; nothing is left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "playground.ipynb"
OUT_DIR = REPO / "test-output" / "browser"
CHROMIUM = os.environ.get("CODEBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TOKEN = "codebench-browser-test"
KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && k.connectionStatus === 'connected';
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require_browser():
    """Playwright's sync API, or a skip naming what is missing."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    if not Path(CHROMIUM).is_file():
        pytest.skip(
            f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set CODEBENCH_CHROMIUM)"
        )
    return sync_api


def _tiny_model(request, tmp_path: Path) -> Path:
    """The session's tiny trained model (tests/conftest.py), else a random-weight stand-in."""
    try:
        return Path(request.getfixturevalue("tiny_model_dir"))
    except pytest.FixtureLookupError:
        from helpers.train import random_llama, tiny_tokenizer

        tok = tiny_tokenizer()
        model = random_llama(len(tok))
        out = tmp_path / "tiny-random"
        model.save_pretrained(out)
        tok.save_pretrained(out)
        return out


def _prepare_root(root: Path, model_dir: Path) -> None:
    """A lab root holding playground.ipynb (parameters pointed at ./run) and run/models/base."""
    from codebench.runs import write_variant_info

    base = root / "run" / "models" / "base"
    shutil.copytree(model_dir, base, ignore=shutil.ignore_patterns("codebench_variant.json"))
    write_variant_info(base, kind="base", parent=None)
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src = "".join(cell["source"])
            src = re.sub(r'(?m)^run_dir = "[^"]*"', 'run_dir = "run"', src)
            src = re.sub(r'(?m)^device = "[^"]*"', 'device = "cpu"', src)
            src = src.replace("problem_limit = None", "problem_limit = 5")
            cell["source"] = src
    (root / "playground.ipynb").write_text(json.dumps(nb))
    cfg = root / ".jupyter-config" / "labconfig"
    cfg.mkdir(parents=True)
    (cfg / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )


@pytest.fixture
def lab(tmp_path: Path, request):
    """JupyterLab on a random free port with a token; yields (url, root); always shut down."""
    from codebench.pipeline import ensure_kernel

    _require_browser()
    ensure_kernel()
    root = tmp_path / "lab"
    root.mkdir()
    _prepare_root(root, _tiny_model(request, tmp_path))
    port = _free_port()
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(root / ".jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        IPYTHONDIR=str(tmp_path / "ipython"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MPLBACKEND="Agg",
    )
    log = (tmp_path / "lab.log").open("w")
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True", "--ServerApp.terminals_enabled=False",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"JupyterLab did not start:\n{(tmp_path / 'lab.log').read_text()[-3000:]}"
                )
            time.sleep(0.3)
        yield url, root
    finally:
        _stop(proc, url)
        log.close()


def _stop(proc: subprocess.Popen, url: str) -> None:
    """Shut every kernel down through the API, then SIGTERM the server (SIGKILL after 10 s).

    Kernels run in sessions of their own, so they are stopped by the server, not by signal.
    """
    try:
        req = urllib.request.Request(f"{url}/api/kernels?token={TOKEN}")
        with urllib.request.urlopen(req, timeout=5) as r:
            kernels = json.loads(r.read())
        for k in kernels:
            delete = urllib.request.Request(
                f"{url}/api/kernels/{k['id']}?token={TOKEN}", method="DELETE"
            )
            with contextlib.suppress(OSError):
                urllib.request.urlopen(delete, timeout=10).close()
    except (OSError, ValueError):
        pass
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    with contextlib.suppress(ProcessLookupError):  # anything left in the server's group
        os.killpg(proc.pid, signal.SIGKILL)


def _saved_errors(root: Path) -> list[str]:
    nb = json.loads((root / "playground.ipynb").read_text())
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for c in nb["cells"]
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def test_playground_in_jupyterlab(lab, tmp_path: Path) -> None:
    sync_api = _require_browser()
    url, root = lab
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for old in OUT_DIR.glob("*.png"):
        old.unlink()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            page.set_default_timeout(30_000)
            page.goto(f"{url}/lab/tree/playground.ipynb?token={TOKEN}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", state="attached")
            # the widget manager must be connected before the cells run (it opens the control comm)
            page.wait_for_function(KERNEL_IDLE, timeout=60_000)
            page.wait_for_timeout(1000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            box = page.wait_for_selector(
                ".jp-OutputArea .widget-vbox .widget-toggle-buttons", timeout=60_000
            )
            assert box.is_visible()
            page.wait_for_function(KERNEL_IDLE, timeout=60_000)

            output = page.locator(".jp-OutputArea textarea").nth(2)  # prompt, stop, output
            status = page.locator(".jp-OutputArea .widget-html-content", has_text="done (#1)")
            # 1) generate in complete mode: tokens stream into the output box
            page.get_by_role("button", name="Generate").click()
            status.first.wait_for(timeout=60_000)
            first = output.input_value()
            # 2) change a control (max new tokens, through the slider's editable readout): the
            #    shown GenerationConfig changes and the new generation is at most 3 tokens long
            readout = page.locator(".widget-slider", has_text="max new tokens").locator(
                ".widget-readout"
            )
            readout.click()
            readout.press("Control+a")
            readout.type("3")
            readout.press("Enter")
            page.wait_for_selector("text=max_new_tokens=3", timeout=15_000)
            page.get_by_role("button", name="Generate").click()
            page.locator(
                ".jp-OutputArea .widget-html-content", has_text="done (#2)"
            ).first.wait_for(timeout=60_000)
            second = output.input_value()
            # 3) switch mode: the rendered prompt becomes a chat prompt
            page.get_by_role("button", name="chat (instruct)").click()
            page.wait_for_selector(
                ".jp-OutputArea pre:has-text('### Instruction:'), .jp-OutputArea pre:has-text('<|im_start|>')",
                timeout=30_000,
            )
            page.screenshot(path=str(OUT_DIR / "playground.png"), full_page=True)
            page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
            page.wait_for_timeout(1500)
        except Exception:
            try:
                page.screenshot(path=str(OUT_DIR / "playground-failure.png"), full_page=True)
            finally:
                raise
        finally:
            browser.close()
    assert not _saved_errors(root), _saved_errors(root)
    # same seed, fewer tokens: the second output is the first one cut short (or both end early)
    assert first.startswith(second), (first, second)
    assert (
        len(second) < len(first) or first == second
    )  # equal only if the model stopped within 3 tokens
    assert (OUT_DIR / "playground.png").stat().st_size > 10_000
