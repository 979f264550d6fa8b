"""Run one job on one worker and turn what happened into a `Result`.

Every reply from the worker is checked: the worker and the sample child are untrusted, so
payloads are decoded with `wire.loads` (plain data only) and anything unexpected becomes a
failed (never a passed) sample. `WorkerLost` propagates to the pool, which restarts the
worker and retries the job once.
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from codebench.sandbox import protocol, wire
from codebench.sandbox.host import WorkerProcess
from codebench.sandbox.outcome import Outcome, Result, truncate
from codebench.sandbox.trusted import SampleAbort, rebuild_exception

GRACE = 10.0  # seconds the host waits beyond a worker-side deadline before killing it


@dataclass
class Settings:
    """Limits shared by every job of a Sandbox."""

    timeout: float = 3.0
    memory_mb: int = 2048
    max_output: int = 20_000
    max_value_bytes: int = 8 << 20
    nproc: int = 64
    nofile: int = 256
    fsize_mb: int = 64
    wall_factor: float = 2.0
    compile_timeout: float = 60.0
    prefetch: bool = True
    toolchains: dict[str, Any] = field(default_factory=dict)
    pch_dir: str | None = None  # the C++ precompiled-header folder as the worker sees it

    def limits(
        self, cpu_s: float, nproc: int | None = None, nofile: int | None = None
    ) -> dict[str, int]:
        """rlimits for one sample process (applied in the child before model code runs)."""
        return {
            "as": self.memory_mb << 20,
            "cpu": max(1, math.ceil(cpu_s) + 1),
            "nproc": (nproc or self.nproc) + 1,
            "fsize": self.fsize_mb << 20,
            "nofile": nofile or self.nofile,
            "core": 0,
            "msgqueue": 0,
        }

    def wall(self, cpu_s: float) -> float:
        """Wall-clock limit for a CPU budget: generous, so load alone rarely trips it."""
        return cpu_s * self.wall_factor + 0.5


BLOCKED = "blocked or asleep, not computing, for longer than its time limit"


def blocked(h: dict[str, Any]) -> bool:
    """Whether a wall-clock timeout hit a sample that was sleeping or blocked (its processes
    were running or waiting to run for under a quarter of the time), not one starved of CPU
    by load: such a timeout is final (a retry would only wait again). (Most such samples
    are stopped earlier by the worker's idle limit, reply why="idle".)"""
    try:
        return float(h["busy"]) < 0.25 * float(h["waited"])
    except (KeyError, TypeError, ValueError):
        return False


def definite_timeout(detail: str) -> bool:
    """A timeout that a retry cannot change: the CPU budget was used up, or the sample was
    blocked rather than starved (see `blocked`)."""
    return "CPU" in detail or BLOCKED in detail


def signal_name(sig: int) -> str:
    """'SIGSEGV' for 11."""
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def classify_death(h: dict[str, Any], cpu_limit: float, during: str) -> tuple[Outcome, str]:
    """Outcome for a reply saying the sample process ended or was stopped."""
    st = h.get("st")
    if st == "timeout":
        cpu_bound = h.get("why") == "cpu" or float(h.get("cpu") or 0) >= 0.95 * cpu_limit
        if cpu_bound:
            return Outcome.TIMEOUT, f"timed out {during} (CPU limit)"
        if h.get("why") == "idle" or blocked(h):
            return Outcome.TIMEOUT, f"timed out {during} ({BLOCKED})"
        return Outcome.TIMEOUT, f"timed out {during} (wall-clock limit)"
    if st == "toolarge":
        return Outcome.FAILED, f"value too large {during} (the reply exceeds the output-size limit)"
    if st == "exit":
        sig = h.get("sig")
        if sig is not None:
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and h.get("cpu", 0) >= cpu_limit):
                return Outcome.TIMEOUT, f"timed out {during} (CPU limit)"
            return Outcome.CRASHED, f"killed by {signal_name(sig)} {during}"
        return Outcome.FAILED, f"exited with status {h.get('rc')} {during}"
    if st == "noenter":
        return Outcome.SANDBOX_ERROR, f"could not enter the sandbox {during}: {h.get('why')}"[:600]
    return Outcome.SANDBOX_ERROR, f"sandbox error {during}: {str(h.get('why', h))[:300]}"


def unpack(payload: bytes | None) -> list[bytes]:
    """Split a worker payload (length-prefixed child frames) into frames."""
    if not payload:
        return []
    reader = protocol.FrameReader(len(payload))
    frames = reader.feed(payload)
    return frames


def reply_value(frame: bytes, during: str, handles: Any = None) -> Any:
    """The value in one child reply frame; raises SampleAbort or the candidate's exception.
    `handles(id, type_name)` makes the host-side stand-in for an object kept in the sample
    (trusted tests only; without it a handle in a reply is malformed)."""
    try:
        msg = wire.parse_json(frame)
    except (ValueError, RecursionError):  # WireError is a ValueError
        msg = None
    if not isinstance(msg, dict):
        raise SampleAbort(Outcome.FAILED, f"malformed reply {during}")
    s = msg.get("s")
    if s == "ok":
        if "v" not in msg:
            return None
        try:
            return wire.decode(msg["v"], guard=True, handles=handles)
        except wire.WireError as e:
            raise SampleAbort(Outcome.FAILED, f"malformed value {during}: {e}") from None
    if s == "exc":
        name, mod, text = (str(msg.get(k, ""))[:2000] for k in ("type", "mod", "msg"))
        if name == "MemoryError":
            raise SampleAbort(Outcome.OUT_OF_MEMORY, f"MemoryError {during}")
        raise rebuild_exception(name, mod, text)
    if s == "bad":
        raise SampleAbort(
            Outcome.FAILED,
            f"returned a value that cannot be checked {during}: {str(msg.get('msg'))[:300]}",
        )
    if s == "exit":
        raise SampleAbort(Outcome.FAILED, f"{str(msg.get('msg'))[:300]} {during}")
    raise SampleAbort(Outcome.FAILED, f"malformed reply {during}")


def decode_reply(
    h: dict[str, Any], frames: list[bytes], cpu_limit: float, during: str, handles: Any = None
) -> Any:
    """The value of a single-reply request; raises SampleAbort or the candidate's exception.
    A reply received in full counts even if the process died right after sending it."""
    if not frames:
        raise SampleAbort(*classify_death(h, cpu_limit, during))
    return reply_value(frames[0], during, handles)


class Session:
    """One sample process running a Python program in serve mode on a worker."""

    def __init__(self, worker: WorkerProcess, settings: Settings) -> None:
        self.worker, self.settings = worker, settings
        self.alive = False  # a sample process is serving calls
        self.open = False  # the worker holds a job of ours (ended by `end`)
        self.cpu_used = 0.0
        self.stdout = self.stderr = ""

    def _req(
        self, header: dict[str, Any], payload: bytes | None, wall: float
    ) -> tuple[dict, list[bytes]]:
        s = self.settings
        header = dict(header, max_out=s.max_output, max_value=s.max_value_bytes)
        self.open = True
        h, data = self.worker.request(header, payload, timeout=wall + GRACE)
        self.alive = h.get("st") == "ok" and not header.get("end")
        if isinstance(h.get("cpu"), int | float):
            self.cpu_used = float(h["cpu"])
        if header.get("end"):
            self._ended(h)
        return h, unpack(data)

    def start(
        self,
        program: str,
        setup: str,
        cpu_limit: float,
        wall: float,
        rlimit_cpu: float,
        batch: list[bytes] | None = None,
        end: bool = False,
        step: tuple[float, float] | None = None,
    ) -> tuple[dict, list[bytes]]:
        """Fork the sample process, load the program and run `batch` calls; raw reply.

        Without `step` the limits cover loading and the whole batch; with step = (wall, cpu)
        they cover loading only and every call of the batch gets step's limits (see
        `sampleproc.Proc.wait`)."""
        header = {
            "op": "start",
            "mode": "serve",
            "program": program,
            "setup": setup,
            "limits": self.settings.limits(rlimit_cpu),
            "wall": wall,
            "cpu": cpu_limit,
            "idle": cpu_limit,
        }
        if end:
            header["end"] = True
        if batch:
            header["nb"] = len(batch)
            if step:
                header["step"] = list(step)
                wall += step[0] * len(batch)
            return self._req(header, b"".join(protocol.pack(b) for b in batch), wall)
        return self._req(header, None, wall)

    def load(
        self, program: str, setup: str, cpu_limit: float, wall: float, rlimit_cpu: float
    ) -> None:
        """Start and load; raises SampleAbort (or the load exception) when loading failed."""
        h, frames = self.start(program, setup, cpu_limit, wall, rlimit_cpu)
        decode_reply(h, frames, cpu_limit, "while loading the program")

    @staticmethod
    def encode_call(
        name: str, args: tuple, kwargs: dict, handles: bool = False, target: int | None = None
    ) -> bytes:
        """The request payload for one call (raises SampleAbort if arguments cannot be sent).

        handles: values that are not plain data come back as handles (trusted tests);
        target: `name` is an operation on the held object with this handle id."""
        try:
            req = {
                "args": wire.encode(tuple(args), objects=handles),
                "kwargs": wire.encode(dict(kwargs), objects=handles),
            }
        except wire.WireError as e:
            raise SampleAbort(Outcome.SANDBOX_ERROR, f"test argument cannot be sent: {e}") from None
        if target is None:
            req["fn"] = name
        else:
            req.update(h=target, op=name)
        if handles:
            req["H"] = 1
        return json.dumps(req).encode()

    def call_raw(
        self, payload: bytes, cpu_limit: float, wall: float, idle: float | None = None
    ) -> tuple[dict, list[bytes]]:
        """Send one encoded call; raw reply. cpu_limit: the process's total CPU seconds;
        idle: seconds it may sleep or block (default cpu_limit)."""
        if not self.alive:
            raise SampleAbort(Outcome.FAILED, "the program is no longer running")
        header = {"op": "call", "wall": max(wall, 0.01), "cpu": cpu_limit}
        header["idle"] = cpu_limit if idle is None else idle
        return self._req(header, payload, wall)

    def call(
        self,
        name: str,
        args: tuple,
        kwargs: dict,
        cpu_limit: float,
        wall: float,
        idle: float | None = None,
    ) -> Any:
        """Call `name` in the sample process; returns plain data or raises."""
        h, frames = self.call_raw(self.encode_call(name, args, kwargs), cpu_limit, wall, idle)
        return decode_reply(h, frames, cpu_limit, f"in call to {name}()")

    def _ended(self, h: dict[str, Any]) -> None:
        out_limit = self.settings.max_output
        self.stdout = truncate(self.stdout + str(h.get("out", "")), out_limit)
        self.stderr = truncate(self.stderr + str(h.get("err", "")), out_limit)
        self.alive = self.open = False
        if not h.get("clean", False):
            self.worker.kill()

    def end(self) -> None:
        """Kill the sample's processes and wipe its files (no-op when already ended)."""
        if self.worker.proc is None or not self.open:
            self.alive = self.open = False
            return
        h, _ = self.worker.request({"op": "end"}, None, timeout=GRACE + 10)
        self._ended(h)


def refine_oom(outcome: Outcome, detail: str, stderr: str) -> tuple[Outcome, str]:
    """Reclassify a crash or failure as out-of-memory when stderr says so."""
    if outcome in (Outcome.CRASHED, Outcome.FAILED) and any(m in stderr for m in _OOM):
        return Outcome.OUT_OF_MEMORY, f"{detail} (out of memory)"
    return outcome, detail


_OOM = (
    "MemoryError",
    "std::bad_alloc",
    "java.lang.OutOfMemoryError",
    "heap out of memory",
    "Fatal process out of memory",
    "Cannot allocate memory",
    "Could not reserve enough space",
    "insufficient memory for the Java Runtime",
)


def result(
    outcome: Outcome, detail: str, t0: float, session: Session | None = None, **kw: Any
) -> Result:
    """Build a Result (detail truncated; output taken from the session if given)."""
    if session is not None:
        kw.setdefault("stdout", session.stdout)
        kw.setdefault("stderr", session.stderr)
    return Result(
        outcome,
        truncate(detail, 4000) if outcome is not Outcome.PASSED else "",
        time.monotonic() - t0,
        **kw,
    )
