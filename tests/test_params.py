"""Profile validation: every malformed profile gets one error naming the file and key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from codebench.params import ProfileError, load_profile, stage_config

REPO = Path(__file__).resolve().parents[1]

# (file content, expected substrings of the error)
MALFORMED = {
    "empty": ("", ["profile is empty"]),
    "not_a_mapping": ("- a\n- b\n", ["top level must be a mapping", "list"]),
    "bad_yaml": (
        "name: x\nmodel:\n  base: tiny\n   dtype: float32\n",
        ["line 4", "malformed YAML"],
    ),
    "tab_indent": ("name: x\nmodel:\n\tbase: tiny\n", ["malformed YAML"]),
    "missing_name": ("seed: 1\n", ["name: required key is missing"]),
    "bad_name": ("name: 'has space'\n", ["name:", "pattern"]),
    "unknown_top": ("name: x\nmodle: {}\n", ["modle: unknown key", "allowed:"]),
    "unknown_nested": (
        "name: x\nmodel:\n  tiny:\n    stepz: 3\n",
        ["model.tiny.stepz: unknown key", "steps"],
    ),
    "wrong_type": (
        "name: x\nmodel:\n  tiny:\n    steps: many\n",
        ["model.tiny.steps", "integer", "'many'"],
    ),
    "negative": ("name: x\nseed: -1\n", ["seed:", "greater than or equal to 0"]),
    "bad_device": ("name: x\ndevice: tpu\n", ["device:", "'tpu'"]),
    "bad_dtype": ("name: x\nmodel:\n  dtype: int3\n", ["model.dtype", "'int3'"]),
    "duplicate_key": ("name: x\nseed: 1\nseed: 2\n", ["duplicate key 'seed'", "line 3"]),
    "bad_stage": ("name: x\nstages: [model, deploy]\n", ["stages.1", "'deploy'"]),
    "section_not_mapping": ("name: x\nmodel: tiny\n", ["model:", "'tiny'"]),
    "fim_rate_range": (
        "name: x\nmodel:\n  tiny:\n    fim_rate: 1.5\n",
        ["model.tiny.fim_rate", "less than or equal to 1"],
    ),
    "not_utf8": (b"name: \xff\xfe\n", ["not UTF-8"]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_profile_names_file_and_key(tmp_path: Path, case: str) -> None:
    content, expected = MALFORMED[case]
    f = tmp_path / f"{case}.yaml"
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content)
    with pytest.raises(ProfileError) as ei:
        load_profile(f)
    msg = str(ei.value)
    assert str(f) in msg, msg
    for part in expected:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="profile not found"):
        load_profile(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted((REPO / "params").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_profiles_validate(path: Path) -> None:
    prof = load_profile(path)
    assert prof.name == path.stem
    assert prof.enabled_stages()[-1] == "report", "report is the last stage of every profile"


def test_smoke_is_cpu_and_tiny() -> None:
    prof = load_profile(REPO / "params" / "smoke.yaml")
    assert prof.model.base == "tiny"
    assert prof.device in ("cpu", "auto")


def test_validate_command_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel:\n  tiny:\n    steps: many\n")
    cli = [sys.executable, "-m", "codebench.cli", "validate"]
    ok = subprocess.run([*cli, str(REPO / "params" / "smoke.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    r = subprocess.run([*cli, str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "model.tiny.steps" in r.stderr and str(bad) in r.stderr
    assert r.stderr.count("error:") == 1


def test_stage_config_validates_notebook_parameters(tmp_path: Path) -> None:
    ns = {
        "profile": "t",
        "seed": 3,
        "device": "cpu",
        "data_dir": None,
        "run_dir": str(tmp_path / "run"),
        "figures_dir": str(tmp_path / "fig"),
        "base": "tiny",
        "tiny": {"steps": 5},
    }
    ctx, cfg = stage_config("model", ns)
    assert cfg.tiny.steps == 5 and ctx.device == "cpu" and ctx.run.root == tmp_path / "run"
    ns["tiny"] = {"steps": "five"}
    with pytest.raises(ProfileError, match=r"notebook parameters \[model\]: tiny.steps"):
        stage_config("model", ns)
    ns["tiny"] = {}
    ns["device"] = "cuda"
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ProfileError, match="no CUDA GPU"):
            stage_config("model", ns)


def test_relative_paths_become_absolute_against_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codebench.params import resolve_relative_paths

    (tmp_path / "models" / "mine").mkdir(parents=True)
    f = tmp_path / "p.yaml"
    f.write_text(
        "name: p\ndata_dir: data\nmodel:\n  base: models/mine\n  tiny:\n    source: corpus\n"
        "data:\n  sources: [codeio-demo, extra/raw.jsonl]\n"
        "finetune:\n  data: sets/sft.jsonl\n  resume: ckpt/checkpoint-20\n"
        "evaluate:\n  variants: [base, models/mine]\n"
        "  benchmarks: [humaneval, 'custom:b/x.jsonl:instruct', 'codeio:h.jsonl', org/name]\n"
    )
    monkeypatch.chdir(tmp_path)
    prof = resolve_relative_paths(load_profile(f))
    t = str(tmp_path)
    assert prof.data_dir == f"{t}/data"
    assert prof.model.base == f"{t}/models/mine" and prof.model.tiny.source == f"{t}/corpus"
    assert prof.data.sources == ["codeio-demo", f"{t}/extra/raw.jsonl"]
    assert prof.finetune.data == f"{t}/sets/sft.jsonl"
    assert prof.finetune.resume == f"{t}/ckpt/checkpoint-20"
    assert prof.finetune.base == "base"  # a variant name, not a path
    assert prof.evaluate.variants == ["base", f"{t}/models/mine"]
    assert prof.evaluate.benchmarks == [
        "humaneval",
        f"custom:{t}/b/x.jsonl:instruct",
        f"codeio:{t}/h.jsonl",
        "org/name",
    ]
    plain = resolve_relative_paths(load_profile(REPO / "params" / "smoke.yaml"))
    assert plain.model_dump() == load_profile(REPO / "params" / "smoke.yaml").model_dump()


def test_evaluate_name_names_an_evaluation_folder_safely() -> None:
    from codebench.params import EvaluateSection

    assert EvaluateSection(name="greedy-96").name == "greedy-96"
    assert EvaluateSection().name is None
    for bad in ("../x", "a/b", "", " sp"):
        with pytest.raises(ValueError, match="name"):
            EvaluateSection(name=bad)
