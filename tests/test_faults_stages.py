"""kill -9 at random points of every real stage (00 included), then resume: the final results
equal an uninterrupted run's, with no torn lines, duplicates, temporary files or kernels left.

Unlike tests/test_faults.py (small work notebooks), this runs the real stage notebooks on a
mini profile (tiny model 40 steps, 4 CodeI/O functions, 8 LoRA steps, 2 compressed variants,
24 pyfamilies + 4 HumanEval problems): several minutes, so it is marked slow.
Run it with `make test-slow PYTEST_ARGS="tests/test_faults_stages.py"`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from runs_fixtures import cli, pid_alive
from safetensors import safe_open

from codebench.records import read_jsonl

pytestmark = pytest.mark.slow

MINI = """\
name: mini
seed: 0
device: cpu
model:
  base: tiny
  tiny: {context: 768, steps: 40, eval_every: 10, batch_size: 4, max_chars: 200000,
         family_examples: 3000}
data:
  sources: [codeio-demo]
  limit: 4
  max_pairs: 2
  max_predictions: 4
  max_new_tokens: 32
  include_code: false
  decontam_sets: [pyfamilies]
finetune: {method: lora, max_steps: 8, save_steps: 3, max_length: 768}
compress: {variants: [int8-dynamic, magnitude-50]}
evaluate:
  variants: [base, finetuned, int8-dynamic]
  benchmarks: [pyfamilies, humaneval]
  limit: {default: 4, pyfamilies: 24}
  n: 1
  temperature: 0.0
  max_new_tokens: 32
"""
STAGES = ("model", "data", "finetune", "compress", "evaluate", "report")
# fields that measure the machine, not the result (and any key ending in "_s": seconds)
VOLATILE = ("time", "elapsed", "second", "latency", "per_s", "duration", "started", "finished")


def _args(root: Path) -> list[str]:
    prof = root / "mini.yaml"
    if not prof.exists():
        prof.parent.mkdir(parents=True, exist_ok=True)
        prof.write_text(MINI)
    return cli(
        "reproduce", prof, "--runs-dir", root / "runs", "--figures-dir", root / "figs", "--quiet"
    )


def _scrub(x):
    if isinstance(x, dict):
        return {
            k: _scrub(v)
            for k, v in x.items()
            if not (k.endswith("_s") or any(w in k.lower() for w in VOLATILE))
        }
    if isinstance(x, list):
        return [_scrub(v) for v in x]
    return x


def _fingerprint(run: Path) -> dict[str, object]:
    """What the run decided: model weights, data and evaluation records, pass@k."""
    out: dict[str, object] = {}
    for f in sorted((run / "models").rglob("*.safetensors")):  # tensors (file layout may vary)
        with safe_open(f, "pt") as st:
            digest = hashlib.sha256()
            for k in sorted(st.keys()):
                digest.update(
                    k.encode()
                    + st.get_tensor(k).contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                )
        out[str(f.relative_to(run))] = digest.hexdigest()
    for f in sorted([*(run / "data").glob("*.jsonl"), *(run / "eval").rglob("samples.jsonl")]):
        recs = list(read_jsonl(f))
        out[str(f.relative_to(run))] = sorted(json.dumps(_scrub(r), sort_keys=True) for r in recs)
    for f in sorted((run / "eval").rglob("results.json")):
        r = json.loads(f.read_text())
        out[str(f.relative_to(run))] = _scrub(
            {k: r.get(k) for k in ("metrics", "outcomes", "per_problem", "canary")}
        )
    return out


def _stage_running(run: Path) -> str | None:
    try:
        m = json.loads((run / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    running = [s for s, v in m.get("stages", {}).items() if v.get("status") == "running"]
    return running[0] if running else None


def _kill_in(args: list[str], run: Path, stage: str, delay: float) -> bool:
    """Start a run; `delay` s after `stage` starts, kill -9 the runner (only it: its kernel must
    notice and exit). False when the run finished that stage before the kill."""
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while p.poll() is None and _stage_running(run) != stage:
        time.sleep(0.05)
    end = time.monotonic() + delay
    while p.poll() is None and time.monotonic() < end and _stage_running(run) == stage:
        time.sleep(0.05)
    if p.poll() is not None or _stage_running(run) != stage:
        p.kill()
        p.wait()
        return False
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    return True


def _kernels(run: Path) -> list[str]:
    """Live processes started with a connection file of this run (its kernels)."""
    r = subprocess.run(["pgrep", "-af", str(run / ".kernels")], capture_output=True, text=True)
    return [ln for ln in r.stdout.splitlines() if "pgrep" not in ln]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict, dict[str, float]]:
    root = tmp_path_factory.mktemp("ref")
    t0 = time.monotonic()
    r = subprocess.run(_args(root), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    run = root / "runs" / "mini"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["state"] == "finished"
    durations = {s: float(manifest["stages"][s].get("duration_s") or 0) for s in STAGES}
    if not any(durations.values()):  # manifest without timings: share the total evenly
        durations = dict.fromkeys(STAGES, (time.monotonic() - t0) / len(STAGES))
    return _fingerprint(run), durations


def test_kill_9_in_every_stage_then_resume_equals_an_uninterrupted_run(tmp_path, reference):
    ref, durations = reference
    rng = random.Random(int(os.environ.get("CODEBENCH_FAULT_SEED", "0")))
    args = _args(tmp_path)
    run = tmp_path / "runs" / "mini"
    killed = []
    for stage in STAGES:
        delay = rng.uniform(0.3, max(0.5, 0.8 * durations[stage]))
        if _kill_in(args, run, stage, delay):
            killed.append(stage)
            listing = subprocess.run([*args, "--list"], capture_output=True, text=True)
            assert "interrupted" in listing.stdout, listing.stdout
    assert {"model", "data", "finetune", "evaluate"} <= set(killed), killed
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    got = _fingerprint(run)
    assert got.keys() == ref.keys()
    for k in ref:
        assert got[k] == ref[k], f"{k} differs from the uninterrupted run"
    for f in run.rglob("*.jsonl"):
        data = f.read_bytes()
        assert not data or data.endswith(b"\n"), f"torn line in {f}"
    for f in run.rglob("samples.jsonl"):
        keys = [(r.get("task_id"), r.get("sample", r.get("index"))) for r in read_jsonl(f)]
        assert len(keys) == len(set(keys)), f"duplicate records in {f}"
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]
    assert not list((run / ".kernels").glob("*")), "kernel connection files left"
    end = time.monotonic() + 15  # kernels of killed runners notice and exit
    while _kernels(run) and time.monotonic() < end:
        time.sleep(0.2)
    assert not _kernels(run), "a kernel outlived its run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["state"] == "finished"
    assert not pid_alive(manifest["owner"]["pid"]) or manifest["owner"]["pid"] == os.getpid()
