"""Host side of one worker: start it (inside bubblewrap or the fallback), talk, restart.

`WorkerProcess.request` sends one request and waits for the reply with a host-side
deadline; if the worker dies, hangs past the deadline, or sends anything malformed, the
whole worker (its process group and, with bwrap, its PID namespace) is SIGKILLed and
`WorkerLost` is raised; the next request transparently starts a fresh worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any

from codebench.sandbox import isolation, protocol
from codebench.sandbox.isolation import MOUNT_DIR, SANDBOX_DIR, Layout
from codebench.sandbox.uids import UidLease, kill_uid

START_TIMEOUT = 30.0


class WorkerLost(BaseException):  # noqa: N818 - BaseException: trusted tests cannot swallow it
    """The worker died, hung or misbehaved; it has been killed and will be restarted."""


class EnterFailed(WorkerLost):
    """A sample process could not be set up (rlimits, seccomp filter, ...) before any model
    code ran: our failure, never the sample's. The worker has been killed."""


class WorkerProcess:
    """One warm worker process in its own sandbox, with its own uid."""

    def __init__(
        self, mode: str, layout: Layout, max_payload: int, preload: tuple[str, ...] = ()
    ) -> None:
        self.mode, self.layout, self.max_payload = mode, layout, max_payload
        self.preload = preload
        self.lease = UidLease()
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmpdir: str | None = None
        self.code_dir: str | None = None  # private copy of the worker's code (fallback only)
        self.starts = 0
        self.seccomp: bool | None = None  # whether samples run under the seccomp filter
        self.cpu_s = 0.0  # CPU seconds of finished worker incarnations (and their samples)
        self._errlog: Any = None

    # -- lifecycle ----------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        uid = self.lease.uid
        dedicated = uid is not None
        env = dict(isolation.BASE_ENV)
        extra = {"preload_extra": list(self.preload)} if self.preload else {}
        if self.mode == "bwrap":
            return {
                "uid": uid,
                "gid": uid,
                "tmp": "/tmp",
                "kill_all": True,
                "env": env,
                "extra_wipe": ["/dev/shm"],
                **extra,
            }
        return {
            "uid": uid,
            "gid": uid,
            "tmp": self.tmpdir,
            "kill_all": dedicated,
            "env": env,
            "extra_wipe": ["/tmp", "/var/tmp", "/dev/shm"] if dedicated else [],
            **extra,
        }

    def start(self) -> None:
        """Start (or restart) the worker and wait for its ready message."""
        self.kill()
        env = dict(isolation.BASE_ENV, HOME="/tmp")
        kwargs: dict[str, Any] = {"start_new_session": True}
        if self.mode == "bwrap":
            prefix, python = isolation.bwrap_argv(self.layout, env)
            script = f"{MOUNT_DIR}/worker.py"
            cfg = self._config()
            argv = [*prefix, python, "-I", "-B", script, json.dumps(cfg)]
            kwargs["env"] = env
        else:
            python, _site = isolation.fallback_python(self.layout, self.lease.uid is not None)
            if not python:  # no interpreter the sandbox uid can run: keep the caller's uid
                self.lease.release()
                self.lease.uid = None
                python = self.layout.python
            self.tmpdir = tempfile.mkdtemp(prefix="codebench-sbx-", dir=isolation.shared_tmp_root())
            os.chmod(self.tmpdir, 0o700)
            if self.lease.uid is not None:
                os.chown(self.tmpdir, self.lease.uid, self.lease.uid)
                kwargs.update(user=self.lease.uid, group=self.lease.uid, extra_groups=[])
            cfg = self._config()
            cfg["pdeathsig"] = True
            scripts = SANDBOX_DIR
            if self.lease.uid is not None:  # the worker's uid must be able to read its code
                scripts, private = isolation.fallback_scripts()
                if private:
                    self.code_dir = str(scripts)
            argv = [python, "-I", "-B", str(scripts / "worker.py"), json.dumps(cfg)]
            kwargs.update(env=dict(env, HOME=self.tmpdir), cwd=self.tmpdir)
        self._errlog = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errlog,
            bufsize=0,
            **kwargs,
        )
        self.starts += 1
        header, _ = self._recv(time.monotonic() + START_TIMEOUT)
        if header.get("st") != "ready":
            self.kill()
            raise WorkerLost(f"worker did not start: {header}")
        self.seccomp = bool(header.get("seccomp"))

    def cpu_seconds(self) -> float:
        """CPU time used by this slot's workers and their sample processes so far."""
        if self.proc is None or self.proc.poll() is not None:
            return self.cpu_s
        try:
            h, _ = self.request({"op": "stats"}, timeout=10)
        except WorkerLost:
            return self.cpu_s
        return self.cpu_s + float(h.get("cpu", 0.0))

    def kill(self) -> None:
        """SIGKILL the worker's whole process group and forget it."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout):
                if stream:
                    stream.close()
            if self.mode == "fallback" and self.lease.uid is not None:
                kill_uid(self.lease.uid)  # orphans of a worker without a PID namespace
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
        if self.code_dir:
            shutil.rmtree(self.code_dir, ignore_errors=True)
            self.code_dir = None

    def close(self) -> None:
        """Stop the worker (politely first, so its CPU time is accounted to us) and release
        its uid."""
        proc = self.proc
        self.cpu_s = self.cpu_seconds()
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        self.kill()
        if self._errlog is not None:
            self._errlog.close()
            self._errlog = None
        self.lease.release()

    def stderr_tail(self, n: int = 2000) -> str:
        """The end of the worker's own stderr (bwrap and Python start-up errors)."""
        if self._errlog is None:
            return ""
        self._errlog.seek(0, os.SEEK_END)
        size = self._errlog.tell()
        self._errlog.seek(max(0, size - n))
        return self._errlog.read().decode("utf-8", "replace")

    # -- messaging ----------------------------------------------------------------------
    def request(
        self, header: dict[str, Any], payload: bytes | None = None, timeout: float = 60.0
    ) -> tuple[dict[str, Any], bytes | None]:
        """Send a request and wait up to `timeout` seconds for its reply."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        try:
            protocol.send(self.proc.stdin.fileno(), header, payload)
        except OSError as e:
            self.kill()
            raise WorkerLost(f"worker went away: {e}") from None
        h, data = self._recv(time.monotonic() + timeout)
        if h.get("st") == "noenter":
            self.kill()
            raise EnterFailed(f"could not enter the sandbox: {str(h.get('why', ''))[:500]}")
        return h, data

    def _recv(self, deadline: float) -> tuple[dict[str, Any], bytes | None]:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        reader = protocol.FrameReader(max(protocol.MAX_HEADER, self.max_payload))
        frames: list[bytes] = []
        header: dict[str, Any] | None = None
        while True:
            if header is None and frames:
                try:
                    header = json.loads(frames.pop(0))
                except ValueError:
                    header = None
                if not isinstance(header, dict):
                    self._lost("malformed reply")
            if header is not None and (header.get("n") != 1 or frames):
                return header, frames.pop(0) if header.get("n") == 1 else None
            left = deadline - time.monotonic()
            if left <= 0:
                self._lost("no reply before the host deadline")
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            data = os.read(fd, protocol.READ_CHUNK)
            if not data:
                self._lost("worker exited")
            frames += reader.feed(data)
            if reader.too_large:
                self._lost("reply too large")

    def _lost(self, why: str) -> None:
        proc = self.proc
        self.kill()
        code = proc.returncode if proc is not None else None
        tail = self.stderr_tail(600).strip()
        raise WorkerLost(f"{why} (exit status {code}){': ' + tail if tail else ''}")
