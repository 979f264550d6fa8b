"""Where things live: the benchmark data folder, the user cache and the repository root.

The benchmark data folder is resolved in this order (`data_dir`):

1. the profile's `data_dir`, when given: it must exist (an error otherwise, never a fallback);
2. `$CODEBENCH_DATA`, when set: it must exist (an error otherwise, never a fallback);
3. `../shared/data` next to the repository, when present;
4. the user data folder (`user_data_dir()`: `$CODEBENCH_CACHE/data`, default
   `~/.cache/codebench/data`), filled on first use with the data shipped inside the package
   (`codebench/data/`, xz-compressed, each file checked against the SHA-256 in its
   MANIFEST.json). Sets not shipped are fetched there on first use (`codebench.fetch`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import lzma
import os
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DIR = Path(__file__).resolve().parent / "data"


class DataDirError(FileNotFoundError):
    """The benchmark data folder could not be found (or the shipped data is damaged)."""


def cache_dir() -> Path:
    """codebench's user cache: $CODEBENCH_CACHE, else $XDG_CACHE_HOME/codebench, else
    ~/.cache/codebench."""
    if os.environ.get("CODEBENCH_CACHE"):
        return Path(os.environ["CODEBENCH_CACHE"]).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "codebench").resolve()


def user_data_dir() -> Path:
    """The user data folder: shipped data is unpacked and missing sets are fetched here."""
    return cache_dir() / "data"


def shared_data_dir(repo_root: Path | None = None) -> Path:
    """The `../shared/data` folder next to the repository (it may not exist)."""
    return Path(repo_root or REPO_ROOT).parent / "shared" / "data"


def data_source(explicit: str | os.PathLike | None = None) -> tuple[Path, str]:
    """(folder, where it came from) for the benchmark data folder; see the module doc.

    `where` is 'data_dir', '$CODEBENCH_DATA', '../shared/data' or 'shipped'. A folder the user
    named (profile or environment) that does not exist raises DataDirError: never a fallback.
    """
    if explicit is not None and str(explicit).strip():
        p = Path(explicit).expanduser().resolve()
        if not p.is_dir():
            raise DataDirError(
                f"data_dir: {p} {'is not a folder' if p.exists() else 'does not exist'} "
                "(set it to an existing data folder, or remove it to use the data shipped with "
                "codebench)"
            )
        return p, "data_dir"
    env = os.environ.get("CODEBENCH_DATA")
    if env is not None and env.strip():
        p = Path(env).expanduser().resolve()
        if not p.is_dir():
            raise DataDirError(
                f"$CODEBENCH_DATA: {p} {'is not a folder' if p.exists() else 'does not exist'} "
                "(point it at an existing data folder, or unset it to use the data shipped with "
                "codebench)"
            )
        return p, "$CODEBENCH_DATA"
    shared = shared_data_dir()
    if shared.is_dir():
        return shared.resolve(), "../shared/data"
    return ensure_shipped(), "shipped"


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The benchmark data folder (resolution order in the module doc)."""
    return data_source(explicit)[0]


# --------------------------------------------------------------------------- shipped data
@functools.cache
def shipped_manifest() -> dict[str, dict]:
    """{relative path: {set, sha256, size, source, license, what}} of the shipped files."""
    return json.loads((SHIPPED_DIR / "MANIFEST.json").read_text(encoding="utf-8"))["files"]


def shipped_files() -> list[str]:
    """Relative paths (inside a data folder) of the files shipped with codebench."""
    return sorted(shipped_manifest())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while b := fh.read(1 << 20):
            h.update(b)
    return h.hexdigest()


_READY: set[Path] = set()


def ensure_shipped(dest: str | os.PathLike | None = None) -> Path:
    """Unpack the shipped data into `dest` (default `user_data_dir()`) and return it.

    A file already there with its recorded size is kept; a missing or different one is
    decompressed to a temporary name, checked against its SHA-256 and renamed into place
    (so concurrent callers never see a partial file). Raises DataDirError when the folder
    cannot be written or a shipped file does not match its hash.
    """
    dest = Path(dest).expanduser().resolve() if dest else user_data_dir()
    if dest in _READY and all((dest / r).is_file() for r in shipped_manifest()):
        return dest
    for rel, meta in shipped_manifest().items():
        target = dest / rel
        if target.is_file() and target.stat().st_size == meta["size"]:
            continue
        src = SHIPPED_DIR / (rel + ".xz")
        if not src.is_file():
            raise DataDirError(f"shipped data file missing from the package: {src}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        except OSError as e:
            raise DataDirError(
                f"cannot unpack the shipped data into {dest}: {e.strerror or e} "
                "(set $CODEBENCH_CACHE to a writable folder, or $CODEBENCH_DATA to a data folder)"
            ) from None
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, lzma.open(src, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
            if h.hexdigest() != meta["sha256"]:
                raise DataDirError(
                    f"shipped data file {src} is damaged: SHA-256 {h.hexdigest()} differs from "
                    f"{meta['sha256']} in {SHIPPED_DIR / 'MANIFEST.json'} (reinstall codebench)"
                )
            os.replace(tmp, target)
        except (OSError, lzma.LZMAError) as e:
            raise DataDirError(f"cannot unpack {src} into {target}: {e}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    _READY.add(dest)
    return dest


def verify_shipped(dest: str | os.PathLike) -> dict[str, str]:
    """{relative path: 'ok' | 'missing' | 'sha256 differs'} for the shipped files in `dest`."""
    dest = Path(dest)
    out = {}
    for rel, meta in shipped_manifest().items():
        f = dest / rel
        out[rel] = (
            "missing"
            if not f.is_file()
            else ("ok" if _sha256(f) == meta["sha256"] else "sha256 differs")
        )
    return out


def missing_data(files: list[str | os.PathLike]) -> str | None:
    """None when every file exists, else one line naming the missing files and, for files of a
    data folder that `codebench fetch-data` knows, the command that gets them (tests use it to
    skip with the reason)."""
    from codebench.fetch import fetch_command, set_of

    missing = [Path(f) for f in files if not Path(f).is_file()]
    if not missing:
        return None
    hints = []
    for f in missing:
        parts = f.as_posix().split("/")
        for i in range(len(parts) - 1, 0, -1):
            rel = "/".join(parts[i:])
            if s := set_of(rel):
                root = "/".join(parts[:i]) or "/"
                hints.append(fetch_command(root, [s]))
                break
    how = f" (get it with `{'`, `'.join(dict.fromkeys(hints))}`)" if hints else ""
    return f"data not available here: {', '.join(map(str, missing))}{how}"
