"""A default run's console carries no warning a user cannot act on: importing codebench
filters torchao's CUDA-library load failures and torch's deprecation note about torchao's
enums (codebench/quiet.py), and nothing else."""

from __future__ import annotations

import logging
import subprocess
import sys

from codebench import quiet

SCRIPT = """
import codebench
from transformers import LlamaConfig, LlamaForCausalLM  # imports torchao when installed
LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                             num_attention_heads=2, vocab_size=100))
import logging
logging.getLogger("torchao").warning("another torchao warning")
"""


def test_importing_a_model_prints_no_unactionable_warning() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    lines = (out.stdout + out.stderr).splitlines()
    assert not [ln for ln in lines if "Failed to load" in ln and "torchao" in ln], lines
    assert not [ln for ln in lines if "register_constant()" in ln], lines
    assert "another torchao warning" in out.stderr  # other warnings still show


def test_filters_drop_only_their_exact_message() -> None:
    quiet.install()
    f = quiet.DropMessage(r"^Failed to load \S*torchao/_C\w*\.\S*\.so", lambda m: True)

    def rec(msg: str) -> logging.LogRecord:
        return logging.LogRecord("torchao", logging.WARNING, __file__, 1, msg, None, None)

    assert not f.filter(
        rec("Failed to load /x/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so: e")
    )
    assert f.filter(rec("Failed to load config.json"))
    assert quiet._unusable_torchao_extension("/x/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so")


def test_stage_kernels_talk_over_ipc_and_log_no_warning(tmp_path, request) -> None:
    """The runner's stage kernels use IPC sockets in the run's .kernels folder, so ipykernel
    has no "running over TCP without encryption" warning to print; the kernel log stays empty."""
    import json
    import shutil
    import tempfile
    from pathlib import Path

    import nbformat
    import papermill as pm

    from codebench.pipeline import KERNEL_NAME, _kernel_manager, ensure_kernel

    ensure_kernel()
    kernels = Path(tempfile.mkdtemp(prefix="cbk"))  # short: pytest's tmp_path can be deep
    request.addfinalizer(lambda: shutil.rmtree(kernels, ignore_errors=True))
    src, out, log = tmp_path / "in.ipynb", tmp_path / "out.ipynb", tmp_path / "k.log"
    cell = "import glob, json\nprint(json.load(open(glob.glob(%r)[0]))['transport'])"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell % f"{kernels}/*.json")])
    nbformat.write(nb, src)
    pm.execute_notebook(
        str(src),
        str(out),
        kernel_name=KERNEL_NAME,
        progress_bar=False,
        kernel_manager_class=_kernel_manager(log, kernels),
    )
    outputs = json.loads(Path(out).read_text())["cells"][0]["outputs"]
    assert "".join(outputs[0]["text"]).strip() == "ipc"
    assert "WARNING" not in log.read_text(), log.read_text()
    assert not list(kernels.glob("*-ipc-*"))  # sockets removed with the kernel
