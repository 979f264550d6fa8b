"""Dedicated sandbox uids: one per worker, leased with an flock, never shared.

RLIMIT_NPROC is not enforced for uid 0 and counts per uid, so each worker runs under a uid
of its own from 60000-64999 (below 65534 "nobody"). A lease is an exclusive flock on
/tmp/codebench-sandbox-uids/<uid>, held by the host for the worker slot's lifetime, so
concurrent Sandboxes (other test runs, other engineers) never share a uid; uids that own a
running process are skipped.
"""

from __future__ import annotations

import fcntl
import os
import signal
from pathlib import Path

UID_RANGE = range(60000, 65000)
LOCK_DIR = Path("/tmp/codebench-sandbox-uids")


class NoFreeUid(RuntimeError):
    """Every uid in UID_RANGE is leased or in use."""


class UidLease:
    """An exclusive uid/gid for one worker slot, held through an flock (root only)."""

    def __init__(self) -> None:
        self.uid: int | None = None
        self._fd: int | None = None
        if os.geteuid() != 0:
            return
        LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        busy = _uids_in_use()
        for uid in UID_RANGE:
            if uid in busy:
                continue
            fd = os.open(LOCK_DIR / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            return
        raise NoFreeUid("no free sandbox uid in 60000-64999")

    def release(self) -> None:
        """Give the uid back."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def kill_uid(uid: int) -> None:
    """SIGKILL every process whose owner is `uid` (a leased sandbox uid; root only)."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    os.kill(int(name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue


def _uids_in_use() -> set[int]:
    uids = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                uids.add(os.stat(f"/proc/{name}").st_uid)
            except OSError:
                continue
    return uids
