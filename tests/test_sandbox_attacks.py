"""Hostile samples by attack class, run through the sandbox API mixed with honest ones.

Every attack is a completion whose answers are WRONG (so any pass is a false pass) and
which, before answering, tries one thing against the worker, later samples or the host.
When the thing it tried worked it prints ATTACK-SUCCEEDED, so a test sees the attempt's
outcome too, not only the verdict. Between attacks run honest *probes*: correct
completions that also check that their own environment is pristine (rlimits, scheduling
policy, nice value, CPU affinity, a clean /tmp) and return a wrong answer when it is not,
so any influence of an earlier sample on a later one shows as a changed verdict.

Classes (ATTACKS keys): rlimits of the parent/worker, scheduling, keyring, user namespaces
and mounts, /proc and host-file snooping, signals to other processes, fork bombs, bytes
that break text handling (lone surrogates, NUL, invalid UTF-8, floods), forged replies with
hash-colliding elements, protocol forgery, class/handle forging. Sleepers and `codebench
score` have their own tests below. Every test decides by outcome, never by timing.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from codebench.sandbox import Outcome, Sandbox, TestsJob, seccomp
from codebench.sandbox.problems import load_humaneval

TESTS = "assert add(1, 2) == 3\nassert add(2, 2) == 4\nassert add(10, 5) == 15\n"
MARK = "ATTACK-SUCCEEDED"
REPO = str(Path(__file__).resolve().parents[1])
P61 = (1 << 61) - 1
TIMEOUT = 1.0
MEMORY_MB = 768
AFFINITY = sorted(os.sched_getaffinity(0))
NICE = os.getpriority(os.PRIO_PROCESS, 0)  # samples inherit it (`nice make test` runs at 19)

# ------------------------------------------------------------------------ the honest probe
PROBE = f"""
import os, resource
EXPECT = {{
    resource.RLIMIT_NOFILE: (256, 256),
    resource.RLIMIT_FSIZE: (64 << 20, 64 << 20),
    resource.RLIMIT_AS: ({MEMORY_MB} << 20, {MEMORY_MB} << 20),
    resource.RLIMIT_CORE: (0, 0),
}}
def pristine():
    bad = [r for r, v in EXPECT.items() if resource.getrlimit(r) != v]
    if os.sched_getscheduler(0) != os.SCHED_OTHER or os.getpriority(os.PRIO_PROCESS, 0) != {NICE}:
        bad.append("sched")
    if sorted(os.sched_getaffinity(0)) != {AFFINITY!r}:
        bad.append("affinity")
    if [n for n in os.listdir("/tmp") if n != "sample"] or os.listdir("/dev/shm"):
        bad.append("tmp")
    if os.listdir("."):
        bad.append("cwd")
    return bad
def add(a, b):
    bad = pristine()
    if bad:
        print("TAINTED", bad)
        return None
    return a + b
"""

_HELPERS = f"""
import ctypes, os, resource, signal, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
def hit(what):
    print("{MARK}", what, flush=True)
def attempt(what, fn):
    try:
        r = fn()
    except Exception:
        return
    hit(what if r is None else f"{{what}} -> {{r!r}}"[:200])
def cli(what, argv):
    try:
        r = subprocess.run(argv, capture_output=True, timeout=5)
    except Exception:
        return
    if r.returncode == 0:
        hit(what)
def sys_ok(what, nr, *args):
    if libc.syscall(nr, *args) >= 0:
        hit(what)
"""
_NR = {
    name: seccomp.ARCHES.get(platform.machine(), seccomp.ARCHES["x86_64"])[1][name]
    for name in ("add_key", "keyctl", "ioprio_set", "ptrace")
}


def _attack(body: str) -> str:
    """A completion that runs `body` inside add(), then answers wrongly."""
    inner = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return _HELPERS + "def add(a, b):\n" + inner + "\n    return a - b - 1\n"


ATTACKS: dict[str, dict[str, str]] = {
    "rlimits": {
        "prlimit_parent_" + r.lower(): _attack(
            f"for pid in (os.getppid(), 1):\n"
            f"    attempt('prlimit {r}', lambda: resource.prlimit(pid, resource.{r}, (3, 3)))"
        )
        for r in ("RLIMIT_NOFILE", "RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NPROC")
    }
    | {
        "prlimit_cli": _attack("cli('prlimit cli', ['prlimit', '--pid', '1', '--nofile=4:4'])"),
    },
    "scheduling": {
        "setscheduler_idle": _attack(
            "for pid in (0, 1):\n"
            "    attempt('sched idle', lambda: os.sched_setscheduler(pid, os.SCHED_IDLE, "
            "os.sched_param(0)))"
        ),
        "affinity_parent": _attack("attempt('affinity', lambda: os.sched_setaffinity(1, {0}))"),
        "nice_parent": _attack(
            "attempt('nice pid', lambda: os.setpriority(os.PRIO_PROCESS, 1, 19))\n"
            "attempt('nice user', lambda: os.setpriority(os.PRIO_USER, 0, 19))\n"
            "attempt('nice pgrp', lambda: os.setpriority(os.PRIO_PGRP, 1, 19))"
        ),
        "ioprio_parent": _attack(f"sys_ok('ioprio', {_NR['ioprio_set']}, 1, 1, (3 << 13))"),
        "sched_cli": _attack(
            "cli('renice', ['renice', '-n', '19', '-p', '1'])\n"
            "cli('taskset', ['taskset', '-p', '1', '1'])\n"
            "cli('chrt', ['chrt', '-i', '-p', '0', '1'])"
        ),
    },
    "keyring": {
        "add_key_user": _attack(
            f"sys_ok('add_key', {_NR['add_key']}, b'user', b'codebench-attack', b'x', 1, "
            "ctypes.c_long(-4))"
        ),
        "join_session_keyring": _attack(
            f"sys_ok('keyctl join', {_NR['keyctl']}, 1, b'codebench-attack')"
        ),
    },
    "namespaces": {
        "unshare_user": _attack(
            "for flag in (0x10000000, 0x00020000, 0x40000000):\n"
            "    if libc.unshare(flag) == 0:\n"
            "        hit(f'unshare {flag:#x}')"
        ),
        "unshare_cli": _attack("cli('unshare -Ur', ['unshare', '-Ur', 'true'])"),
        "bwrap_inside": _attack(
            "cli('bwrap', ['bwrap', '--unshare-user', '--ro-bind', '/', '/', 'true'])"
        ),
        "mount_tmpfs": _attack(
            "os.makedirs('m', exist_ok=True)\n"
            "if libc.mount(b'none', b'm', b'tmpfs', 0, None) == 0:\n"
            "    hit('mount')"
        ),
    },
    "proc": {
        "host_paths": _attack(
            "import glob\n"
            "for path in ['/proc/1/cmdline', '/proc/1/environ', *glob.glob('/proc/*/cmdline'),"
            " *glob.glob('/proc/*/environ')]:\n"
            "    try:\n"
            "        data = open(path, 'rb').read().decode('latin-1')\n"
            "    except OSError:\n"
            "        continue\n"
            f"    if {REPO!r} in data or {sys.prefix!r} in data:\n"
            "        hit('host path in ' + path)\n"
            f"if {REPO!r} in str(os.environ) or {sys.prefix!r} in str(os.environ):\n"
            "    hit('host path in environ')"
        ),
        "host_processes": _attack(
            "pids = [p for p in os.listdir('/proc') if p.isdigit()]\nif len(pids) > 8:\n"
            "    hit(f'{len(pids)} processes visible')"
        ),
        "host_files": _attack(
            f"for path in ({__file__!r}, {REPO!r} + '/README.md', {REPO!r}, '/home'):\n"
            "    attempt('read ' + path, lambda: os.listdir(path) if os.path.isdir(path) "
            "else open(path).read(10))"
        ),
    },
    "worker_memory": {
        "ptrace_worker": _attack(
            f"if libc.syscall({_NR['ptrace']}, 16, 1, 0, 0) == 0:\n"  # PTRACE_ATTACH
            "    hit('ptrace attach')"
        ),
        "proc_mem_and_knobs": _attack(
            "for path, data in (('/proc/1/mem', None), ('/proc/1/oom_score_adj', b'1000'),\n"
            "                   ('/proc/1/comm', b'x'), ('/proc/sysrq-trigger', b'h')):\n"
            "    try:\n"
            "        if data is None:\n"
            "            open(path, 'rb').read(1)\n"
            "        else:\n"
            "            open(path, 'wb').write(data)\n"
            "        hit('opened ' + path)\n"
            "    except OSError:\n"
            "        pass"
        ),
        "become_root": _attack(
            "attempt('setuid 0', lambda: os.setuid(0))\nattempt('setgid 0', lambda: os.setgid(0))"
        ),
    },
    "signals": {
        "kill_worker": _attack(
            "for sig in (signal.SIGSTOP, signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV):\n"
            "    for pid in (os.getppid(), 1):\n"
            "        os.kill(pid, sig)"
        ),
        # kill() to PID 1 "succeeds" but the kernel drops it: the effect is checked by
        # the probes after it and by the worker never restarting
        "kill_everything": _attack(
            "for p in os.listdir('/proc'):\n"
            "    if p.isdigit() and int(p) != os.getpid():\n"
            "        try:\n"
            "            os.kill(int(p), 9)\n"
            "        except OSError:\n"
            "            pass\n"
            "attempt('kill -1', lambda: os.kill(-1, 9))"
        ),
        "setpgid_worker": _attack(
            "try:\n"
            "    os.setpgid(0, os.getpgid(1))\n"
            "except OSError:\n"
            "    pass\n"
            "attempt('killpg', lambda: os.killpg(0, signal.SIGKILL))"
        ),
    },
    "forkbomb": {
        "fork_bomb": _attack(
            "for _ in range(10000):\n"
            "    try:\n"
            "        if os.fork() == 0:\n"
            "            while True:\n"
            "                pass\n"
            "    except OSError:\n"
            "        break"
        ),
        "daemon_survivor": _attack(
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        import time\n"
            "        open('/tmp/left-behind', 'w').write('x')\n"
            "        time.sleep(3600)\n"
            "    os._exit(0)\n"
            "os.wait()"
        ),
        "leave_files": _attack(
            "open('/tmp/junk', 'w').write('x')\nopen('/dev/shm/junk', 'w').write('x')\n"
            "open('junk', 'w').write('x')\nos.chmod('.', 0o500)"
        ),
        "lower_own_limits": _attack(
            "resource.setrlimit(resource.RLIMIT_NOFILE, (5, 5))\n"
            "os.setpriority(os.PRIO_PROCESS, 0, 19)\nos.sched_setaffinity(0, {0})"
        ),
    },
    "text": {
        "surrogate_exception": _attack("raise ValueError('bad \\ud800 \\udfff \\x00 end')"),
        "surrogate_output": _attack(
            "sys.stdout.buffer.write(b'\\xff\\xfe\\x00\\xed\\xa0\\x80')\nsys.stdout.flush()\n"
            "print('\\ud800'.encode('utf-8', 'surrogatepass'), file=sys.stderr)"
        ),
        "surrogate_return": "def add(a, b):\n    return '\\ud800\\x00' * 3\n",
        "flood": _attack("sys.stdout.write('y' * (30 << 20))"),
        "huge_value": "def add(a, b):\n    return 'z' * (6 << 20)\n",
    },
    "collisions": {
        # a forged reply: the sample writes the reply frame itself, then blocks
        "colliding_set_reply": _attack(
            "import json, struct, time\n"
            f"v = {{'$s': [k * {P61} for k in range(1, 60000)]}}\n"
            "body = json.dumps({'s': 'ok', 'v': v}).encode()\n"
            "os.write(4, struct.pack('>I', len(body)) + body)\n"
            "os._exit(0)"
        ),
        "colliding_dict_reply": _attack(
            "import json, struct, time\n"
            f"v = {{'$D': [[k * {P61}, 1] for k in range(1, 60000)]}}\n"
            "body = json.dumps({'s': 'ok', 'v': v}).encode()\n"
            "os.write(4, struct.pack('>I', len(body)) + body)\n"
            "os._exit(0)"
        ),
        "colliding_list": f"def add(a, b):\n    return [k * {P61} for k in range(1, 60000)]\n",
        "colliding_in_tuples": f"def add(a, b):\n    return [(k * {P61},) for k in range(1, 30000)]\n",
    },
    "protocol": {
        # replies the sample writes itself are its answers like any other (it could as well
        # return them); forged ones with wrong values, or forged exceptions, still fail
        "fake_frames": _attack(
            "import json, struct\n"
            "for v in (0, 'x', None):\n"
            "    body = json.dumps({'s': 'ok', 'v': v}).encode()\n"
            "    os.write(4, struct.pack('>I', len(body)) + body)"
        ),
        "forged_exception_frames": _attack(
            "import json, struct\n"
            "for t in ('StopIteration', 'KeyboardInterrupt', 'SystemExit', 'AssertionError'):\n"
            "    body = json.dumps({'s': 'exc', 'type': t, 'mod': 'builtins', 'msg': ''}).encode()\n"
            "    os.write(4, struct.pack('>I', len(body)) + body)"
        ),
        "empty_frames": _attack("os.write(4, b'\\0\\0\\0\\0' * 8)"),
        "oversized_frame": _attack("os.write(4, b'\\xff\\xff\\xff\\xff')"),
        "close_channels": _attack("os.closerange(0, 64)"),
    },
}
PLAIN = [(cls, name, prog) for cls, group in ATTACKS.items() for name, prog in group.items()]


def _procs_of(uid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    pids.append(int(name))
            except OSError:
                continue
    return pids


def _keys_of(uids: list[int]) -> dict[int, str]:
    """/proc/key-users lines of these uids (key counts; absent when a uid owns no keys)."""
    out = {}
    for line in Path("/proc/key-users").read_text().splitlines():
        uid = int(line.split(":")[0])
        if uid in uids:
            out[uid] = line.split(":", 1)[1].split()[1]
    return out


def _ipc_of(uids: list[int]) -> list[str]:
    found = []
    for kind in ("shm", "sem", "msg"):
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        head = lines[0].split()
        found += [ln for ln in lines[1:] if int(ln.split()[head.index("uid")]) in uids]
    return found


@pytest.fixture(scope="module")
def run():
    """Every attack, each followed by an honest probe, on ONE worker (so each probe runs right
    after an attacker, on the worker it may have damaged), then a few more probes."""
    jobs, names = [], []
    for cls, name, prog in PLAIN:
        jobs += [TestsJob(prog, TESTS, "add"), TestsJob(PROBE, TESTS, "add")]
        names += [(cls, name), ("honest", f"after {name}")]
    with Sandbox(workers=1, timeout=TIMEOUT, memory_mb=MEMORY_MB) as sb:
        uids = [w.lease.uid for w in sb._workers]
        keys_before = _keys_of(uids)
        results = sb.map(jobs)
        extra = sb.map([TestsJob(PROBE, TESTS, "add")] * 3)
        starts = sb._workers[0].starts
        label = sb.isolation_label
    after = {
        "procs": [p for u in uids for p in _procs_of(u)],
        "keys": _keys_of(uids),
        "keys_before": keys_before,
        "ipc": _ipc_of(uids),
    }
    yield {
        "results": list(zip(names, results, strict=True)),
        "extra": extra,
        "starts": starts,
        "after": after,
        "uids": uids,
        "label": label,
    }


def test_corpus_covers_every_class():
    assert len(ATTACKS) >= 11 and len(PLAIN) >= 44


def test_no_attack_passes(run):
    false = [n for (cls, n), r in run["results"] if cls != "honest" and r.passed]
    assert false == []


def test_no_attack_succeeded(run):
    hits = [
        (n, r.stdout[:300])
        for (cls, n), r in run["results"]
        if cls != "honest" and MARK in r.stdout
    ]
    assert hits == []


def _load_only(r) -> bool:
    """A probe that only ran out of wall-clock time on a loaded machine (never tainted)."""
    return (
        r.outcome is Outcome.TIMEOUT
        and "TAINTED" not in r.stdout
        and ("starved" in r.detail or "wall-clock" in r.detail)
    )


def test_honest_probes_unaffected(run):
    probes = [(n, r) for (c, n), r in run["results"] if c == "honest"] + [
        ("extra", r) for r in run["extra"]
    ]
    assert not any("TAINTED" in r.stdout for _n, r in probes)
    bad = [(n, r.outcome, r.detail) for n, r in probes if not r.passed and not _load_only(r)]
    assert bad == []
    assert sum(r.passed for _n, r in probes) >= len(probes) - 2  # load may starve one or two


def test_worker_was_never_taken_down(run):
    # nothing an attack did killed the worker; it was replaced only after a job that
    # changed its own limits/scheduling/affinity (none of the attacks above can)
    assert run["starts"] == 1


def test_no_residue(run):
    after = run["after"]
    assert after["procs"] == []  # the worker is gone with the Sandbox, and every sample
    assert after["keys"] == after["keys_before"]  # no keys added to the sandbox uids
    assert after["ipc"] == []


def test_text_is_always_representable(run):
    for (cls, _n), r in run["results"]:
        if cls == "text":
            json.dumps(r.to_dict(), ensure_ascii=False).encode("utf-8")  # no exception
            for field in (r.detail, r.stdout, r.stderr):
                field.encode("utf-8")
    flood = dict(((n, r) for (_c, n), r in run["results"]))["flood"]
    assert len(flood.stdout) < 100_000


def test_collisions_fail_alone(run):
    res = dict(((n, r) for (c, n), r in run["results"] if c == "collisions"))
    for name in ("colliding_set_reply", "colliding_dict_reply", "colliding_list"):
        assert res[name].outcome is Outcome.FAILED and "hash" in res[name].detail, name


def test_isolation_recorded(run):
    assert run["label"] == "bwrap"
    assert {r.isolation for _n, r in run["results"]} == {"bwrap"}


# ------------------------------------------------------------------------ class handles
SOLUTION_TESTS = """
s = Solution()
assert s.twoSum([2, 7, 11, 15], 9) == [0, 1]
assert Solution().twoSum([3, 2, 4], 6) == [1, 2]
assert s.isValid("()[]{}") is True
assert s.isValid("(]") is False
assert not s.isValid("(")
"""
SOLUTION = """
class Solution:
    def twoSum(self, nums, target):
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i
    def isValid(self, s):
        stack, pairs = [], {")": "(", "]": "[", "}": "{"}
        for c in s:
            if c in pairs:
                if not stack or stack.pop() != pairs[c]:
                    return False
            else:
                stack.append(c)
        return not stack
"""
FORGED_SOLUTIONS = {
    "always_equal": """
class Yes(list):
    pass
class Eq:
    def __eq__(self, o): return True
    def __ne__(self, o): return False
    def __bool__(self): return True
    def __hash__(self): return 0
class Solution:
    def twoSum(self, nums, target): return Eq()
    def isValid(self, s): return Eq()
""",
    "catch_all_getattr": """
class Solution:
    def __getattr__(self, name):
        return lambda *a, **k: [0, 1]
""",
    "forged_handle": """
import wire
class Fake(wire.Remote):
    pass
class Solution:
    def twoSum(self, nums, target):
        f = Fake.__new__(Fake)
        object.__setattr__(f, "_hid", 0)
        return f
    def isValid(self, s):
        return self
""",
    "metaclass_call": """
class Meta(type):
    def __call__(cls, *a, **k):
        return [0, 1]
class Solution(metaclass=Meta):
    pass
""",
    "bool_only": """
class T:
    def __bool__(self): return True
class Solution:
    def twoSum(self, nums, target): return T()
    def isValid(self, s): return T()
""",
}


def test_stop_iteration_from_the_sample_cannot_end_trusted_iteration():
    # a StopIteration raised by the completion inside map()/filter() in the trusted tests
    # would silently end the iteration (all([]) is True); it arrives as CandidateError
    stopper = "def is_even(x):\n    raise StopIteration\n"
    tests = "assert all(map(is_even, [1, 3, 5]))\nassert list(filter(is_even, [1, 2])) == []\n"
    with Sandbox(workers=1, timeout=2.0) as sb:
        r = sb.run_tests(stopper, tests)
        ok = sb.run_tests(
            "def is_even(x):\n    return x % 2 == 0\n", "assert all(map(is_even, [2, 4]))\n"
        )
    assert r.outcome is Outcome.FAILED and "StopIteration" in r.detail, r
    assert ok.passed, ok.detail


def test_class_based_solutions_pass_and_forged_ones_fail():
    jobs = [TestsJob(SOLUTION, SOLUTION_TESTS)]
    jobs += [TestsJob(p, SOLUTION_TESTS) for p in FORGED_SOLUTIONS.values()]
    jobs += [TestsJob(SOLUTION, SOLUTION_TESTS)]
    with Sandbox(workers=2, timeout=2.0) as sb:
        first, *forged, again = sb.map(jobs)
    assert first.passed and again.passed, (first.detail, again.detail)
    assert [r.outcome for r in forged] == [Outcome.FAILED] * len(FORGED_SOLUTIONS), [
        r.detail for r in forged
    ]


LISTNODE = """
class ListNode:
    def __init__(self, val=0, next=None):
        self.val = val
        self.next = next
"""
LIST_TESTS = """
def build(xs):
    head = None
    for x in reversed(xs):
        head = ListNode(x, head)
    return head
def values(node):
    out = []
    while node:
        out.append(node.val)
        node = node.next
    return out
assert values(reverseList(build([1, 2, 3]))) == [3, 2, 1]
assert values(reverseList(build([]))) == []
assert Solution().reverse(build([4, 5])).val == 5
"""


def test_trusted_objects_go_by_value_and_returned_objects_by_handle():
    # the tests build a linked list from the prompt's ListNode (trusted, host side); it
    # reaches the sample as its own ListNode; the reversed list comes back as handles
    good = LISTNODE + (
        "def reverseList(head):\n    prev = None\n    while head:\n"
        "        head.next, prev, head = prev, head, head.next\n    return prev\n"
        "class Solution:\n    def reverse(self, head):\n        return reverseList(head)\n"
    )
    same = LISTNODE + (
        "def reverseList(head):\n    return head\n"
        "class Solution:\n    def reverse(self, head):\n        return head\n"
    )
    forged = LISTNODE + (
        "class Node:\n    val = 3\n    def __bool__(self):\n        return True\n"
        "    @property\n    def next(self):\n        return None\n"
        "def reverseList(head):\n    return Node()\n"
        "class Solution:\n    def reverse(self, head):\n        return Node()\n"
    )
    with Sandbox(workers=1, timeout=2.0) as sb:
        results = [sb.run_tests(p, LIST_TESTS, prelude=LISTNODE) for p in (good, same, forged)]
    assert [r.outcome for r in results] == [Outcome.PASSED, Outcome.FAILED, Outcome.FAILED], [
        r.detail for r in results
    ]


# ------------------------------------------------------------------------------ sleepers
SLEEPERS = {
    "sleep": "import time\ndef add(a, b):\n    time.sleep(3600)\n",
    "event_wait": "import threading\ndef add(a, b):\n    threading.Event().wait()\n",
    "pipe_read": "import os\ndef add(a, b):\n    r, w = os.pipe()\n    os.read(r, 1)\n",
    "pause": "import signal\ndef add(a, b):\n    signal.pause()\n",
}


def test_sleepers_time_out_once_without_serial_retries():
    honest = "def add(a, b):\n    return a + b\n"
    jobs = [TestsJob(p, TESTS, "add") for p in SLEEPERS.values()] + [TestsJob(honest, TESTS)] * 4
    seen_first = []
    with Sandbox(workers=2, timeout=0.5) as sb:  # retry_timeouts on (the default)
        results = sb.map(jobs, first_pass=lambda i, r: seen_first.append(i))
    sleepers, honest_results = results[: len(SLEEPERS)], results[len(SLEEPERS) :]
    for name, r in zip(SLEEPERS, sleepers, strict=True):
        assert r.outcome is Outcome.TIMEOUT, (name, r)
        assert r.attempts == 1 and "blocked" in r.detail, (name, r.detail)
    assert seen_first == []  # nothing was retried
    assert all(r.passed for r in honest_results)


def test_starved_sample_is_retried_or_reported_starved():
    # the sample pins itself and 3 spinning children to one CPU: it is runnable but gets
    # about a quarter of that CPU (less on a loaded machine), so it hits the wall-clock
    # limit starved (not blocked, CPU budget unused). Either it is retried once with its
    # first pass reported, or -- when its share of a CPU was too small for a retry to reach
    # the CPU budget -- the timeout is final and says so. Never blocked, never silent.
    starved = (
        "import os\ndef add(a, b):\n    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "    for _ in range(3):\n        if os.fork() == 0:\n            while True:\n"
        "                pass\n    while True:\n        pass\n"
    )
    firsts = []
    with Sandbox(workers=1, timeout=0.5) as sb:
        (r,) = sb.map([TestsJob(starved, TESTS, "add")], first_pass=lambda i, x: firsts.append(x))
    assert r.outcome is Outcome.TIMEOUT and "blocked" not in r.detail, r.detail
    if r.attempts == 2:
        assert r.first_pass and r.first_pass["outcome"] == "timeout"
        assert len(firsts) == 1 and firsts[0].outcome is Outcome.TIMEOUT
    else:
        assert firsts == [] and ("starved" in r.detail or "CPU limit" in r.detail), r.detail


def test_retries_run_in_parallel_after_their_first_pass_is_reported(monkeypatch):
    # the pool's retry logic on its own (a stand-in for run_job): every starved first
    # attempt is reported, then retried with twice the wall-clock allowance; retry_only
    # runs just the retry for jobs whose first pass a caller stored earlier
    from codebench.sandbox import pool
    from codebench.sandbox.outcome import Result

    seen: list[tuple[str, float]] = []

    def fake(worker, settings, job):
        seen.append((job.program, settings.wall_factor))
        if job.program.startswith("slow") and settings.wall_factor < 4:
            return Result(Outcome.TIMEOUT, "timed out (wall-clock limit)"), False
        return Result(Outcome.PASSED), False

    monkeypatch.setattr(pool, "run_job", fake)
    jobs = [TestsJob(p, "") for p in ("slow1", "fast", "slow2", "slow3")]
    firsts: list[int] = []
    with Sandbox(workers=2, timeout=1.0) as sb:
        results = sb.map(jobs, first_pass=lambda i, r: firsts.append(i))
        again = list(sb.imap(jobs[:2], retry_only=[0]))
    assert sorted(firsts) == [0, 2, 3]
    assert [r.outcome for r in results] == [Outcome.PASSED] * 4
    assert [r.attempts for r in results] == [2, 1, 2, 2]
    assert results[0].first_pass == {"outcome": "timeout", "detail": "timed out (wall-clock limit)"}
    assert dict(again)[0].attempts == 2 and ("slow1", 4.0) in seen[-2:]


# -------------------------------------------------------------------- codebench score CLI
def _completion(body: str) -> str:
    return "\n".join("    " + line for line in body.strip("\n").splitlines()) + "\n"


SCORE_ATTACKS = {
    "prlimit": "import os, resource\n"
    "for p in (os.getppid(), 1):\n"
    "    try:\n"
    "        resource.prlimit(p, resource.RLIMIT_NOFILE, (3, 3))\n"
    "    except OSError:\n"
    "        pass\n"
    "return None",
    "affinity": "import os\ntry:\n    os.sched_setaffinity(1, {0})\nexcept OSError:\n    pass\n"
    "return None",
    "surrogate_message": "raise ValueError('\\ud800\\x00')",
    "surrogate_in_source": "return '\ud800'",  # a lone surrogate in the program text itself
    "collision": f"return {{k * {P61} for k in range(1, 3000)}}",
    "forkbomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
    "        pass",
    "sleeper": "import time\ntime.sleep(3600)",
    "kill": "import os\nos.kill(1, 9)\nos.kill(os.getppid(), 19)\nreturn None",
}


def _score_run(tmp_path: Path, ntasks: int, attacks: dict[str, str]) -> None:
    problems = load_humaneval()
    tasks = list(problems)[:ntasks]
    rows = []
    for tid in tasks:
        for name, body in attacks.items():
            rows.append({"task_id": tid, "completion": _completion(body), "attack": name})
            rows.append({"task_id": tid, "completion": problems[tid]["canonical_solution"]})
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = dict(os.environ, PYTHONPATH=str(Path(REPO) / "lib"))
    proc = subprocess.run(
        [sys.executable, "-m", "codebench.score", str(path), "--benchmark", "humaneval"]
        + ["--timeout", "1", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "samples_results.jsonl"
    recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(recs) == len(rows)
    for row, rec in zip(rows, recs, strict=True):
        if "attack" in row:
            assert not rec["passed"], (row["attack"], rec)
        else:
            assert rec["passed"], rec  # honest verdicts unchanged by the attackers around them
    assert json.loads(proc.stdout.strip().splitlines()[-1])["pass@1"] == 0.5


QUICK_SCORE = ("prlimit", "affinity", "surrogate_message", "surrogate_in_source", "collision")


def test_score_cli_with_attackers_mixed_in(tmp_path):
    _score_run(tmp_path, 1, {k: SCORE_ATTACKS[k] for k in QUICK_SCORE})


@pytest.mark.slow
def test_score_cli_with_every_attack_mixed_in(tmp_path):
    _score_run(tmp_path, 3, SCORE_ATTACKS)


# ------------------------------------------------------- sandbox errors and isolation mode
def test_failure_to_enter_the_sandbox_is_a_sandbox_error():
    # limits the worker cannot grant (a hard limit above its own): the sample process
    # fails before any model code runs; that is our failure, marked sandbox-error (which
    # `codebench score` reruns on resume), never the sample's
    with Sandbox(workers=1, timeout=1.0) as sb:
        sb.settings.nofile = 1 << 40
        r = sb.run_tests("def add(a, b):\n    return a + b\n", TESTS, "add")
        c = sb.call("def f():\n    return 1\n", "f", [()])
    assert r.outcome is Outcome.SANDBOX_ERROR and "enter the sandbox" in r.detail, r
    assert c.outcome is Outcome.SANDBOX_ERROR, c


def test_never_silently_unisolated(monkeypatch):
    from codebench.sandbox import isolation

    monkeypatch.setattr(isolation, "bwrap_usable", lambda bwrap=None: False)
    monkeypatch.delenv("CODEBENCH_UNSAFE_NO_SANDBOX", raising=False)
    monkeypatch.delenv("CODEBENCH_SANDBOX_ISOLATION", raising=False)
    with pytest.raises(isolation.IsolationError, match="bubblewrap"):
        Sandbox(workers=1)
    with pytest.raises(isolation.IsolationError, match="unsafe"):
        Sandbox(workers=1, isolation="fallback")
    monkeypatch.setattr(isolation, "_warned", True)
    with Sandbox(workers=1, timeout=2.0, unsafe_no_isolation=True) as sb:
        r = sb.run_tests("def add(a, b):\n    return a + b\n", TESTS, "add")
    assert r.passed and r.isolation == "unsafe-fallback"
