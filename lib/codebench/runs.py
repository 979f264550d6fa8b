"""Run-folder layout and provenance.

runs/<profile>/
  models/<variant>/          base, lora, merged, and one folder per compressed variant
  data/                      01_build_data outputs
  eval/<variant>/<bench>/    samples.jsonl, results.json
  results/                   per-stage summary JSON (base_model.json, compress.json, ...)
  notebooks/                 executed notebooks
  manifest.json              one entry per stage: key, status, duration, versions, seed, commit
figures/<profile>/           PNG figures
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codebench.paths import REPO_ROOT

VARIANT_INFO = "codebench_variant.json"


@dataclass(frozen=True)
class RunLayout:
    """Paths of one profile's run. Directories are created on first use by the writer."""

    root: Path
    figures: Path

    @classmethod
    def for_profile(
        cls, name: str, runs_root: Path | None = None, figures_root: Path | None = None
    ) -> RunLayout:
        runs_root = runs_root or REPO_ROOT / "runs"
        figures_root = figures_root or REPO_ROOT / "figures"
        return cls(Path(runs_root) / name, Path(figures_root) / name)

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model_dir(self, variant: str) -> Path:
        return self.models / variant

    @property
    def data(self) -> Path:
        return self.root / "data"

    def eval_dir(self, variant: str, benchmark: str) -> Path:
        return self.root / "eval" / variant / benchmark

    @property
    def results(self) -> Path:
        return self.root / "results"

    def result_file(self, stage: str) -> Path:
        return self.results / f"{stage}.json"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def variants(self) -> list[str]:
        """Model variants present in this run (folders under models/ with a variant record)."""
        if not self.models.is_dir():
            return []
        return sorted(d.name for d in self.models.iterdir() if (d / VARIANT_INFO).is_file())


def write_variant_info(
    path: Path, *, kind: str, parent: str | None, loader: str = "hf", **extra: Any
) -> None:
    """Describe a saved model variant: what it is, where it came from, how to load it.

    loader: 'hf' (AutoModelForCausalLM.from_pretrained), 'peft' (adapter on `parent`),
    or a module name providing `load_variant(path, device)` (e.g. 'codebench.compress').
    """
    from codebench.records import write_json

    write_json(
        Path(path) / VARIANT_INFO, {"kind": kind, "parent": parent, "loader": loader, **extra}
    )


def read_variant_info(path: Path) -> dict | None:
    f = Path(path) / VARIANT_INFO
    return json.loads(f.read_text()) if f.is_file() else None


PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "peft",
    "trl",
    "accelerate",
    "torchao",
    "papermill",
    "pandas",
    "matplotlib",
    "codebench",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that shape results."""
    out: dict[str, str | None] = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = None
    return out


def git_commit() -> str | None:
    """The repository's HEAD commit (with '+dirty' when the tree has changes), or None."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(seed: int | None = None) -> dict[str, Any]:
    """Versions, platform, commit and seed, for results.json and the manifest."""
    return {
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "seed": seed,
    }


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, for data hashes in results."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
