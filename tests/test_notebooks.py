"""Every notebook is thin and parameterized: a `parameters` cell, no committed outputs, and
(for stage notebooks) defaults for exactly the common keys plus its profile section's fields."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from codebench.params import COMMON_KEYS, SECTION_MODELS
from codebench.pipeline import NOTEBOOKS

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(NB_DIR.glob("*.ipynb"))
STAGE_OF = {v: k for k, v in NOTEBOOKS.items()}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _param_names(path: Path) -> set[str]:
    cells = [c for c in _cells(path) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, (
        f"{path.name}: expected exactly one cell tagged 'parameters', found {len(cells)}"
    )
    tree = ast.parse("".join(cells[0]["source"]))
    names = set()
    for node in tree.body:
        assert isinstance(node, ast.Assign | ast.AnnAssign), (
            f"{path.name}: parameters cell must hold only assignments"
        )
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_stage_notebooks_exist() -> None:
    missing = [nb for nb in NOTEBOOKS.values() if not (NB_DIR / nb).is_file()]
    assert not missing, f"stage notebooks missing: {missing}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    for i, c in enumerate(_cells(path)):
        if c["cell_type"] == "code":
            assert not c.get("outputs") and c.get("execution_count") is None, (
                f"{path.name} cell {i} has outputs"
            )


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_parameters_cell_and_kernel(path: Path) -> None:
    names = _param_names(path)
    assert set(COMMON_KEYS) <= names, (
        f"{path.name}: parameters cell lacks {set(COMMON_KEYS) - names}"
    )
    assert json.loads(path.read_text())["metadata"]["kernelspec"]["name"] == "codebench"


@pytest.mark.parametrize("path", [p for p in ALL if p.name in STAGE_OF], ids=lambda p: p.name)
def test_stage_parameters_match_profile_section(path: Path) -> None:
    section = SECTION_MODELS[STAGE_OF[path.name]]
    names = _param_names(path) - set(COMMON_KEYS)
    fields = set(section.model_fields)
    assert names == fields, (
        f"{path.name}: parameters {sorted(names ^ fields)} differ from {section.__name__}"
    )


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_papermill_parses_every_parameter(path: Path) -> None:
    """papermill must see every parameter (a comment it cannot parse hides one from it)."""
    import papermill

    seen = set(papermill.inspect_notebook(str(path)))
    assert seen == _param_names(path), (
        f"{path.name}: papermill cannot parse {sorted(_param_names(path) - seen)}"
    )


PROFILE = Path(__file__).resolve().parents[1] / "params" / "smoke.yaml"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_defaults_equal_the_smoke_profile(path: Path) -> None:
    """Run All in JupyterLab after `make reproduce` reads ../runs/smoke with the smoke profile's
    values; `python -m codebench.nbparams` rewrites them after a profile change."""
    from codebench import nbparams

    assert path.name in nbparams.STAGE_NOTEBOOKS, f"{path.name}: add it to nbparams.STAGE_NOTEBOOKS"
    cell = nbparams.parameters_cell(json.loads(path.read_text()))
    have = nbparams.cell_defaults("".join(cell["source"]))
    want = nbparams.expected_defaults(PROFILE, path.name)
    differ = {k: (have.get(k, "<missing>"), v) for k, v in want.items() if not nbparams._same(have.get(k), v)}  # fmt: skip
    assert not differ, (
        f"{path.name} defaults differ from {PROFILE.name} (notebook, profile): {differ}; "
        f"run `python -m codebench.nbparams {PROFILE.relative_to(PROFILE.parents[1])}`"
    )
    assert have["run_dir"] == "../runs/smoke" and have["figures_dir"] == "../figures/smoke"


def test_sync_rewrites_values_and_keeps_comments() -> None:
    from codebench import nbparams

    src = (
        'profile = "notebook"              # run name\n'
        "limit = 40                        # records\n"
        'tiny = {\n    "steps": 400,     # optimizer steps\n    "lr": 0.005,\n}\n'
        'variants = ["a",\n            "b"]  # two lines\n'
    )
    new, changed = nbparams.sync_source(
        src,
        {"profile": "smoke", "limit": 40, "tiny": {"steps": 300, "lr": 0.005},
         "variants": ["a"], "extra": None},
    )  # fmt: skip
    assert changed == ["profile", "tiny", "variants", "extra"]
    assert new == (
        'profile = "smoke"                 # run name\n'
        "limit = 40                        # records\n"
        'tiny = {\n    "steps": 300,     # optimizer steps\n    "lr": 0.005,\n}\n'
        'variants = ["a"]  # two lines\n'
        "extra = None\n"
    )
    assert nbparams.cell_defaults(new)["tiny"] == {"steps": 300, "lr": 0.005}


def test_missing_run_names_the_command(tmp_path: Path) -> None:
    from codebench import nbparams

    with pytest.raises(nbparams.RunMissing, match=r"Run `make reproduce` in the project root"):
        nbparams.require_run(tmp_path / "runs" / "smoke", "playground")
    (tmp_path / "runs" / "smoke" / "models" / "base").mkdir(parents=True)
    nbparams.require_run(tmp_path / "runs" / "smoke", "playground")
