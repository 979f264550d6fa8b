"""Stage keys: relocatable runs, --only that never calls a stage up to date when it never ran,
keys from the modules a stage imports, honest provenance, progress lines."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from runs_fixtures import profile, reproduce_args, run_cli, work_notebooks

from codebench import runs
from codebench.pipeline import NOTEBOOKS, Runner, library_closure, notebook_imports


def _runner(tmp: Path, prof: Path, nbs: Path, runs_root: Path | None = None, **kw) -> Runner:
    return Runner(
        prof,
        runs_root=runs_root or tmp / "runs",
        figures_root=tmp / "figs",
        notebooks_dir=nbs,
        log=kw.pop("log", lambda _: None),
        **kw,
    )


@pytest.fixture(scope="module")
def two_stage_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reloc")
    nbs = work_notebooks(tmp / "nbs", n=3, pause=0)
    prof = profile(tmp)
    _runner(tmp, prof, nbs).run()
    return tmp, nbs, prof


def test_copied_or_moved_run_folder_is_up_to_date(two_stage_run, tmp_path: Path) -> None:
    src, nbs, prof = two_stage_run
    dest = tmp_path / "elsewhere" / "runs"
    shutil.copytree(src / "runs", dest)
    plan = _runner(tmp_path, prof, nbs, runs_root=dest).plan()
    assert [(i.stage, i.state) for i in plan] == [("model", "up to date"), ("data", "up to date")]
    r = run_cli(
        [*reproduce_args(prof, tmp_path, nbs, "--list")[:-2], "--runs-dir", str(dest), "--list"]
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("up to date") == 2 and "would run" not in r.stdout
    # a moved folder too, and its manifest points inside itself
    moved = tmp_path / "moved"
    shutil.move(dest, moved)
    plan = _runner(tmp_path, prof, nbs, runs_root=moved).plan()
    assert all(i.state == "up to date" for i in plan)
    manifest = json.loads((moved / "t" / "manifest.json").read_text())
    assert not Path(manifest["stages"]["model"]["notebook"]).is_absolute()


def test_only_never_reports_a_stage_that_never_ran_as_up_to_date(tmp_path: Path) -> None:
    nbs = work_notebooks(tmp_path / "nbs", n=1, pause=0)
    prof = profile(tmp_path)
    r = _runner(tmp_path, prof, nbs)
    r.run(only=["model"])
    assert [(i.stage, i.will_run, i.state) for i in r.plan(only=["model"])] == [
        ("model", False, "up to date"),
        ("data", False, "never ran, not selected"),
    ]
    out = run_cli(reproduce_args(prof, tmp_path, nbs, "--list", "--only", "model"))
    assert out.returncode == 0, out.stderr
    data_line = next(ln for ln in out.stdout.splitlines() if NOTEBOOKS["data"] in ln)
    assert "never ran, not selected" in data_line and "up to date" not in data_line


def _fake_lib(root: Path) -> Path:
    lib = root / "codebench"
    (lib / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "shared.py": "X = 1\n",
        "only04.py": "def f():\n    from codebench.sub import helper\n    return helper\n",
        "sub/__init__.py": "def lazy():\n    from codebench import unused\n",
        "sub/helper.py": "from . import leaf\n",
        "sub/leaf.py": "",
        "unused.py": "import codebench.shared\n",
    }
    for name, text in files.items():
        (lib / name).write_text(text)
    return lib


def _stage_nbs(tmp: Path) -> Path:
    nbs = work_notebooks(tmp / "nbs", n=1, pause=0)
    uses = {"model": "codebench.shared", "evaluate": "codebench.only04"}
    for stage, mod in uses.items():
        f = nbs / NOTEBOOKS[stage]
        nb = nbformat.read(f, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(f"def _uses():\n    import {mod}"))
        nbformat.write(nb, f)
    return nbs


def test_stage_keys_follow_the_modules_each_stage_imports(tmp_path: Path) -> None:
    lib = _fake_lib(tmp_path / "lib")
    nbs = _stage_nbs(tmp_path)
    prof = tmp_path / "all.yaml"
    prof.write_text("name: t\ndevice: cpu\n")
    assert notebook_imports(nbs / NOTEBOOKS["evaluate"]) >= {"codebench.only04"}
    closure = {str(p.relative_to(lib)) for p in library_closure(lib, {"codebench.only04"})}
    # the lazy import inside sub/__init__'s function does not count for a pass-through package
    assert closure == {
        "__init__.py",
        "only04.py",
        "sub/__init__.py",
        "sub/helper.py",
        "sub/leaf.py",
    }

    r = _runner(tmp_path, prof, nbs, lib_dir=lib)

    def rerun_after(edit: str) -> list[str]:
        plan = r.plan()
        r._save_manifest({"stages": {i.stage: {"status": "ok", "key": i.key} for i in plan}})
        (lib / edit).write_text((lib / edit).read_text() + "# edited\n")
        return [i.stage for i in r.plan() if i.will_run]

    assert rerun_after("only04.py") == ["evaluate", "report"]
    assert rerun_after("sub/leaf.py") == ["evaluate", "report"], "transitive, relative import"
    assert rerun_after("unused.py") == [], "no stage imports it"
    assert rerun_after("shared.py") == list(NOTEBOOKS), "stage 00 and all downstream"


def test_the_real_stages_do_not_share_every_module() -> None:
    from codebench import pipeline

    lib = Path(pipeline.__file__).parent
    nbdir = Path(pipeline.REPO_ROOT) / "notebooks"
    closures = {
        s: {p.name for p in library_closure(lib, notebook_imports(nbdir / nb))}
        for s, nb in NOTEBOOKS.items()
    }
    assert "playground.py" not in closures["model"], "a playground edit does not retrain 00"
    assert "trainer.py" in closures["finetune"] and "trainer.py" not in closures["evaluate"]
    assert "worker.py" in closures["evaluate"], "the sandbox worker, started by path, counts"


def test_real_stage_modules_rerun_only_their_stage_and_downstream(tmp_path: Path) -> None:
    """The notebooks import codebench.stages.<stage>: an edit to the module of stage 04 (or a
    module only stage 04 uses) reruns 04 and 05, the report module only 05, and a module
    every stage imports (params) every stage."""
    from codebench import pipeline

    lib = tmp_path / "lib" / "codebench"
    shutil.copytree(Path(pipeline.__file__).parent, lib, ignore=shutil.ignore_patterns("*.pyc"))
    nbdir = Path(pipeline.REPO_ROOT) / "notebooks"
    prof = tmp_path / "all.yaml"
    prof.write_text("name: t\ndevice: cpu\n")
    r = _runner(tmp_path, prof, nbdir, lib_dir=lib)
    closures = {
        s: {
            p.relative_to(lib).as_posix()
            for p in library_closure(lib, notebook_imports(nbdir / nb))
        }
        for s, nb in NOTEBOOKS.items()
    }
    only04 = sorted(
        m
        for m in closures["evaluate"]
        if all(m not in c for s, c in closures.items() if s != "evaluate")
    )
    assert "stages/evaluate.py" in only04
    for stage in NOTEBOOKS:
        assert f"stages/{stage}.py" in closures[stage], stage

    def rerun_after(edit: str) -> list[str]:
        plan = r.plan()
        r._save_manifest({"stages": {i.stage: {"status": "ok", "key": i.key} for i in plan}})
        (lib / edit).write_text((lib / edit).read_text() + "# edited\n")
        return [i.stage for i in r.plan() if i.will_run]

    for module in only04:
        assert rerun_after(module) == ["evaluate", "report"], module
    assert rerun_after("stages/report.py") == ["report"]
    assert rerun_after("stages/compress.py") == ["compress", "evaluate", "report"]
    assert rerun_after("params.py") == list(NOTEBOOKS)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_run_records_the_commit_before_it_writes(tmp_path: Path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    (repo / "figs" / "t").mkdir(parents=True)
    (repo / "figs" / "t" / "plot.png").write_bytes(b"old")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    head = _git(repo, "rev-parse", "HEAD")
    monkeypatch.setattr(runs, "REPO_ROOT", repo)
    monkeypatch.delenv(runs.GIT_COMMIT_ENV, raising=False)
    # the stage rewrites a tracked figure and records provenance from inside its kernel
    extra = (
        "\nfrom codebench.runs import provenance\n"
        "pathlib.Path(figures_dir, 'plot.png').write_bytes(b'new')\n"
        "(rd / f'prov-{STAGE}.json').write_text(json.dumps(provenance()))\n"
    )
    nbs = work_notebooks(tmp_path / "nbs", n=1, pause=0, extra="import json" + extra)
    prof = profile(tmp_path)
    r = Runner(
        prof,
        runs_root=tmp_path / "runs",
        figures_root=repo / "figs",
        notebooks_dir=nbs,
        log=lambda _: None,
    )
    manifest = r.run()
    assert _git(repo, "status", "--porcelain"), "the run did rewrite a tracked file"
    assert manifest["provenance"]["git_commit"] == head
    for stage in ("model", "data"):
        prov = json.loads((tmp_path / "runs" / "t" / f"prov-{stage}.json").read_text())
        assert prov["git_commit"] == head, "the stages record the run's commit, not +dirty"
    # outside a run: the run's own outputs can be left out of the dirty check
    assert runs.git_commit() == head + "+dirty"
    assert runs.git_commit(exclude=(repo / "figs" / "t",)) == head


def test_progress_lines_name_stage_elapsed_and_section(tmp_path: Path) -> None:
    nbs = work_notebooks(tmp_path / "nbs", n=4, pause=0.3)
    lines: list[str] = []
    r = _runner(
        tmp_path, profile(tmp_path, stages=("model",)), nbs, log=lines.append, progress_every=0.25
    )
    r.run()
    prog = [ln for ln in lines if ln.startswith("[00_base_model] ") and ", cell " in ln]
    assert any(ln.endswith("cell 4/5: Work") for ln in prog), lines
    assert any(ln.endswith("cell 1/5: model") for ln in prog), lines
    assert len(prog) >= 3, "a heartbeat while a long cell runs"
    assert lines[-2].startswith("[00_base_model] done in")
