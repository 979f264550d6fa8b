"""A seccomp filter for sample processes, built by hand (standard library only).

Runs inside the sandbox: the worker builds the BPF program once (`Filter`) and installs it
in itself once its set-up is done (`Filter.install`, one prctl), so the worker runs under
it too and every sample process it forks inherits it before any model code exists; the
processes a sample starts (threads, forks, exec'd compilers and runtimes) inherit it as
well, and none can remove it. (Installed per sample, the kernel checked and JIT-compiled
the program on every fork: ~0.3 ms of CPU per sample.)

Refused with EPERM (the call fails, the sample goes on):

* the kernel keyring: keyctl, add_key, request_key (keys outlive processes and uids are
  reused, so they would be residue);
* new namespaces and mounts: unshare, setns, clone with any CLONE_NEW* flag, mount, umount2,
  pivot_root and the new mount API (fsopen, fsmount, fsconfig, fspick, move_mount,
  open_tree, mount_setattr);
* scheduling and resource changes aimed at any process but the caller: prlimit64 with a pid
  (setting limits; reading is allowed), sched_setaffinity with a pid, setpriority other than
  PRIO_PROCESS of the caller, and sched_setscheduler / sched_setparam / sched_setattr /
  ioprio_set altogether;
* debugging and kernel surfaces: ptrace, process_vm_readv/writev, pidfd_getfd,
  perf_event_open, bpf, userfaultfd, fanotify_init, open_by_handle_at, kexec_load,
  init/finit/delete_module, swapon/swapoff, reboot, acct, quotactl.

clone3 and io_uring_setup return ENOSYS (clone3 flags live in memory a filter cannot read;
libc then falls back to clone, whose flags it can; io_uring operations bypass seccomp).
A system call from another ABI (x32, or 32-bit int 0x80 on x86_64) kills the process.

Supported architectures: x86_64 and aarch64; elsewhere `Filter.build()` returns None and the
worker reports that it runs without a filter.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

# BPF opcodes
_LD_W_ABS = 0x20
_JEQ = 0x15
_JSET = 0x45
_RET = 0x06
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000

_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

CLONE_NEW_MASK = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)

DENIED = [
    "keyctl",
    "add_key",
    "request_key",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "sched_setscheduler",
    "sched_setparam",
    "sched_setattr",
    "ioprio_set",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "perf_event_open",
    "bpf",
    "userfaultfd",
    "fanotify_init",
    "open_by_handle_at",
    "kexec_load",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
]
NOSYS = ("clone3", "io_uring_setup")

# (audit arch, syscall numbers) per machine
_X86_64 = {
    "clone": 56,
    "ptrace": 101,
    "setpriority": 141,
    "sched_setparam": 142,
    "sched_setscheduler": 144,
    "pivot_root": 155,
    "acct": 163,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "sched_setaffinity": 203,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "ioprio_set": 251,
    "unshare": 272,
    "perf_event_open": 298,
    "fanotify_init": 300,
    "prlimit64": 302,
    "open_by_handle_at": 304,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "finit_module": 313,
    "sched_setattr": 314,
    "bpf": 321,
    "userfaultfd": 323,
}
_AARCH64 = {  # asm-generic numbering
    "ioprio_set": 30,
    "umount2": 39,
    "mount": 40,
    "pivot_root": 41,
    "quotactl": 60,
    "acct": 89,
    "unshare": 97,
    "kexec_load": 104,
    "init_module": 105,
    "delete_module": 106,
    "ptrace": 117,
    "sched_setparam": 118,
    "sched_setscheduler": 119,
    "sched_setaffinity": 122,
    "setpriority": 140,
    "reboot": 142,
    "add_key": 217,
    "request_key": 218,
    "keyctl": 219,
    "clone": 220,
    "swapon": 224,
    "swapoff": 225,
    "perf_event_open": 241,
    "prlimit64": 261,
    "fanotify_init": 262,
    "open_by_handle_at": 265,
    "setns": 268,
    "process_vm_readv": 270,
    "process_vm_writev": 271,
    "finit_module": 273,
    "sched_setattr": 274,
    "bpf": 280,
    "userfaultfd": 282,
}
_COMMON = {  # numbers shared by both (added after the per-arch split in Linux 5.x)
    "io_uring_setup": 425,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "clone3": 435,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
}
ARCHES = {
    "x86_64": (0xC000003E, {**_X86_64, **_COMMON}),
    "aarch64": (0xC00000B7, {**_AARCH64, **_COMMON}),
}
_X32_BIT = 0x40000000


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


def _arg(i: int, high: bool = False) -> int:
    """Offset of syscall argument i (its low or high 32 bits; little endian) in seccomp_data."""
    return 16 + 8 * i + (4 if high else 0)


def program(machine: str | None = None) -> bytes | None:
    """The filter as packed sock_filter instructions (None for an unsupported machine)."""
    machine = machine or platform.machine()
    if machine not in ARCHES:
        return None
    audit, nr = ARCHES[machine]
    eperm = _ERRNO | errno.EPERM
    enosys = _ERRNO | errno.ENOSYS
    out: list[bytes] = [
        _ins(_LD_W_ABS, 4),  # arch
        _ins(_JEQ, audit, 1, 0),
        _ins(_RET, _KILL_PROCESS),
        _ins(_LD_W_ABS, 0),  # syscall number
    ]
    if machine == "x86_64":  # x32 ABI numbers
        out += [_ins(0x35, _X32_BIT, 0, 1), _ins(_RET, _KILL_PROCESS)]  # JGE

    def block(name: str, body: list[bytes]) -> None:
        # if nr == name: body (which returns) ; else skip it
        out.append(_ins(_JEQ, nr[name], 0, len(body)))
        out.extend(body)

    for name in DENIED:
        block(name, [_ins(_RET, eperm)])
    for name in NOSYS:
        block(name, [_ins(_RET, enosys)])
    # (the accumulator still holds the syscall number after a block that did not match)
    # clone(flags, ...): refuse new namespaces
    block(
        "clone",
        [_ins(_LD_W_ABS, _arg(0)), _ins(_JSET, CLONE_NEW_MASK, 0, 1), _ins(_RET, eperm)]
        + [_ins(_RET, _ALLOW)],
    )
    # prlimit64(pid, resource, new, old): another process's limits may be read, not set
    block(
        "prlimit64",
        [
            _ins(_LD_W_ABS, _arg(0)),
            _ins(_JEQ, 0, 5, 0),  # pid == 0 (the caller): allow
            _ins(_LD_W_ABS, _arg(2)),
            _ins(_JEQ, 0, 0, 2),  # new_limit low half != 0: refuse
            _ins(_LD_W_ABS, _arg(2, True)),
            _ins(_JEQ, 0, 1, 0),  # new_limit == NULL (a read): allow
            _ins(_RET, eperm),
            _ins(_RET, _ALLOW),
        ],
    )
    # sched_setaffinity(pid, ...): only the caller itself
    block(
        "sched_setaffinity",
        [_ins(_LD_W_ABS, _arg(0)), _ins(_JEQ, 0, 1, 0), _ins(_RET, eperm), _ins(_RET, _ALLOW)],
    )
    # setpriority(which, who, prio): only PRIO_PROCESS of the caller
    block(
        "setpriority",
        [
            _ins(_LD_W_ABS, _arg(0)),
            _ins(_JEQ, 0, 0, 2),  # which == PRIO_PROCESS, else refuse
            _ins(_LD_W_ABS, _arg(1)),
            _ins(_JEQ, 0, 1, 0),  # who == 0: allow
            _ins(_RET, eperm),
            _ins(_RET, _ALLOW),
        ],
    )
    out.append(_ins(_RET, _ALLOW))
    return b"".join(out)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Filter:
    """The compiled filter, built once in the worker and installed in each sample process."""

    def __init__(self, code: bytes | None) -> None:
        self.code = code
        self._buf = ctypes.create_string_buffer(code or b"\0", len(code or b"\0"))
        self._prog = _SockFprog(len(code or b"") // 8, ctypes.addressof(self._buf))
        self._libc = ctypes.CDLL(None, use_errno=True)

    @classmethod
    def build(cls) -> Filter | None:
        code = program()
        return cls(code) if code else None

    def install(self) -> None:
        """Apply the filter to the calling process (needs no_new_privs; raises OSError)."""
        rc = self._libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(self._prog), 0, 0)
        if rc != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"seccomp filter not installed: {os.strerror(e)}")
