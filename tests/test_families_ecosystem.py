"""Ecosystem habits: hub pushes with the standard token lookup, `finetune.report_to`."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from codebench.train import merge, trainer


@pytest.fixture
def no_env_token(monkeypatch, tmp_path):
    import huggingface_hub.constants as c

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(tmp_path / "token"))
    return tmp_path / "token"


def test_hub_token_finds_the_login_token_file(no_env_token):
    assert merge.hub_token() is None
    no_env_token.write_text("hf_stored_by_login\n")  # what `hf auth login` writes
    assert merge.hub_token() == "hf_stored_by_login"
    merge.check_push("me/model")  # a token: no error


def test_hub_token_prefers_hf_token(no_env_token, monkeypatch):
    no_env_token.write_text("hf_file")
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert merge.hub_token() == "hf_env"


def test_push_without_any_token_fails_before_training(no_env_token):
    with pytest.raises(merge.HubPushError, match="hf auth login"):
        merge.check_push("me/model")
    merge.check_push(None)  # no push asked: nothing to check
    job = SimpleNamespace(finetune=SimpleNamespace(push_to_hub="me/model", report_to="none"))
    with pytest.raises(merge.HubPushError):
        trainer.finetune(job)  # stops at once: no model, data or training touched


def test_report_to_values():
    assert trainer.report_to("none") == [] and trainer.report_to(None) == []
    assert trainer.report_to(["none"]) == []
    with pytest.raises(ValueError, match="unknown integration 'mlflow'"):
        trainer.report_to("mlflow")
    for name, pkgs in trainer.REPORTERS.items():
        if any(importlib.util.find_spec(p) for p in pkgs):
            assert trainer.report_to(name) == [name]
        else:
            with pytest.raises(ValueError, match=f"pip install {pkgs[0]}"):
                trainer.report_to([name])
