"""Sweeping up after a sample, inside the sandbox: kill, reap, wipe files and SysV IPC.

Standard library only (runs in the worker). With `kill_all` (the worker has a PID namespace
or a uid of its own) one ``kill(-1, SIGKILL)`` reaches every sample process, including
daemonized grandchildren that called setsid, atomically with respect to fork. Without it
the worker (a child subreaper) kills the sample's process group and every descendant it
finds in /proc, repeatedly, until none is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import stat
import time

from sampleproc import descendants

_IPC_RMID = 0
_LIBC: list[ctypes.CDLL] = []


def _libc() -> ctypes.CDLL:
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def kill_samples(kill_all: bool, pid: int | None = None) -> None:
    """SIGKILL every sample process (never the worker itself)."""
    if kill_all:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(-1, signal.SIGKILL)
        return
    if pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    for _ in range(20):
        found = descendants(os.getpid())
        for d in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(d, signal.SIGKILL)
        if not found:
            return


def reap_all(kill_all: bool, timeout: float = 5.0) -> bool:
    """Reap every child (orphans re-parent to us); True when none is left in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            kill_samples(kill_all)
            time.sleep(0.002)
    return False


def _rm(path: str) -> None:
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)  # fast path; the slow one handles chmod 000
        if not os.path.lexists(path):
            return
        for root, dirs, _files in os.walk(path):  # make every directory removable first
            for d in dirs:
                full = os.path.join(root, d)
                if not os.path.islink(full):
                    with contextlib.suppress(OSError):
                        os.chmod(full, 0o700)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def wipe(tmp: str, extra: list[str], uid: int | None, keep: str = "") -> None:
    """Empty the private tmp (an empty `keep` dir stays); in `extra` dirs remove entries owned
    by `uid`; drop SysV IPC objects of `uid`."""
    for name in os.listdir(tmp):
        path = os.path.join(tmp, name)
        if name == keep and os.path.isdir(path) and not os.path.islink(path):
            try:
                if not os.listdir(path) and stat.S_IMODE(os.lstat(path).st_mode) == 0o700:
                    continue
            except OSError:
                pass
        _rm(path)
    for d in extra if uid is not None else []:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            path = os.path.join(d, name)
            try:
                if os.lstat(path).st_uid == uid:
                    _rm(path)
            except OSError:
                continue
    if uid is not None:
        remove_ipc(uid)


def remove_ipc(uid: int) -> None:
    """Remove SysV shared memory, semaphores and message queues owned by `uid`."""
    for kind, call in (("shm", "shmctl"), ("sem", "semctl"), ("msg", "msgctl")):
        try:
            fd = os.open(f"/proc/sysvipc/{kind}", os.O_RDONLY)
        except OSError:
            continue
        try:
            data = os.read(fd, 1 << 16)
            if data.count(b"\n") < 2:  # only the header line: nothing to remove
                continue
            while chunk := os.read(fd, 1 << 16):
                data += chunk
        finally:
            os.close(fd)
        lines = data.decode("ascii", "replace").splitlines()
        head = lines[0].split()
        libc = _libc()
        for line in lines[1:]:
            cols = line.split()
            try:
                if int(cols[head.index("uid")]) != uid:
                    continue
                ident = int(cols[1])
            except (ValueError, IndexError):
                continue
            if call == "semctl":
                libc.semctl(ident, 0, _IPC_RMID)
            else:
                getattr(libc, call)(ident, _IPC_RMID, None)
