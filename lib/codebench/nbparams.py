"""Notebook parameter defaults that continue the quick start.

Each notebook's `parameters` cell holds the values a person gets with Run All in JupyterLab.
They equal the default profile's resolved values (params/smoke.yaml) and point at the run
`make reproduce` wrote (../runs/smoke, ../figures/smoke), so Run All redraws the same figures.
`sync` rewrites those defaults from a profile, keeping every comment; tests/test_notebooks.py
checks that they are in sync:

    python -m codebench.nbparams params/smoke.yaml          # rewrite the notebooks
    python -m codebench.nbparams params/smoke.yaml --check  # exit 1 and list what differs

`require_run` is the one message a notebook gives when the run it reads from is not there.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

from codebench.paths import REPO_ROOT

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DEFAULT_PROFILE = REPO_ROOT / "params" / "smoke.yaml"
STAGE_NOTEBOOKS = {
    "00_base_model.ipynb": "model",
    "01_build_data.ipynb": "data",
    "02_finetune.ipynb": "finetune",
    "03_compress.ipynb": "compress",
    "04_evaluate.ipynb": "evaluate",
    "05_report.ipynb": "report",
    "playground.ipynb": None,  # common keys only
}


def expected_defaults(profile_path: str | Path, notebook: str) -> dict[str, Any]:
    """The values `notebook`'s parameters cell should hold for this profile (JSON types).

    run_dir and figures_dir are relative to notebooks/ (JupyterLab's working directory for
    a notebook), as `make reproduce` lays them out: ../runs/<name>, ../figures/<name>.
    """
    from codebench.params import load_profile

    prof = load_profile(profile_path)
    out: dict[str, Any] = {
        "profile": prof.name,
        "seed": prof.seed,
        "device": prof.device,
        "data_dir": prof.data_dir,
        "run_dir": f"../runs/{prof.name}",
        "figures_dir": f"../figures/{prof.name}",
    }
    stage = STAGE_NOTEBOOKS.get(notebook)
    if stage is not None:
        out |= getattr(prof, stage).model_dump(mode="json")
    return out


def parameters_cell(nb: dict) -> dict:
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def cell_defaults(source: str) -> dict[str, Any]:
    """name -> literal value of every assignment in a parameters cell."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                out[target.id] = ast.literal_eval(node.value)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def literal(value: Any) -> str:
    """Python source for a JSON-typed value, strings in double quotes."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(str(k))}: {literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as a notebook parameter")


def _offsets(source: str) -> list[int]:
    starts, pos = [], 0
    for line in source.splitlines(keepends=True):
        starts.append(pos)
        pos += len(line)
    starts.append(pos)
    return starts


def _edits(node: ast.expr, new: Any, starts: list[int], source: str) -> list[tuple[int, int, str]]:
    """(start, end, text) replacements turning `node`'s value into `new`, keeping comments
    inside dicts (each differing key's value is replaced on its own)."""
    if _same(ast.literal_eval(node), new):
        return []
    if isinstance(node, ast.Dict) and isinstance(new, dict):
        keys = [ast.literal_eval(k) if k is not None else None for k in node.keys]
        if keys == list(new):
            out = []
            for k, v in zip(keys, node.values, strict=True):
                out += _edits(v, new[k], starts, source)
            return out
    start = starts[node.lineno - 1] + node.col_offset
    end = starts[node.end_lineno - 1] + node.end_col_offset
    text = literal(new)
    rest = source[end : starts[node.end_lineno]]
    gap = len(rest) - len(rest.lstrip(" "))
    if rest[gap : gap + 1] == "#":  # keep the comment where it was (2 spaces at least)
        comment_col = node.end_col_offset + gap
        text += " " * max(2, comment_col - (node.col_offset + len(text)))
        end += gap
    return [(start, end, text)]


def sync_source(source: str, expected: dict[str, Any]) -> tuple[str, list[str]]:
    """The parameters cell with `expected` values; and the names that changed or were added."""
    starts = _offsets(source)
    edits, changed, seen = [], [], set()
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        seen.add(name)
        if name in expected:
            e = _edits(node.value, expected[name], starts, source)
            if e:
                edits += e
                changed.append(name)
    for start, end, text in sorted(edits, reverse=True):
        source = source[:start] + text + source[end:]
    missing = [k for k in expected if k not in seen]
    if missing:
        source = (
            source.rstrip("\n") + "\n" + "".join(f"{k} = {literal(expected[k])}\n" for k in missing)
        )
        changed += missing
    return source, changed


def sync(
    profile_path: str | Path = DEFAULT_PROFILE,
    notebooks_dir: str | Path = NOTEBOOKS_DIR,
    write: bool = True,
) -> dict[str, list[str]]:
    """Set every notebook's parameter defaults to the profile's values; {notebook: changed names}."""
    import nbformat

    report = {}
    for name in STAGE_NOTEBOOKS:
        path = Path(notebooks_dir) / name
        if not path.is_file():
            continue
        nb = nbformat.read(path, as_version=4)
        cell = parameters_cell(nb)
        new, changed = sync_source(cell["source"], expected_defaults(profile_path, name))
        if changed:
            report[name] = changed
            if write:
                cell["source"] = new
                path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
    return report


class RunMissing(RuntimeError):
    """The run a notebook reads from is not there yet; the message names the command."""


# what each stage reads from the run, and the stage that writes it
NEEDS = {
    "data": [("models/base", "00_base_model")],
    "finetune": [("models/base", "00_base_model"), ("data", "01_build_data")],
    "compress": [("models/base", "00_base_model")],
    "evaluate": [("models/base", "00_base_model")],
    "report": [("manifest.json", "any stage")],
    "playground": [("models/base", "00_base_model")],
}


def require_run(run_dir: str | Path, stage: str, profile: str = "smoke") -> None:
    """Raise RunMissing with one clear message when `run_dir` lacks what `stage` reads."""
    root = Path(run_dir)
    for rel, writer in NEEDS.get(stage, []):
        if not (root / rel).exists():
            raise RunMissing(
                f"{root.resolve()} has no {rel} yet (written by {writer}). Run `make reproduce` "
                f"in the project root first (or `codebench reproduce params/{profile}.yaml`), "
                "then run this notebook again."
            )


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m codebench.nbparams", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("profile", nargs="?", default=str(DEFAULT_PROFILE))
    ap.add_argument("--notebooks", default=str(NOTEBOOKS_DIR))
    ap.add_argument("--check", action="store_true", help="only report differences (exit 1)")
    args = ap.parse_args(argv)
    changed = sync(args.profile, args.notebooks, write=not args.check)
    for nb, names in changed.items():
        print(f"{nb}: {'differs' if args.check else 'updated'}: {', '.join(names)}")
    if not changed:
        print(f"notebook defaults equal {args.profile}")
    return 1 if (changed and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
