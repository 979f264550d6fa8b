"""An incomplete fine-tuning checkpoint (killed or disk full while saving) is skipped on resume
with one warning line, never a traceback; training resumes from the previous whole one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from codebench.train.trainer import checkpoint_problem, resolve_resume


def _checkpoint(root: Path, step: int) -> Path:
    d = root / f"checkpoint-{step}"
    d.mkdir(parents=True)
    save_file({"w": torch.ones(64, 64)}, d / "adapter_model.safetensors")
    torch.save({"state": {}}, d / "optimizer.pt")
    (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return d


def test_resolve_resume_skips_incomplete_checkpoints(tmp_path: Path, caplog) -> None:
    good = _checkpoint(tmp_path, 2)
    no_state = _checkpoint(tmp_path, 4)
    (no_state / "trainer_state.json").unlink()
    torn = _checkpoint(tmp_path, 6)
    w = torn / "adapter_model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    torn_opt = _checkpoint(tmp_path, 8)
    o = torn_opt / "optimizer.pt"
    o.write_bytes(o.read_bytes()[:-30])
    half_state = _checkpoint(tmp_path, 10)
    (half_state / "trainer_state.json").write_text('{"global_st')
    assert checkpoint_problem(good) is None
    with caplog.at_level(logging.WARNING, logger="codebench.train.trainer"):
        assert resolve_resume("auto", tmp_path) == str(good)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and all("\n" not in ln for ln in lines)
    assert "checkpoint-10 (unreadable trainer_state.json" in lines[0]
    assert "checkpoint-8 (truncated optimizer.pt)" in lines[1]
    assert "checkpoint-6 (truncated adapter_model.safetensors)" in lines[2]
    assert "checkpoint-4 (no trainer_state.json)" in lines[3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"], "only resumable state"
    (good / "trainer_state.json").unlink()
    assert resolve_resume("auto", tmp_path) is None


def test_named_incomplete_checkpoint_is_an_error(tmp_path: Path) -> None:
    d = _checkpoint(tmp_path, 2)
    (d / "trainer_state.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"checkpoint-2 is an incomplete checkpoint"):
        resolve_resume(str(d), tmp_path)


def test_finetune_resumes_past_a_torn_checkpoint(tmp_path: Path) -> None:
    from helpers.train import save_tiny_model, sft_records
    from test_train_trainer import SMALL, _job, _losses  # noqa: F401  (shared tiny set-up)

    from codebench.train.callbacks import StopAfter
    from codebench.train.trainer import checkpoint_dir, finetune

    llama = save_tiny_model(tmp_path / "llama", "llama")
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sft_records(40)))
    over = dict(max_steps=6, save_steps=2, eval_steps=100, save_total_limit=3)
    full = finetune(_job(tmp_path / "a", llama, data, **over, resume="never"))
    job = _job(tmp_path / "b", llama, data, **over)
    finetune(job, callbacks=[StopAfter(4)])
    ck = checkpoint_dir(job)
    (ck / "checkpoint-4" / "trainer_state.json").unlink()  # the disk filled while saving
    resumed = finetune(_job(tmp_path / "b", llama, data, **over))
    assert resumed["resumed_from"].endswith("checkpoint-2")
    assert _losses(resumed) == pytest.approx(_losses(full), rel=1e-5)


def test_checkpoint_key_follows_the_base_content_not_its_path(tmp_path: Path) -> None:
    """A base retrained in the same folder never resumes the old run's checkpoints; a copied
    base (a moved run) keeps them."""
    import shutil

    from helpers.train import save_tiny_model
    from test_train_trainer import _job

    from codebench.train.trainer import checkpoint_dir

    llama = save_tiny_model(tmp_path / "llama", "llama")
    data = tmp_path / "sft.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n')
    before = checkpoint_dir(_job(tmp_path / "r", llama, data))
    moved = tmp_path / "moved"
    shutil.copytree(llama, moved)
    assert checkpoint_dir(_job(tmp_path / "r", moved, data)) == before
    weights = next(Path(llama).glob("*.safetensors"))
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 1  # retrained: other weights, same folder
    weights.write_bytes(bytes(raw))
    assert checkpoint_dir(_job(tmp_path / "r", llama, data)) != before
