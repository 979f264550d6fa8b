"""The warm worker: runs inside the sandbox (python -I), forks one child per sample.

Standard library only; started by `host.WorkerProcess` as ``python -I -B worker.py CONFIG``.
It drops to its dedicated uid, makes itself undumpable (so samples of the same uid cannot
ptrace it or read its /proc entries) and a child subreaper, preloads common modules, then
serves requests from the host on the fds it was given (`protocol` frames):

  start {mode: serve|run, program, setup, limits, env, stdin, wall, cpu, nb, end}
        (+ payload: nb packed call requests)  fork a Python child, answer the batch
  call  {wall, cpu} + payload     forward a call request to the serving child, wait for reply
  exec  {argv, files, stdin, limits, env, wall, cpu}   fork a child that execs a toolchain
  end   {}                        kill every sample process, reap, wipe /tmp and SysV IPC
  stats {}                        CPU seconds of the worker and of its reaped samples

Every reply is a header {st: ok|exit|timeout|toolarge|noexec|error, rc, sig, cpu, out, err,
nf} plus, when nf > 0, the child's complete reply frames (length-prefixed) as payload; they
are decoded only by the host. A start/call with "end": true also ends the job.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import resource
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import child  # noqa: E402
import cleanup  # noqa: E402
import protocol  # noqa: E402
import seccomp  # noqa: E402
from sampleproc import OutBuf, Proc, status_dict  # noqa: E402

# Preloaded so samples need not import them; kept lean because every fork copies (and every
# exit frees) the worker's page tables: each megabyte preloaded costs every sample ~0.1 ms.
PRELOAD = [
    "typing",
    "collections",
    "functools",
    "itertools",
    "heapq",
    "bisect",
    "math",
    "re",
    "string",
    "operator",
]


class Worker:
    """The worker's state: at most one sample process at a time."""

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.job_dir = os.path.join(cfg["tmp"], "sample")
        self.proc: Proc | None = None
        self.sfilter = seccomp.Filter.build() if cfg.get("seccomp", True) else None
        self.baseline = own_state()
        if self.sfilter is not None:
            # Installed here, once: every sample process inherits it (fork keeps seccomp
            # filters, and nothing can remove one). Installing it per sample made the kernel
            # check and JIT-compile the program on every fork, ~2.5% of all CPU time.
            self.sfilter.install()

    # -- process lifecycle -------------------------------------------------------------
    def fork(self, req: dict, body) -> Proc:
        os.makedirs(self.job_dir, mode=0o700, exist_ok=True)
        for name, text in (req.get("files") or {}).items():
            path = os.path.join(self.job_dir, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
                f.write(text)
        if req.get("stdin"):
            stdin_path = os.path.join(self.job_dir, ".stdin")
            with open(stdin_path, "w", encoding="utf-8", errors="surrogatepass") as f:
                f.write(req["stdin"])
            stdin_fd = os.open(stdin_path, os.O_RDONLY)
            os.unlink(stdin_path)
        else:
            stdin_fd = os.open(os.devnull, os.O_RDONLY)
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        env = req.get("env") or None
        pid = os.fork()
        if pid == 0:  # the sample process
            try:
                child.enter(
                    req["limits"],
                    self.job_dir,
                    stdin_fd,
                    out_w,
                    err_w,
                    req_r,
                    resp_w,
                    env,
                )
            except BaseException as e:  # noqa: BLE001 - no "entered" frame: a sandbox error
                try:
                    os.write(2, f"cannot enter the sandbox: {type(e).__name__}: {e}".encode())
                finally:
                    os._exit(121)
            try:
                body()
            finally:
                os._exit(120)
        for fd in (stdin_fd, req_r, resp_w, out_w, err_w):
            os.close(fd)
        for fd in (resp_r, out_r, err_r, req_w):
            os.set_blocking(fd, False)
        fds = {"req": req_w, "resp": resp_r, "out": out_r, "err": err_r}
        return Proc(
            pid, os.pidfd_open(pid), fds, req.get("max_out", 20000), req.get("max_value", 1 << 24)
        )

    def kill(self, p: Proc, st: str, why: str) -> dict:
        """Stop a sample that broke a limit: sweep its processes, report what it used."""
        cpu = p.cpu()
        cleanup.kill_samples(self.cfg["kill_all"], p.pid)
        p.reap()
        return {"st": st, "why": why, "cpu": cpu, **status_dict(p.status or 0)}

    def wait(
        self,
        p: Proc,
        wall: float,
        cpu: float,
        want: int,
        send: bytes = b"",
        step: tuple[float, float] | None = None,
        idle: float | None = None,
    ) -> dict:
        """Wait on the sample process (see `Proc.wait`)."""
        return p.wait(wall, cpu, want, send, lambda st, why: self.kill(p, st, why), step, idle)

    def stop(self) -> dict:
        """Kill the current sample process tree and reap it; keep the job's files."""
        p, self.proc = self.proc, None
        out = {"st": "ok", "out": "", "err": ""}
        if p is not None:
            cleanup.kill_samples(self.cfg["kill_all"], p.pid)
            p.reap()
            p.drain({p.fds["out"]: "out", p.fds["err"]: "err"})
            out.update(out=p.out.text(), err=p.err.text())
            p.close()
        out["clean"] = cleanup.reap_all(self.cfg["kill_all"])
        return out

    def finish(self) -> dict:
        """End the job: kill and reap everything it started, wipe its files, report output.

        "clean" is false when something is left that the next sample could notice: a process
        that would not die, or a change to the worker's own limits, scheduling policy,
        priority or CPU affinity (the host then replaces the whole worker)."""
        out = self.stop()
        cleanup.wipe(
            self.cfg["tmp"], self.cfg.get("extra_wipe", []), self.cfg["uid"], keep="sample"
        )
        now = own_state()
        if now != self.baseline:
            out["clean"] = False
            out["tainted"] = "the worker's limits or scheduling changed during the job"
        return out

    # -- request handlers --------------------------------------------------------------
    def handle(self, req: dict, payload: bytes | None) -> tuple[dict, bytes | None]:
        op = req.get("op")
        if op == "end":
            return self.finish(), None
        if op == "ping":
            return {
                "st": "ok",
                "pid": os.getpid(),
                "uid": os.getuid(),
                "state": repr(own_state()),
            }, None
        if op == "stats":  # CPU seconds of the worker and every sample process it reaped
            me, kids = (
                resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
            )
            own, reaped = me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime
            return {
                "st": "ok",
                "cpu": own + reaped,
                "worker": own,
                "samples": reaped,
                "faults": me.ru_minflt,
                "sample_faults": kids.ru_minflt,
            }, None
        if op == "call":
            if self.proc is None or self.proc.status is not None:
                return {"st": "error", "why": "no running program"}, None
            res = self.wait(
                self.proc,
                req["wall"],
                req["cpu"],
                1,
                protocol.pack(payload or b""),
                idle=req.get("idle"),
            )
        elif op in ("start", "exec"):
            if self.proc is not None:
                self.stop()
            serve = op == "start" and req["mode"] == "serve"
            if op == "exec":
                argv = req["argv"]
                self.proc = self.fork(req, lambda: child.exec_argv(argv))
            elif serve:
                self.proc = self.fork(
                    req, lambda: child.serve(req["program"], req.get("setup", ""))
                )
            else:
                self.proc = self.fork(req, lambda: child.run_main(req["program"]))
            nb = int(req.get("nb", 0)) if serve and payload else 0  # batch: packed call frames
            step = req.get("step") if nb else None  # per-call limits (wall, cpu) within the batch
            if nb:  # every reply of the batch may be as large as one reply may be
                self.proc.max_total = max(
                    self.proc.max_total, (nb + 1) * req.get("max_value", 1 << 24)
                )
            res = self.wait(
                self.proc,
                req["wall"],
                req["cpu"],
                1 + nb if serve else 0,
                payload if nb else b"",
                tuple(step) if step else None,
                req.get("idle"),
            )
            if not serve:
                res = self.step_done(res)
        else:
            return {"st": "error", "why": f"unknown op {op!r}"}, None
        res.setdefault("cpu", self.proc.cpu_seen if self.proc else 0.0)
        frames = res.pop("frames", [])
        if req.get("end"):
            done = self.finish()
            res.update(out=done["out"], err=done["err"], clean=done["clean"])
        res["nf"] = len(frames)
        return res, b"".join(protocol.pack(f) for f in frames) if frames else None

    def step_done(self, res: dict) -> dict:
        """A run/exec step ended: attach its output and any exec failure report."""
        p = self.proc
        p.drain()
        res.update(out=p.out.text(), err=p.err.text(), out_n=p.out.total, cpu=p.rusage_cpu)
        for frame in p.frames:
            try:
                msg = json.loads(frame)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("s") == "noexec":
                res.update(st="noexec", errno=msg.get("errno"), why=str(msg.get("msg"))[:500])
        p.out, p.err = OutBuf(1000), OutBuf(1000)
        return res


_RLIMIT_NAMES = sorted(n for n in dir(resource) if n.startswith("RLIMIT_"))


def own_state() -> tuple:
    """What a sample could change about the worker (same uid) and later samples inherit:
    every rlimit, the scheduling policy and priority, the nice value and the CPU affinity."""
    return (
        tuple(resource.getrlimit(getattr(resource, n)) for n in _RLIMIT_NAMES),
        os.sched_getscheduler(0),
        os.sched_getparam(0).sched_priority,
        os.getpriority(os.PRIO_PROCESS, 0),
        tuple(sorted(os.sched_getaffinity(0))),
    )


def setup_process(cfg: dict) -> tuple[int, int]:
    """Drop privileges, harden the worker, and move the host channel off fds 0 and 1."""
    if os.getuid() == 0 and cfg.get("uid") is not None:
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    if cfg.get("pdeathsig"):
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    fin, fout = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as Python does; samples inherit it
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM, signal.SIGCHLD, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_DFL)
    job_dir = os.path.join(cfg["tmp"], "sample")
    os.environ.clear()
    os.environ.update(cfg["env"], TMPDIR=job_dir, HOME=job_dir)
    return fin, fout


def main() -> None:
    cfg = json.loads(sys.argv[1])
    fin, fout = setup_process(cfg)
    for name in [*cfg.get("preload", PRELOAD), *cfg.get("preload_extra", [])]:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - a missing optional module is fine
            continue
    gc.collect()
    gc.freeze()
    worker = Worker(cfg)
    protocol.send(
        fout,
        {
            "st": "ready",
            "pid": os.getpid(),
            "uid": os.getuid(),
            "seccomp": worker.sfilter is not None,
        },
    )
    channel = protocol.Channel(fin, 1 << 30)
    while True:
        try:
            req, payload = channel.recv()
        except (EOFError, protocol.ProtocolError):
            worker.finish()
            os._exit(0)
        try:
            reply, frame = worker.handle(req, payload)
        except Exception as e:  # noqa: BLE001 - report, never die silently
            reply, frame = {"st": "error", "why": f"{type(e).__name__}: {e}"[:1000]}, None
        protocol.send(fout, reply, frame)


if __name__ == "__main__":
    main()
