"""Run-folder layout and provenance.

runs/<profile>/
  models/<variant>/          base, lora, merged, and one folder per compressed variant
  data/                      01_build_data outputs
  eval/<variant>/<bench>/    samples.jsonl, results.json
  results/                   per-stage summary JSON (base_model.json, compress.json, ...)
  notebooks/                 executed notebooks
  manifest.json              one entry per stage: key, status, duration, versions, seed, commit
  .lock                      held by the process writing this run (owner pid, host, start)
  .kernels/                  the stage kernels' connection files (removed when a run starts)
figures/<profile>/           PNG figures
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import time
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

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def kernels(self) -> Path:
        return self.root / ".kernels"

    def variants(self) -> list[str]:
        """Model variants present in this run (folders under models/ with a variant record)."""
        if not self.models.is_dir():
            return []
        return sorted(d.name for d in self.models.iterdir() if (d / VARIANT_INFO).is_file())


def run_relative(path: str | Path, run_root: str | Path) -> str:
    """`path` relative to the run folder when it lies inside it (so a moved run still names
    it), else unchanged."""
    try:
        return str(Path(path).resolve().relative_to(Path(run_root).resolve()))
    except ValueError:
        return str(path)


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


GIT_COMMIT_ENV = "CODEBENCH_GIT_COMMIT"


def git_commit(exclude: tuple[str | Path, ...] = ()) -> str | None:
    """The repository's HEAD commit (with '+dirty' when tracked files have changes), or None.

    `codebench reproduce` records the commit once, when the run starts and before it writes
    anything, and passes it to its stages in the CODEBENCH_GIT_COMMIT environment variable, so
    the figures a run rewrites do not mark its own results dirty. `exclude` leaves paths (the
    run's own output folders) out of the dirty check.
    """
    if GIT_COMMIT_ENV in os.environ:
        return os.environ[GIT_COMMIT_ENV] or None
    pathspec = ["--", "."]
    for p in exclude:
        with contextlib.suppress(ValueError):
            pathspec.append(f":(exclude){Path(p).resolve().relative_to(REPO_ROOT.resolve())}")
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", *pathspec],
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


def model_content_key(folder: str | os.PathLike) -> str:
    """SHA-256 (16 hex digits) of a model folder's files: relative paths and contents
    (weights, config, tokenizer), so two folders with the same files get the same key
    wherever they live, and any change to a file changes it."""
    root = Path(folder)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(file_sha256(f).encode())
    return h.hexdigest()[:16]


class RunLocked(RuntimeError):
    """Another live process is writing this run folder (the message names it)."""


def _describe_owner(owner: dict) -> str:
    if not owner:
        return "another process"
    return (
        f"codebench pid {owner.get('pid', '?')} on {owner.get('host', '?')} "
        f"(started {owner.get('started', '?')})"
    )


def read_owner(lock_path: Path) -> dict:
    """The owner recorded in a run's lock file ({} when there is none or it is unreadable)."""
    try:
        owner = json.loads(Path(lock_path).read_text(encoding="utf-8"))
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return {}


def lock_is_held(lock_path: Path) -> bool:
    """True when a live process holds the run lock (a lock left by a dead process is free)."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class RunLock:
    """One writer per run folder: an flock on `<run>/.lock`, held while the process lives.

    The kernel releases the lock when its owner dies (kill -9 included), so a dead owner's
    lock is taken over by the next run. While the owner lives, `acquire` refuses with a
    RunLocked error naming the owner's pid, host and start time, or with `wait` seconds
    waits that long for it to finish first.
    """

    def __init__(self, lock_path: Path):
        self.path = Path(lock_path)
        self._fd = -1
        self.owner: dict = {}

    def acquire(self, wait: float = 0.0, poll: float = 0.5) -> RunLock:
        from codebench.records import write_error

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise write_error(self.path.parent, e, "run folder not writable") from None
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    owner = read_owner(self.path)
                    raise RunLocked(
                        f"{self.path.parent} is being written by {_describe_owner(owner)}; "
                        "wait for it to finish (or use --wait SECONDS), or stop that process"
                    ) from None
                time.sleep(poll)
        self.owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(self.owner) + "\n").encode(), 0)
        except OSError as e:
            os.close(fd)
            raise write_error(self.path, e) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
