"""One forked sample process as the worker sees it: pipes, output buffers, waiting.

Standard library only (runs in the worker, inside the sandbox). `Proc.wait` pumps the
sample's stdout/stderr (keeping head and tail only, so flooding costs nothing but CPU),
collects its reply frames, writes pending request bytes without blocking, and enforces the
wall-clock and CPU limits, calling `kill` (the worker's sweep) when one is exceeded.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable

import protocol

_TICK = os.sysconf("SC_CLK_TCK")


class OutBuf:
    """Keep the head and tail of a byte stream, counting everything."""

    def __init__(self, limit: int) -> None:
        self.head_max, self.tail_max = limit * 3 // 4, limit // 4
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def add(self, data: bytes) -> None:
        """Append bytes (only the head and a bounded tail are kept)."""
        self.total += len(data)
        room = self.head_max - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.tail_max:
                del self.tail[: len(self.tail) - self.tail_max]

    def text(self) -> str:
        """The kept bytes as text, with a marker where bytes were dropped."""
        body = bytes(self.head)
        if self.total > len(self.head):
            tail = bytes(self.tail[-self.tail_max :]) if self.tail_max else b""
            skipped = self.total - len(self.head) - len(tail)
            if skipped > 0:
                body += f"\n...[{skipped} bytes truncated]...\n".encode()
            body += tail
        return body.decode("utf-8", "replace")


class Proc:
    """One forked sample process and the pipes to it."""

    def __init__(
        self, pid: int, pidfd: int, fds: dict[str, int], max_out: int, max_value: int
    ) -> None:
        self.pid, self.pidfd, self.fds = pid, pidfd, fds
        self.out, self.err = OutBuf(max_out), OutBuf(max_out)
        self.reader = protocol.FrameReader(max_value)
        self.max_total = 2 * max_value  # all reply frames of one request together
        self.total = 0
        self.frames: list[bytes] = []
        self.status: int | None = None
        self.cpu_seen = 0.0  # last measured CPU time plus the wall time of calls since then
        self.rusage_cpu = 0.0
        self.entered = False  # the process sent child.ENTERED: it is set up, model code runs

    def take(self, new: list[bytes]) -> list[bytes]:
        """Record reply frames; the first (empty) one only says the process entered."""
        if not self.entered and new and new[0] == b"":
            self.entered = True
            new = new[1:]
        self.frames += new
        return new

    def cpu(self) -> float:
        """CPU seconds of the process and its reaped children (last value once gone)."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            self.cpu_seen = sum(int(x) for x in fields[11:15]) / _TICK
        except (OSError, IndexError, ValueError):
            pass
        return self.cpu_seen

    def wait(
        self,
        wall: float,
        cpu: float,
        want: int,
        send: bytes,
        kill: Callable[[str, str], dict],
        step: tuple[float, float] | None = None,
        idle: float | None = None,
    ) -> dict:
        """Pump pipes until `want` reply frames (0: until exit), exit, timeout or oversize.

        `step` = (wall, cpu): a batch of calls; the first frame gets `wall`/`cpu`, and every
        reply frame after it starts a fresh limit of step wall seconds and step CPU seconds
        (measured when the frame arrives), so each call of the batch has its own budget. The
        reply then carries "ft": each frame's arrival time in seconds since the start.

        `idle`: seconds the sample may spend neither running nor waiting for a CPU (asleep,
        blocked on I/O or a lock), measured from the first 50 ms poll of each window; past
        it the sample is stopped ("timeout", why "idle"), so sleepers cost about their CPU
        budget of wall time, not the whole wall-clock allowance. Starved samples are not
        idle (run-queue time counts as busy)."""
        t0 = time.monotonic()
        deadline, next_cpu = t0 + wall, t0 + 0.05
        window = t0  # start of the current wall-clock window
        idle_from: tuple[float, float] | None = None  # (time, busy) at the window's first poll
        names = {self.fds[k]: k for k in ("resp", "out", "err")}
        readers = [*names, self.pidfd]
        pending = memoryview(send)
        measured = False
        times: list[float] = []
        while True:
            if want and len(self.frames) >= want:
                if not measured:  # short call: wall time bounds the CPU time it used
                    self.cpu_seen += time.monotonic() - t0
                frames, self.frames = self.frames[:want], self.frames[want:]
                self.total = sum(len(f) + 4 for f in self.frames)
                return {
                    "st": "ok",
                    "frames": frames,
                    "cpu": self.cpu_seen,
                    **({"ft": times} if step else {}),
                }
            if self.status is not None:
                return self._ended(
                    {"st": "exit", **status_dict(self.status)}, want, times if step else None
                )
            now = time.monotonic()
            if now >= deadline:
                busy = self.busy()  # before the kill: was it running (or runnable) at all?
                res = kill("timeout", "wall")
                res.update(busy=busy, waited=now - window)
                return self._ended(res, want, times if step else None)
            if now >= next_cpu:
                measured = True
                if self.cpu() > cpu:
                    return self._ended(kill("timeout", "cpu"), want, times if step else None)
                if idle is not None:
                    busy = self.busy()
                    if idle_from is None:
                        idle_from = (now, busy)
                    elif (now - idle_from[0]) - (busy - idle_from[1]) > idle:
                        res = kill("timeout", "idle")
                        res.update(busy=busy - idle_from[1], waited=now - idle_from[0])
                        return self._ended(res, want, times if step else None)
                next_cpu = now + 0.05
            writers = [self.fds["req"]] if pending else []
            r, w, _ = select.select(readers, writers, [], max(0.0, min(deadline, next_cpu) - now))
            if w:
                pending = self._write(pending)
            for fd in r:
                if fd == self.pidfd:
                    self.reap()
                    self.drain(names)
                    continue
                data = read_some(fd)
                if data is None:
                    continue
                if not data:
                    readers.remove(fd)
                elif names[fd] == "resp":
                    self.total += len(data)
                    new = self.take(self.reader.feed(data))
                    if self.reader.too_large or self.total > self.max_total + 4 * len(self.frames):
                        return self._ended(
                            kill("toolarge", "reply too large"), want, times if step else None
                        )
                    if step and new:  # each call of a batch gets its own limits
                        now = time.monotonic()
                        times += [now - t0] * len(new)
                        measured = True
                        deadline, cpu = now + step[0], self.cpu() + step[1]
                        window, idle_from = now, None
                        if idle is not None:
                            idle = step[1]
                else:
                    (self.out if names[fd] == "out" else self.err).add(data)

    def busy(self) -> float:
        """Seconds the sample's live processes spent running or waiting to run (schedstat:
        on-CPU time + run-queue delay of every thread), plus the CPU time of its reaped
        children. Close to the elapsed wall time for a process starved by load; near zero
        for one that sleeps or blocks."""
        total = 0.0
        for pid in [self.pid, *descendants(self.pid)]:
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                        run, delay = f.read().split()[:2]
                    total += (int(run) + int(delay)) / 1e9
                except (OSError, ValueError):
                    continue
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            total += (int(fields[13]) + int(fields[14])) / _TICK
        except (OSError, IndexError, ValueError):
            pass
        return total

    def _write(self, pending: memoryview) -> memoryview:
        try:
            return pending[os.write(self.fds["req"], pending) :]
        except BlockingIOError:
            return pending
        except OSError:
            return memoryview(b"")

    def _ended(self, res: dict, want: int, times: list[float] | None = None) -> dict:
        """The process ended before `want` frames: hand over the complete ones it sent.
        A process that never entered the sandbox is reported as "noenter"."""
        if not self.entered:
            self.drain()
        if not self.entered:
            why = self.err.text().strip()[-500:] or f"sample process ended ({res})"
            res = {**res, "st": "noenter", "why": why}
        if want:
            res["frames"], self.frames = self.frames[:want], []
        if times is not None:
            res["ft"] = times[:want]
        return res

    def drain(self, names: dict[int, str] | None = None) -> None:
        """Read whatever the pipes still hold (without blocking)."""
        if names is None:
            names = {self.fds[k]: k for k in ("resp", "out", "err")}
        for fd, name in names.items():
            for _ in range(64):
                data = read_some(fd)
                if not data:
                    break
                if name == "resp":
                    self.take(self.reader.feed(data))
                else:
                    (self.out if name == "out" else self.err).add(data)

    def reap(self) -> None:
        """Collect the exit status (blocking; call once the process is dead or killed)."""
        if self.status is None:
            try:
                _, status, ru = os.wait4(self.pid, 0)
                self.status = status
                self.rusage_cpu = ru.ru_utime + ru.ru_stime
            except ChildProcessError:
                self.status = 0

    def close(self) -> None:
        """Close every fd of this process."""
        for fd in (*self.fds.values(), self.pidfd):
            os.close(fd)


def descendants(root: int) -> list[int]:
    """Live descendants of `root` (from /proc; orphans re-parent to the worker, a subreaper
    or PID 1, so they are found under it)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if fields[0] not in (b"Z", b"X"):
                children.setdefault(int(fields[1]), []).append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [root, os.getpid()] if root != os.getpid() else [root]
    seen = set(todo)
    while todo:
        for pid in children.get(todo.pop(), []):
            if pid not in seen:
                seen.add(pid)
                out.append(pid)
                todo.append(pid)
    return [p for p in out if p != root]


def status_dict(status: int) -> dict:
    """{rc, sig} from a wait status."""
    if os.WIFSIGNALED(status):
        return {"rc": None, "sig": os.WTERMSIG(status)}
    return {"rc": os.waitstatus_to_exitcode(status), "sig": None}


def read_some(fd: int) -> bytes | None:
    """Bytes read; b"" at end of file; None when nothing is available right now."""
    try:
        return os.read(fd, protocol.READ_CHUNK)
    except BlockingIOError:
        return None
    except OSError:
        return b""
