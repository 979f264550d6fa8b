"""The papermill runner: execute stage notebooks in order, skip what is already done.

Each stage has a key: a hash of its notebook's cells, its parameters (paths inside the run,
figures and repository folders written relative to them, so a copied or moved run keeps its
keys), the keys of the stages it reads from, and the source of the library modules the notebook
imports (followed transitively within codebench; an edit to a module no stage uses reruns
nothing). A stage whose key matches the last successful run is skipped. A failing cell stops
the run and names the notebook, the cell and the executed notebook's path.

One process writes a run folder at a time: `run` holds `<run>/.lock` (see `runs.RunLock`) and
records its owner (pid, host, start) in the manifest; a run killed with -9 leaves its lock free,
and the next run marks its unfinished stage `interrupted`. The stage kernels' connection files
live in `<run>/.kernels/` and are cleared when a run starts. The commit is recorded once, before
the run writes anything (`runs.git_commit`). The manifest (key, status, duration, provenance
per stage) is rewritten atomically after each stage.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from codebench import params as P
from codebench.paths import REPO_ROOT, DataDirError, data_dir
from codebench.records import write_json
from codebench.runs import GIT_COMMIT_ENV, RunLayout, RunLock, git_commit, lock_is_held, provenance

try:  # the pre-run checks of codebench.validate (benchmarks, files, devices, disk space)
    from codebench.validate import preflight as _preflight
except ImportError:  # a tree without codebench.validate runs without pre-run checks
    _preflight = None

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
PROGRESS_EVERY_S = 30.0


class StageFailed(RuntimeError):
    """A stage notebook failed; the message names notebook, cell and executed path."""


class PlanItem(NamedTuple):
    """One stage of a plan: its key, whether it runs, and why (`state`)."""

    stage: str
    key: str
    will_run: bool
    state: (
        str  # "would run" | "up to date" | "out of date, not selected" | "never ran, not selected"
    )


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
    wait: float = 0.0  # seconds to wait for another run of this profile to finish
    progress_every: float = PROGRESS_EVERY_S

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

    def key_parameters(self, stage: str) -> dict:
        """The stage parameters as they enter its key: paths inside the run folder, the figures
        folder and the repository written relative to them (`<run>/...`), so a copied or moved
        run, or a moved clone, keeps its keys."""
        roots = [
            (str(self.layout.root), "<run>"),
            (str(self.layout.figures), "<figures>"),
            (str(REPO_ROOT.resolve()), "<repo>"),
        ]

        def rel(v: Any) -> Any:
            if isinstance(v, str):
                for root, tag in roots:
                    if v == root or v.startswith(root + os.sep):
                        return tag + v[len(root) :]
                return v
            if isinstance(v, dict):
                return {k: rel(x) for k, x in v.items()}
            if isinstance(v, list):
                return [rel(x) for x in v]
            return v

        return rel(self.stage_parameters(stage))

    def stage_key(self, stage: str, upstream_keys: dict[str, str]) -> str:
        """Content hash deciding whether a stage must rerun."""
        h = hashlib.sha256()
        nb = Path(self.notebooks[stage])
        h.update(_notebook_digest(nb).encode())
        h.update(json.dumps(self.key_parameters(stage), sort_keys=True).encode())
        for up in UPSTREAM[stage]:
            h.update(f"{up}={upstream_keys.get(up, '-')}".encode())
        h.update(library_digest(self.lib_dir, notebook_imports(nb)).encode())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ manifest
    def load_manifest(self) -> dict:
        """The manifest; a stage left `running` by a run that is no longer alive reads
        `interrupted`."""
        try:
            manifest = json.loads(self.layout.manifest.read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            manifest = {}
        if not isinstance(manifest, dict) or not isinstance(manifest.get("stages"), dict):
            manifest = {"profile": self.profile.name, "stages": {}}
        if not lock_is_held(self.layout.lock):  # no live owner: nothing is running
            _mark_interrupted(manifest)
        return manifest

    def _save_manifest(self, manifest: dict) -> None:
        manifest["profile"] = self.profile.name
        manifest["profile_path"] = str(self.profile_path)
        write_json(self.layout.manifest, manifest)

    # ------------------------------------------------------------------ running
    def plan(self, only: list[str] | None = None, force: bool = False) -> list[PlanItem]:
        """One PlanItem per enabled stage, in order."""
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
                out.append(PlanItem(stage, key, True, "would run"))
                continue
            if cached:
                out.append(PlanItem(stage, key, False, "up to date"))
                continue
            if any(stage in _ancestors(s) for s in (only or [])):
                raise StageFailed(
                    f"stage '{stage}' is out of date or never ran, and --only {' '.join(only or [])} "
                    f"needs it: run `codebench reproduce {self.profile_path} --only {stage}` first "
                    "(or drop --only)"
                )
            why = "out of date" if prev.get("status") else "never ran"
            out.append(PlanItem(stage, key, False, f"{why}, not selected"))
        return out

    def run(self, only: list[str] | None = None, force: bool = False) -> dict:
        """Run the plan; return the manifest. Raises StageFailed on the first failing stage,
        runs.RunLocked when another live process writes this run folder."""
        if _preflight is not None:
            _preflight(
                self.profile,
                path=self.profile_path,
                run_dir=self.layout.root,
                figures_dir=self.layout.figures,
            )
        # the commit before this run writes anything (its figures may be tracked files)
        commit = git_commit(exclude=(self.layout.root, self.layout.figures))
        lock = RunLock(self.layout.lock).acquire(wait=self.wait)
        try:
            with _environ({GIT_COMMIT_ENV: commit or ""}):
                return self._run_locked(lock, only, force)
        finally:
            lock.release()

    def _run_locked(self, lock: RunLock, only: list[str] | None, force: bool) -> dict:
        # we hold the lock: whatever a previous owner left is from a dead process
        shutil.rmtree(self.layout.kernels, ignore_errors=True)
        self.layout.kernels.mkdir(parents=True, exist_ok=True)
        ensure_kernel()
        manifest = self.load_manifest()
        _mark_interrupted(manifest)
        plan = self.plan(only, force)
        manifest.update(owner=lock.owner, state="running", provenance=provenance(self.profile.seed))
        self._save_manifest(manifest)
        t_all = time.monotonic()
        for item in plan:
            stage, key = item.stage, item.key
            name = Path(self.notebooks[stage]).stem
            if not item.will_run:
                self.log(f"[{name}] {item.state} (key {key}), skipped")
                continue
            entry = {"key": key, "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
            manifest["stages"][stage] = entry
            self._save_manifest(manifest)
            t0 = time.monotonic()
            try:
                out_nb = self._execute(stage)
                entry.update(status="ok", notebook=str(out_nb.relative_to(self.layout.root)))
            except BaseException as e:
                entry.update(
                    status="failed" if isinstance(e, StageFailed) else "interrupted",
                    duration_s=round(time.monotonic() - t0, 2),
                )
                if isinstance(e, StageFailed):
                    entry["error"] = str(e)
                manifest["state"] = entry["status"]
                self._save_manifest(manifest)
                if isinstance(e, StageFailed):
                    self.log(f"[{name}] FAILED after {_fmt_secs(entry['duration_s'])}")
                raise
            entry["duration_s"] = round(time.monotonic() - t0, 2)
            self._save_manifest(manifest)
            self.log(f"[{name}] done in {_fmt_secs(entry['duration_s'])}")
        manifest["state"] = "finished"
        self._save_manifest(manifest)
        self.log(
            f"[{self.profile.name}] all stages done in {_fmt_secs(time.monotonic() - t_all)}; "
            f"figures in {self.layout.figures}"
        )
        return manifest

    def _execute(self, stage: str) -> Path:
        import papermill as pm
        from papermill.exceptions import PapermillExecutionError

        src = Path(self.notebooks[stage])
        if not src.is_file():
            raise StageFailed(f"stage '{stage}': notebook {src} not found")
        out = self.layout.notebooks / src.name
        kernel_log = out.with_suffix(".kernel.log")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.layout.figures.mkdir(parents=True, exist_ok=True)
        try:
            with _StageProgress(src, self.log, self.progress_every):
                pm.execute_notebook(
                    str(src),
                    str(out),
                    parameters=self.stage_parameters(stage),
                    kernel_name=KERNEL_NAME,
                    cwd=str(src.parent),
                    progress_bar=False,
                    log_output=True,
                    kernel_manager_class=_kernel_manager(kernel_log, self.layout.kernels),
                )
        except PapermillExecutionError as e:
            first = next((ln for ln in (e.source or "").splitlines() if ln.strip()), "")
            raise StageFailed(
                f"stage '{stage}' failed in {src}, cell {_source_cell_number(out, e.cell_index)} "
                f"(In [{e.exec_count}]: {first.strip()[:80]}): {e.ename}: {_one_line(e.evalue)} "
                f"(executed notebook: {out})"
            ) from None
        except Exception as e:  # dead kernel, timeouts, missing kernel
            raise StageFailed(
                f"stage '{stage}' failed running {src}: {type(e).__name__}: {_one_line(e)} "
                f"(executed notebook: {out}; kernel log: {kernel_log})"
            ) from None
        return out


_MAX_SOCKET_PATH = 107  # bytes in a Unix socket path (sun_path, with its NUL)


def _kernel_manager(log_path: Path, kernels_dir: Path) -> type:
    """A kernel manager whose connection file lives in `kernels_dir` (jupyter_client would
    put it in /tmp, where a killed run leaves it), and whose kernel process writes its own
    stdout/stderr (ipykernel's transport warnings, shutdown tracebacks, native libraries'
    prints) to `log_path` instead of the console. Cell output still reaches the notebook and
    the console through papermill."""
    from jupyter_client.manager import AsyncKernelManager

    class _LoggedKernelManager(AsyncKernelManager):
        async def _async_start_kernel(self, **kw: Any) -> None:
            if not self.connection_file:
                self.connection_file = str(kernels_dir / f"kernel-{uuid.uuid4().hex[:12]}.json")
            # IPC sockets beside the connection file, not TCP ports on localhost: nothing to
            # eavesdrop on (ipykernel's "running over TCP without encryption" warning names
            # the cause). A socket path has at most 107 bytes; a deeper run folder keeps TCP.
            ipc = str(Path(self.connection_file).with_suffix("")) + "-ipc"
            if len(os.fsencode(ipc)) + 4 <= _MAX_SOCKET_PATH:
                self.transport, self.ip = "ipc", ipc
            with open(log_path, "ab") as fh:  # the kernel holds its own copy of the descriptor
                kw.setdefault("stdout", fh)
                kw.setdefault("stderr", fh)
                await super()._async_start_kernel(**kw)

        start_kernel = _async_start_kernel

    return _LoggedKernelManager


def _one_line(msg: object, limit: int = 300) -> str:
    text = " ".join(str(msg).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mark_interrupted(manifest: dict) -> None:
    """Stages (and the run) left `running` by a dead process become `interrupted`."""
    for entry in manifest.get("stages", {}).values():
        if isinstance(entry, dict) and entry.get("status") == "running":
            entry["status"] = "interrupted"
    if manifest.get("state") == "running":
        manifest["state"] = "interrupted"


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _StageProgress(logging.Handler):
    """One progress line per stage: elapsed time, cell k/N and the section it is in.

    Papermill announces each cell on its logger ("Executing Cell N"); this handler reads that
    and prints `[02_finetune] 2m30s, cell 9/13: Train` when a new section (markdown heading)
    starts, and again every `every` seconds while a section runs long. Nothing else.
    """

    _CELL = re.compile(r"Executing Cell (\d+)")

    def __init__(self, notebook: Path, log: Callable[[str], None], every: float):
        super().__init__(logging.INFO)
        self.stage_name = notebook.stem
        self.sections, self.param_idx = _cell_sections(notebook)
        self.log_ = log
        self.every = every
        self.cell = 0
        self.t0 = time.monotonic()
        self.last_line = self.t0
        self.last_section: str | None = None
        self._stop = threading.Event()
        self._mutex = threading.Lock()

    def line(self) -> str:
        n = len(self.sections)
        k = min(max(self.cell, 1), n)
        what = self.sections[k - 1] if n else ""
        return f"[{self.stage_name}] {_fmt_secs(time.monotonic() - self.t0)}, cell {k}/{n}: {what}"

    def _print(self) -> None:
        with self._mutex:
            self.last_line = time.monotonic()
            self.log_(self.line())

    def emit(self, record: logging.LogRecord) -> None:
        m = self._CELL.match(str(record.msg))
        if not m or not self.sections:
            return
        self.cell = _source_cell(int(m.group(1)), self.param_idx)
        section = self.sections[min(max(self.cell, 1), len(self.sections)) - 1]
        if section != self.last_section:
            self.last_section = section
            self._print()

    def _tick(self) -> None:
        while not self._stop.wait(min(1.0, self.every)):
            if time.monotonic() - self.last_line >= self.every:
                self._print()

    def __enter__(self) -> _StageProgress:
        self.log_(f"[{self.stage_name}] starting ({len(self.sections)} cells)")
        logger = logging.getLogger("papermill")
        self._old_level = logger.level
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(self)
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        logger = logging.getLogger("papermill")
        logger.removeHandler(self)
        logger.setLevel(self._old_level)


def _cell_sections(notebook: Path) -> tuple[list[str], int]:
    """Per source cell, the markdown heading it sits under ('setup' before the first one),
    and the index of the `parameters` cell (-1 when there is none)."""
    try:
        cells = json.loads(Path(notebook).read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return [], -1
    out, current, param_idx = [], "setup", -1
    for i, c in enumerate(cells):
        src = "".join(c.get("source", ""))
        if c.get("cell_type") == "markdown":
            heading = next((ln for ln in src.splitlines() if ln.startswith("#")), "")
            if heading:
                current = heading.lstrip("#").strip()[:60]
        if "parameters" in c.get("metadata", {}).get("tags", []):
            param_idx = i
        out.append(current)
    return out, param_idx


def _source_cell(executed: int, param_idx: int) -> int:
    """1-based source cell number of papermill's 1-based executed cell number (papermill
    inserts its injected-parameters cell after the `parameters` cell, or first)."""
    e = executed - 1
    at = param_idx + 1 if param_idx >= 0 else 0
    if e < at:
        return e + 1
    if e == at:
        return max(at, 1)
    return e


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


PACKAGE = "codebench"


def notebook_imports(path: Path) -> set[str]:
    """The codebench modules a notebook's code cells import (IPython magics ignored)."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    out: set[str] = set()
    for c in nb.get("cells", []):
        if c.get("cell_type") != "code":
            continue
        src = "".join(c.get("source", ""))
        src = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines())
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m == PACKAGE or m.startswith(PACKAGE + ".")}


def _is_module(lib_dir: Path, name: str) -> bool:
    return _module_file(lib_dir, name) is not None


def _module_file(lib_dir: Path, module: str) -> Path | None:
    """The source file of a codebench module below lib_dir (package -> its __init__.py)."""
    if not (module == PACKAGE or module.startswith(PACKAGE + ".")):
        return None
    rel = module.split(".")[1:]
    base = Path(lib_dir, *rel)
    if rel and base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _walk_top(tree: ast.AST) -> Iterator[ast.AST]:
    """Nodes executed when a module is imported: everything outside function bodies."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                todo.append(child)


def _module_imports(
    lib_dir: Path, tree: ast.AST, package: str, nodes: Iterator[ast.AST]
) -> set[str]:
    """codebench modules imported by `nodes`, each meaning "this module's code is used":
    `import a.b` -> a.b; `from a import b` -> a.b when b is a module, else a; relative imports
    resolved against `package`; `import_module(f"codebench.x.{name}")` -> codebench.x.*;
    string constants naming a codebench module, or a sibling `*.py` file (a script started
    by path), and bare imports of sibling files count too."""
    out: set[str] = set()
    siblings = {p.stem for p in Path(lib_dir, *package.split(".")[1:]).glob("*.py")}
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                out.add(f"{package}.{a.name}" if a.name in siblings else a.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parts, *([base] if base else [])])
            elif base in siblings:
                base = f"{package}.{base}"
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if _is_module(lib_dir, sub) else base)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            v = node.value
            if v.startswith(PACKAGE + ".") and _is_module(lib_dir, v):
                out.add(v)
            elif v.endswith(".py") and v[:-3] in siblings:
                out.add(f"{package}.{v[:-3]}")
        elif isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if (
                isinstance(head, ast.Constant)
                and isinstance(head.value, str)
                and head.value.startswith(PACKAGE + ".")
                and head.value.endswith(".")
            ):
                out.add(head.value + "*")
    return {m for m in out if m == PACKAGE or m.startswith(PACKAGE + ".")}


_PARSED: dict[tuple[str, float, int], tuple[bytes, set[str], set[str]]] = {}


def _module_deps(lib_dir: Path, f: Path) -> tuple[bytes, set[str], set[str]]:
    """(source, modules its code uses anywhere, modules imported when it is imported)."""
    st = f.stat()
    k = (str(f), st.st_mtime, st.st_size)
    if k not in _PARSED:
        src = f.read_bytes()
        rel = f.relative_to(lib_dir).with_suffix("").parts
        package = ".".join([PACKAGE, *rel[:-1]])
        try:
            tree = ast.parse(src)
        except SyntaxError:
            _PARSED[k] = (src, set(), set())
        else:
            _PARSED[k] = (
                src,
                _module_imports(lib_dir, tree, package, ast.walk(tree)),
                _module_imports(lib_dir, tree, package, _walk_top(tree)),
            )
    return _PARSED[k]


def library_closure(lib_dir: Path, modules: set[str]) -> list[Path]:
    """Source files a stage's code can run, from the modules its notebook imports.

    A module that is used counts with every codebench module it imports anywhere (function
    bodies included), transitively. A package that is only passed through on the way to a
    submodule (`codebench.compress` for `codebench.compress.variants`) counts with the imports
    its `__init__` runs at import time, not the lazy imports inside its functions.
    """
    lib_dir = Path(lib_dir)
    used: set[str] = set()
    inits: set[str] = set()
    files: set[Path] = set()
    todo: list[tuple[str, bool]] = [(m, True) for m in modules]
    while todo:
        name, full = todo.pop()
        if name.endswith(".*"):  # every module of a package (dynamic import by f-string)
            d = Path(lib_dir, *name[:-2].split(".")[1:])
            todo += [(f"{name[:-2]}.{p.stem}", True) for p in sorted(d.glob("*.py"))]
            continue
        if name in used or (not full and name in inits):
            continue
        f = _module_file(lib_dir, name)
        if f is None:
            continue
        (used if full else inits).add(name)
        files.add(f)
        parts = name.split(".")
        todo += [(".".join(parts[:i]), False) for i in range(1, len(parts))]
        src, anywhere, at_import = _module_deps(lib_dir, f)
        todo += [(m, True) for m in sorted(anywhere if full else at_import)]
    return sorted(files)


def library_digest(lib_dir: Path, modules: set[str]) -> str:
    """Hash of the library source a stage uses (see `library_closure`)."""
    h = hashlib.sha256()
    for f in library_closure(lib_dir, modules):
        h.update(str(f.relative_to(lib_dir)).encode() + b"\0")
        h.update(_module_deps(Path(lib_dir), f)[0])
    return h.hexdigest()


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
