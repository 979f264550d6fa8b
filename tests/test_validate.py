"""`codebench validate` and the preflight: malformed profiles and files are rejected before any
work, with one line naming the file and the key (fixtures in tests/fixtures/validate/)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from codebench import paths, validate
from codebench.params import load_profile
from codebench.validate import PreflightError, check_profile, preflight

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "validate"

# fixture -> (key named in the error, substring of the error, number of error lines)
MALFORMED: dict[str, tuple[str, str, int]] = {
    "unknown_benchmark.yaml": ("evaluate.benchmarks[1]", "did you mean 'humaneval'", 1),
    "unknown_multiple_language.yaml": ("evaluate.benchmarks[0]", "MultiPL-E language 'rs'", 1),
    "unknown_pal_set.yaml": ("evaluate.benchmarks[0]", "PAL-Math set 'gsm9k'", 1),
    "bad_protocol.yaml": ("evaluate.benchmarks[0]", "unknown protocol 'chat'", 1),
    "empty_benchmarks.yaml": ("evaluate.benchmarks", "at least 1 item", 1),
    "ks_not_positive.yaml": ("evaluate.ks.0", "greater than or equal to 1", 1),
    "ks_negative_and_zero.yaml": ("evaluate.ks.1", "(got -1)", 2),
    "k_greater_than_n.yaml": ("evaluate.ks", "pass@10 needs at least 10 samples", 1),
    "missing_data_dir.yaml": ("data_dir", "/nonexistent/codebench-data does not exist", 1),
    "missing_model_path.yaml": ("model.base", "local model path", 1),
    "missing_tiny_source.yaml": (
        "model.tiny.source",
        "/nonexistent/corpus-folder does not exist",
        1,
    ),
    "unknown_variant.yaml": ("evaluate.variants[1]", "did you mean 'int8-dynamic'", 1),
    "unknown_source.yaml": ("data.sources[0]", "did you mean 'codeio-demo'", 1),
    "unknown_decontam_set.yaml": ("data.decontam_sets[1]", "unknown evaluation set 'apps'", 1),
    "missing_finetune_data.yaml": ("finetune.data", "/nonexistent/sft.jsonl does not exist", 1),
    "missing_codeio_heldout.yaml": ("evaluate.benchmarks[0]", "held-out file", 1),
    "custom_missing_file.yaml": (
        "evaluate.benchmarks[0]",
        "custom_missing_file.jsonl does not exist",
        1,
    ),
    "custom_bad_json.yaml": (
        "evaluate.benchmarks[0]",
        "custom_bad_json.jsonl:2: malformed JSON",
        1,
    ),
    "custom_missing_field.yaml": (
        "evaluate.benchmarks[0]",
        "custom_missing_field.jsonl:2: missing required field 'tests'",
        1,
    ),
    "custom_not_utf8.yaml": ("evaluate.benchmarks[0]", "custom_not_utf8.jsonl:1: not UTF-8", 1),
    "custom_bad_language.yaml": (
        "evaluate.benchmarks[0]",
        "custom_bad_language.jsonl:2: unknown language 'rust'",
        1,
    ),
    "custom_duplicate_id.yaml": ("evaluate.benchmarks[0]", ":2: duplicate task_id 't/0'", 1),
    "custom_empty.yaml": ("evaluate.benchmarks[0]", "no problems", 1),
    "custom_not_object.yaml": ("evaluate.benchmarks[0]", ":2: expected a JSON object, got list", 1),
    "custom_folder.yaml": ("evaluate.benchmarks[0]", "is a folder, not a file", 1),
    "missing_resume_checkpoint.yaml": ("finetune.resume", "checkpoint-20 does not exist", 1),
    "compress_source_typo.yaml": ("compress.source", "did you mean 'finetuned'", 1),
    "unreadable_yaml_scalar.yaml": ("evaluate.benchmarks", "valid list", 1),
}


@pytest.fixture(scope="session")
def shipped_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder unpacked from the data shipped inside the package."""
    return paths.ensure_shipped(tmp_path_factory.mktemp("shipped") / "data")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shipped_data: Path) -> Path:
    """Run from tmp_path, data from the shipped copy, no network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CODEBENCH_DATA", str(shipped_data))
    monkeypatch.setenv("CODEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def _profile(name: str, dest: Path) -> Path:
    """The fixture profile with @FIXTURES@ replaced by the fixtures folder."""
    text = (FIXTURES / name).read_text().replace("@FIXTURES@", str(FIXTURES))
    out = dest / name
    out.write_text(text)
    return out


def test_at_least_twenty_malformed_fixtures() -> None:
    assert len(MALFORMED) >= 20
    assert all((FIXTURES / name).is_file() for name in MALFORMED)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_profile_one_line_naming_file_and_key(name: str, env: Path) -> None:
    key, part, count = MALFORMED[name]
    prof = _profile(name, env)
    problems = check_profile(prof)
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == count, "\n".join(map(str, problems))
    line = next((str(p) for p in errors if p.key == key or str(p).startswith(f"{prof}: {key}")), "")
    assert line, f"no error names {key!r}: {[str(p) for p in errors]}"
    assert line.startswith(f"{prof}: {key}"), line
    assert part in line, line
    for e in errors:
        assert "\n" not in str(e)


@pytest.mark.parametrize("name", ["unknown_benchmark.yaml", "custom_bad_json.yaml"])
def test_preflight_raises_one_error_before_work(name: str, env: Path) -> None:
    prof = _profile(name, env)
    with pytest.raises(PreflightError) as ei:
        preflight(prof, log=None)
    key = MALFORMED[name][0]
    assert str(ei.value).startswith(f"{prof}: {key}")
    assert len(ei.value.problems) == 1
    # a loaded Profile works too, named by `path`
    with pytest.raises(PreflightError, match=f"^{prof}: "):
        preflight(load_profile(prof), path=prof, log=None)


def test_device_cuda_is_a_warning_in_validate_and_an_error_here(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validate, "_cuda_available", lambda: False)
    prof = _profile("device_cuda.yaml", env)
    (p,) = check_profile(prof)
    assert p.severity == "warning" and p.key == "device" and "no CUDA GPU" in str(p)
    (p,) = check_profile(prof, here=True)
    assert p.severity == "error" and str(p).startswith(f"{prof}: device: 'cuda'")
    with pytest.raises(PreflightError, match="device: 'cuda' but no CUDA GPU"):
        preflight(prof, log=None)


def test_good_custom_file_passes(env: Path) -> None:
    prof = env / "ok.yaml"
    prof.write_text(
        "name: ok\nstages: [evaluate, report]\nevaluate:\n"
        f"  benchmarks: ['custom:{FIXTURES / 'custom_good.jsonl'}', humaneval, mbpp]\n"
    )
    assert [p for p in check_profile(prof) if p.severity == "error"] == []


@pytest.mark.parametrize("path", sorted((REPO / "params").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_profiles_have_no_errors(
    path: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validate, "_cuda_available", lambda: False)
    problems = check_profile(path)
    assert [p for p in problems if p.severity == "error"] == [], "\n".join(map(str, problems))
    if load_profile(path).device == "cuda":  # documented: a warning on a machine without a GPU
        assert any(p.key == "device" and p.severity == "warning" for p in problems)


def test_missing_toolchain_is_named(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from codebench.sandbox import languages

    js = languages.TOOLCHAINS["js"]
    monkeypatch.setitem(
        languages.TOOLCHAINS, "js", dataclasses.replace(js, run=("codebench-no-such-node",))
    )
    prof = env / "js.yaml"
    prof.write_text(
        "name: js\nstages: [evaluate, report]\nevaluate:\n  benchmarks: [multiple-js]\n"
    )
    (e,) = [p for p in check_profile(prof) if p.severity == "error"]
    assert str(e).startswith(f"{prof}: evaluate.benchmarks[0]: js programs need")
    assert "codebench-no-such-node" in str(e)


def test_run_folder_blocked_by_a_file(env: Path) -> None:
    (env / "runs").write_text("a file where the runs folder should be\n")
    prof = env / "p.yaml"
    prof.write_text("name: p\nstages: [report]\n")
    (e,) = [p for p in check_profile(prof) if p.severity == "error"]
    assert str(e).startswith(f"{prof}: run folder: ") and "is a file" in str(e)


def test_disk_space_against_estimate(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    prof = env / "p.yaml"
    prof.write_text("name: p\n")
    need = validate.estimate_disk_bytes(load_profile(prof))
    assert need > 100_000_000
    usage = shutil.disk_usage(env)
    monkeypatch.setattr(validate.shutil, "disk_usage", lambda _: usage._replace(free=need // 2))
    # a fact about this machine, not the profile: `validate` warns (a large profile validates
    # on a small disk, as a GPU profile does on a CPU machine), `--here` and the preflight stop
    (w,) = [p for p in check_profile(prof) if p.key == "run folder"]
    assert w.severity == "warning" and "below the ~" in str(w)
    (e,) = [p for p in check_profile(prof, here=True) if p.severity == "error"]
    assert str(e).startswith(f"{prof}: run folder: ") and "below the ~" in str(e)
    with pytest.raises(PreflightError, match="run folder: .* free at .* below the ~"):
        preflight(prof, log=None)


def test_env_data_folder_that_does_not_exist_is_an_error(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEBENCH_DATA", str(env / "nope"))
    prof = env / "p.yaml"
    prof.write_text("name: p\nstages: [evaluate, report]\nevaluate:\n  benchmarks: [mbpp]\n")
    (e,) = [p for p in check_profile(prof) if p.severity == "error"]
    assert str(e).startswith(f"{prof}: $CODEBENCH_DATA: {env / 'nope'} does not exist")


def test_missing_file_in_named_data_folder_names_fetch_command(env: Path) -> None:
    empty = env / "data"
    empty.mkdir()
    prof = env / "p.yaml"
    prof.write_text(
        f"name: p\ndata_dir: {empty}\nstages: [evaluate, report]\n"
        "evaluate:\n  benchmarks: [humaneval, mbpp]\n"
    )
    (e,) = [p for p in check_profile(prof) if p.severity == "error"]
    assert str(e).startswith(f"{prof}: evaluate.benchmarks[1]: mbpp")
    assert f"`codebench fetch-data {empty} --sets mbpp`" in str(e)


def test_validate_cli_exit_codes(env: Path) -> None:
    bad = _profile("unknown_benchmark.yaml", env)
    cli = [sys.executable, "-m", "codebench.cli", "validate"]
    r = subprocess.run([*cli, str(REPO / "params" / "smoke.yaml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*cli, str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"codebench: error: {bad}: evaluate.benchmarks[1]: unknown benchmark 'humaneva' "
        "(did you mean 'humaneval'?) (known: " + r.stderr.split("(known: ", 1)[1].strip()
    ]


def test_hub_model_unavailable_is_an_error_here_only(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codebench import models

    monkeypatch.setattr(models, "_hub_cached", lambda *a, **k: False)
    monkeypatch.setattr(models, "_hub_reachable", lambda *a, **k: False)
    prof = env / "hub.yaml"
    prof.write_text("name: hub\nstages: [model, report]\nmodel:\n  base: org/some-model-1b\n")
    assert [p for p in check_profile(prof) if p.severity == "error"] == []
    (e,) = check_profile(prof, here=True)
    assert str(e).startswith(f"{prof}: model.base: hub model 'org/some-model-1b' is not in")
    monkeypatch.setattr(models, "_hub_cached", lambda *a, **k: True)
    assert check_profile(prof, here=True) == []


def test_validate_here_flag_turns_the_device_warning_into_an_error(env: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: device: cuda is fine here")
    prof = _profile("device_cuda.yaml", env)
    cli = [sys.executable, "-m", "codebench.cli", "validate"]
    r = subprocess.run([*cli, str(prof)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr.startswith("codebench: warning: "), r.stderr
    r = subprocess.run([*cli, "--here", str(prof)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"codebench: error: {prof}: device: 'cuda' but no CUDA GPU is visible here "
        "(run it on a GPU machine, or set device: auto or cpu)"
    )
