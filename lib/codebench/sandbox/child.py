"""Sample side: code that runs in the forked, rlimited child process inside the sandbox.

Standard library only (this file is bind-mounted read-only into the sandbox and imported by
`worker`). Nothing here is trusted by the host: the child can rewrite all of it, and the
host treats whatever the child sends as untrusted plain data.

Two modes for Python programs:
* serve -- exec the program as module "__sample__", report load status on fd 4, then answer
  call requests from fd 3 (wire-encoded arguments in, wire-encoded value or exception out);
* run   -- exec the program as "__main__" and exit with its status (like `python main.py`).
Other languages exec a compiler or runtime (`exec_argv`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import linecache
import os
import resource
import sys
import traceback
import types
from typing import Any

import protocol
import wire

REQ_FD, RESP_FD = 3, 4
ENTERED = b"\0\0\0\0"  # an empty frame: the sample process is set up, model code runs next
_RLIMITS = {
    "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "core": resource.RLIMIT_CORE,
    "msgqueue": resource.RLIMIT_MSGQUEUE,
}


def enter(
    limits: dict[str, int],
    job_dir: str,
    stdin_fd: int,
    out_w: int,
    err_w: int,
    req_r: int,
    resp_w: int,
    env: dict[str, str] | None = None,
) -> None:
    """Become the sample process: own process group, fds 0-4 only, rlimits, cwd, env (the
    seccomp filter it already has: the worker installed it in itself, and a fork inherits
    it); then send the empty "entered" frame on fd 4 (see `ENTERED`).

    Everything here runs before model code. If any step fails the process exits without
    the entered frame, which the worker reports as a failure to enter the sandbox (a
    sandbox error, never the sample's failure): model code cannot forge that, since it
    only ever runs after the frame was sent.

    (setpgid, not setsid: with scheduler autogroups a new session costs about a millisecond;
    the worker already runs in a session of its own without a controlling terminal.)
    """
    os.setpgid(0, 0)
    keep = [
        fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
        for fd in (stdin_fd, out_w, err_w, req_r, resp_w)
    ]
    for target, fd in enumerate(keep):
        os.dup2(fd, target)
    os.closerange(5, 1 << 16)
    for name, value in limits.items():
        resource.setrlimit(_RLIMITS[name], (value, value))
    os.chdir(job_dir)
    if env:  # the worker's own environment is already the scrubbed sample environment
        os.environ.update(env)
    os.write(RESP_FD, ENTERED)


def _exc_info(exc: BaseException) -> dict[str, Any]:
    t = type(exc)
    return {
        "s": "exc",
        "type": t.__name__,
        "mod": t.__module__,
        "msg": str(exc)[:2000],
        "tb": "".join(traceback.format_exception(exc, limit=-6))[-4000:],
    }


def _reply(obj: dict[str, Any]) -> None:
    protocol.write_all(RESP_FD, protocol.pack(json.dumps(obj).encode()))


def _load(program: str, setup: str, module: str) -> dict[str, Any]:
    mod = types.ModuleType(module)
    mod.__file__ = os.path.abspath("solution.py")
    sys.modules[module] = mod
    linecache.cache[mod.__file__] = (len(program), None, program.splitlines(True), mod.__file__)
    code = compile(program, mod.__file__, "exec", dont_inherit=True, optimize=0)
    exec(code, mod.__dict__)
    if setup:
        exec(compile(setup, "<test setup>", "exec", dont_inherit=True, optimize=0), mod.__dict__)
    return mod.__dict__


_HANDLES: list[Any] = []  # objects the host holds handles to (index = handle id)
_HANDLE_IDS: dict[int, int] = {}


def _keep(obj: Any) -> dict[str, Any]:
    """Keep `obj` here and return its handle: {"$h": [id, type name]} (ids are assigned in
    request order, so a replay of the same requests gives the same ids)."""
    hid = _HANDLE_IDS.get(id(obj))
    if hid is None:
        hid = len(_HANDLES)
        _HANDLES.append(obj)
        _HANDLE_IDS[id(obj)] = hid
    return {"$h": [hid, type(obj).__name__[:200]]}


def _held(hid: int, _type: str = "") -> Any:
    if type(hid) is not int or not 0 <= hid < len(_HANDLES):
        raise NameError(f"no sandbox object #{hid!r}")
    return _HANDLES[hid]


_OPS = {
    "call": lambda obj, a, kw: obj(*a, **kw),
    "getattr": lambda obj, a, kw: getattr(obj, a[0]),
    "setattr": lambda obj, a, kw: setattr(obj, a[0], a[1]),
    "bool": lambda obj, a, kw: bool(obj),
    "len": lambda obj, a, kw: len(obj),
    "str": lambda obj, a, kw: str(obj),
    "list": lambda obj, a, kw: list(obj),
    "getitem": lambda obj, a, kw: obj[a[0]],
    "setitem": lambda obj, a, kw: obj.__setitem__(a[0], a[1]),
    "contains": lambda obj, a, kw: a[0] in obj,
}


def _call(ns: dict[str, Any], req: dict[str, Any]) -> bytes:
    """Answer one request: {"fn": name, "args", "kwargs"} calls a global of the program;
    {"h": id, "op": ..., "args", "kwargs"} acts on a held object (see `_OPS`). With "H" set,
    a value that is not plain data is kept here and sent as a handle."""

    def ref(name: str) -> Any:
        if name not in ns:
            raise NameError(f"name {name!r} is not defined in the program")
        return ns[name]

    args = wire.decode(req["args"], ref, handles=_held)
    kwargs = wire.decode(req["kwargs"], ref, handles=_held)
    if "h" in req:
        op = _OPS.get(req.get("op"))
        if op is None:
            raise NameError(f"unknown operation {req.get('op')!r}")
        value = op(_held(req["h"]), args, kwargs)
    else:
        fn = ns.get(req["fn"])
        if fn is None:
            raise NameError(f"name {req['fn']!r} is not defined")
        value = fn(*args, **kwargs)
    try:
        return b'{"s":"ok","v":' + wire.dumps(value, _keep if req.get("H") else None) + b"}"
    except wire.WireError as e:
        return json.dumps({"s": "bad", "msg": str(e)}).encode()


def serve(program: str, setup: str) -> None:
    """Load the program, report, then answer call requests until the channel closes."""
    try:
        ns = _load(program, setup, "__sample__")
    except SystemExit as e:
        _reply({"s": "exit", "msg": f"program called exit({e.code!r}) while loading"})
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - report every failure to the host
        _reply(_exc_info(e))
        os._exit(0)
    _reply({"s": "ok"})
    reader = protocol.FrameReader(1 << 30)
    pending: list[bytes] = []
    while True:
        while not pending:
            data = os.read(REQ_FD, protocol.READ_CHUNK)
            if not data:
                os._exit(0)
            pending += reader.feed(data)
        req = json.loads(pending.pop(0))
        try:
            out = _call(ns, req)
        except SystemExit as e:
            out = json.dumps({"s": "exit", "msg": f"called exit({e.code!r})"}).encode()
        except BaseException as e:  # noqa: BLE001
            out = json.dumps(_exc_info(e)).encode()
        sys.stdout.flush()
        protocol.write_all(RESP_FD, protocol.pack(out))


def run_main(program: str) -> None:
    """Run the program as __main__ and exit with its status, like the python CLI."""
    rc = 0
    try:
        _load(program, "", "__main__")
    except SystemExit as e:
        code = e.code
        if code is None:
            rc = 0
        elif isinstance(code, int):
            rc = code & 0xFF
        else:
            print(code, file=sys.stderr)
            rc = 1
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        rc = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(rc)


def exec_argv(argv: list[str]) -> None:
    """Replace the process with argv[0] (searched on PATH); report a failed exec on fd 4."""
    try:
        os.set_inheritable(REQ_FD, False)
        os.set_inheritable(RESP_FD, False)
        os.execvp(argv[0], argv)
    except OSError as e:
        _reply({"s": "noexec", "errno": e.errno, "msg": f"{argv[0]}: {e.strerror}"})
    os._exit(127)
