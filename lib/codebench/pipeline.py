"""The papermill runner: execute stage notebooks in order, skip what is already done.

Each stage has a key: a hash of its notebook's cells, its resolved parameters, the keys of
the stages it reads from, and the library's source. A stage whose key matches the last
successful run is skipped. A failing cell stops the run and names the notebook, the cell and
the executed notebook's path; the manifest records every stage (key, status, duration,
versions, seed, commit) and is rewritten atomically after each stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from codebench import params as P
from codebench.paths import REPO_ROOT, DataDirError, data_dir
from codebench.records import write_json
from codebench.runs import RunLayout, provenance

KERNEL_NAME = "codebench"
NOTEBOOKS: dict[str, str] = {
    "model": "00_base_model.ipynb",
    "data": "01_build_data.ipynb",
    "finetune": "02_finetune.ipynb",
    "compress": "03_compress.ipynb",
    "evaluate": "04_evaluate.ipynb",
    "report": "05_report.ipynb",
}
UPSTREAM: dict[str, tuple[str, ...]] = {
    "model": (),
    "data": ("model",),
    "finetune": ("model", "data"),
    "compress": ("model", "finetune"),
    "evaluate": ("model", "data", "finetune", "compress"),
    "report": ("model", "data", "finetune", "compress", "evaluate"),
}


class StageFailed(RuntimeError):
    """A stage notebook failed; the message names notebook, cell and executed path."""


@dataclass
class Runner:
    """Runs one profile's stages. `notebooks` maps stage -> notebook path (tests override it)."""

    profile_path: Path
    runs_root: Path = Path("runs")
    figures_root: Path = Path("figures")
    notebooks_dir: Path = REPO_ROOT / "notebooks"
    notebooks: dict[str, Path] = field(default_factory=dict)
    log: Callable[[str], None] = print
    lib_dir: Path = Path(__file__).resolve().parent

    def __post_init__(self) -> None:
        self.profile = P.load_profile(self.profile_path)
        self.layout = RunLayout(
            Path(self.runs_root).resolve() / self.profile.name,
            Path(self.figures_root).resolve() / self.profile.name,
        )
        for stage, nb in NOTEBOOKS.items():
            self.notebooks.setdefault(stage, Path(self.notebooks_dir) / nb)

    # ------------------------------------------------------------------ keys
    def stage_parameters(self, stage: str) -> dict:
        """The literals injected into a stage notebook: common keys plus its section."""
        prof = self.profile
        try:
            ddir: str | None = str(data_dir(prof.data_dir))
        except DataDirError:
            ddir = prof.data_dir
        common = {
            "profile": prof.name,
            "seed": prof.seed,
            "device": prof.device,
            "data_dir": ddir,
            "run_dir": str(self.layout.root),
            "figures_dir": str(self.layout.figures),
        }
        section = getattr(prof, stage).model_dump(mode="json")
        return {**common, **section}

    def stage_key(self, stage: str, upstream_keys: dict[str, str]) -> str:
        """Content hash deciding whether a stage must rerun."""
        h = hashlib.sha256()
        h.update(_notebook_digest(self.notebooks[stage]).encode())
        h.update(json.dumps(self.stage_parameters(stage), sort_keys=True).encode())
        for up in UPSTREAM[stage]:
            h.update(f"{up}={upstream_keys.get(up, '-')}".encode())
        h.update(_tree_digest(self.lib_dir).encode())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ manifest
    def load_manifest(self) -> dict:
        try:
            return json.loads(self.layout.manifest.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"profile": self.profile.name, "stages": {}}

    def _save_manifest(self, manifest: dict) -> None:
        manifest["profile"] = self.profile.name
        manifest["profile_path"] = str(self.profile_path)
        write_json(self.layout.manifest, manifest)

    # ------------------------------------------------------------------ running
    def plan(
        self, only: list[str] | None = None, force: bool = False
    ) -> list[tuple[str, str, bool]]:
        """[(stage, key, will_run)] for the enabled stages, in order."""
        manifest = self.load_manifest()["stages"]
        enabled = self.profile.enabled_stages()
        if only:
            unknown = [s for s in only if s not in NOTEBOOKS]
            if unknown:
                raise P.ProfileError(
                    f"--only: unknown stage(s) {unknown} (stages: {', '.join(NOTEBOOKS)})"
                )
            off = [s for s in only if s not in enabled]
            if off:
                raise P.ProfileError(
                    f"{self.profile_path}: stages: {off} not enabled in this profile"
                )
        keys: dict[str, str] = {}
        out = []
        for stage in enabled:
            key = self.stage_key(stage, keys)
            keys[stage] = key
            prev = manifest.get(stage, {})
            selected = not only or stage in only
            cached = prev.get("status") == "ok" and prev.get("key") == key
            if selected and (force or not cached):
                out.append((stage, key, True))
            else:
                needed = any(stage in _ancestors(s) for s in (only or []))
                if not cached and needed:
                    raise StageFailed(
                        f"stage '{stage}' is out of date or never ran, and --only {' '.join(only or [])} needs it: "
                        f"run `codebench reproduce {self.profile_path} --only {stage}` first (or drop --only)"
                    )
                out.append((stage, key, False))
        return out

    def run(self, only: list[str] | None = None, force: bool = False) -> dict:
        """Run the plan; return the manifest. Raises StageFailed on the first failing stage."""
        ensure_kernel()
        plan = self.plan(only, force)
        manifest = self.load_manifest()
        manifest["provenance"] = provenance(self.profile.seed)
        t_all = time.monotonic()
        for stage, key, will_run in plan:
            name = Path(self.notebooks[stage]).stem
            if not will_run:
                self.log(f"[{name}] up to date (key {key}), skipped")
                continue
            self.log(f"[{name}] running ...")
            entry = {"key": key, "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
            manifest["stages"][stage] = entry
            self._save_manifest(manifest)
            t0 = time.monotonic()
            try:
                out_nb = self._execute(stage)
                entry.update(status="ok", notebook=str(out_nb))
            except StageFailed as e:
                entry.update(
                    status="failed", error=str(e), duration_s=round(time.monotonic() - t0, 2)
                )
                self._save_manifest(manifest)
                self.log(f"[{name}] FAILED after {entry['duration_s']:.1f}s")
                raise
            entry["duration_s"] = round(time.monotonic() - t0, 2)
            self._save_manifest(manifest)
            self.log(f"[{name}] done in {_fmt_secs(entry['duration_s'])}")
        self.log(
            f"[{self.profile.name}] all stages done in {_fmt_secs(time.monotonic() - t_all)}; figures in {self.layout.figures}"
        )
        return manifest

    def _execute(self, stage: str) -> Path:
        import papermill as pm
        from papermill.exceptions import PapermillExecutionError

        src = Path(self.notebooks[stage])
        if not src.is_file():
            raise StageFailed(f"stage '{stage}': notebook {src} not found")
        out = self.layout.notebooks / src.name
        out.parent.mkdir(parents=True, exist_ok=True)
        self.layout.figures.mkdir(parents=True, exist_ok=True)
        try:
            pm.execute_notebook(
                str(src),
                str(out),
                parameters=self.stage_parameters(stage),
                kernel_name=KERNEL_NAME,
                cwd=str(src.parent),
                progress_bar=False,
                log_output=True,
            )
        except PapermillExecutionError as e:
            first = next((ln for ln in (e.source or "").splitlines() if ln.strip()), "")
            raise StageFailed(
                f"stage '{stage}' failed in {src}, cell {_source_cell_number(out, e.cell_index)} "
                f"(In [{e.exec_count}]: {first.strip()[:80]}): {e.ename}: {e.evalue}\n  executed notebook: {out}"
            ) from None
        except Exception as e:  # dead kernel, timeouts, missing kernel
            raise StageFailed(
                f"stage '{stage}' failed running {src}: {type(e).__name__}: {e}\n  executed notebook: {out}"
            ) from None
        return out


def _ancestors(stage: str) -> set[str]:
    """Every stage that `stage` reads from, directly or not."""
    out: set[str] = set()
    for up in UPSTREAM[stage]:
        out |= {up} | _ancestors(up)
    return out


def ensure_kernel() -> None:
    """Make sure the `codebench` kernelspec exists, pointing at this interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        return
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (codebench)", prefix=sys.prefix)


def _source_cell_number(executed: Path, cell_index: int) -> int:
    """1-based number of the failing cell in the source notebook (papermill's injected cell skipped)."""
    try:
        cells = json.loads(Path(executed).read_text())["cells"]
        injected = sum(
            "injected-parameters" in c.get("metadata", {}).get("tags", [])
            for c in cells[:cell_index]
        )
    except (OSError, ValueError, KeyError):
        injected = 0
    return cell_index - injected + 1


def _notebook_digest(path: Path) -> str:
    """Hash of a notebook's cell types and sources (outputs and metadata do not count)."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "missing"
    except json.JSONDecodeError as e:
        raise StageFailed(
            f"{path}: not a valid notebook (JSON error at line {e.lineno}: {e.msg})"
        ) from None
    cells = [(c.get("cell_type"), "".join(c.get("source", ""))) for c in nb.get("cells", [])]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


_TREE_CACHE: dict[str, str] = {}


def _tree_digest(root: Path) -> str:
    """Hash of every .py file below root (the library source)."""
    k = str(root)
    if k not in _TREE_CACHE:
        h = hashlib.sha256()
        for f in sorted(Path(root).rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
        _TREE_CACHE[k] = h.hexdigest()
    return _TREE_CACHE[k]


def _fmt_secs(s: float) -> str:
    return f"{s:.1f}s" if s < 90 else f"{int(s // 60)}m{int(s % 60):02d}s"


def reproduce(
    profile: str | os.PathLike,
    *,
    only: list[str] | None = None,
    force: bool = False,
    **runner_kwargs,
) -> dict:
    """Run a profile end to end (the `codebench reproduce` command's library form)."""
    return Runner(Path(profile), **runner_kwargs).run(only=only, force=force)
