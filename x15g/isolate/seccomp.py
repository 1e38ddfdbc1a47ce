"""A seccomp filter as a classic BPF program, built with `struct` and installed with ctypes.

Why not pyseccomp over libseccomp: the filter is a short deny list plus two argument checks,
about forty instructions written once here; a binding would add a dependency (and a system
library the machine must have) for no speed or safety gain, and this way the whole policy reads
in one screen. Anything outside the deny list is allowed: the handler is ordinary Python on
gevent, and an allow list would break with every interpreter or glibc version.

Denied with EPERM: running programs (execve, execveat), new processes (fork, vfork, clone
without CLONE_THREAD; clone3 answers ENOSYS so glibc falls back to clone for threads), ptrace and
cross-process memory access, mounts and namespaces, kernel modules, kexec, bpf, perf, keyrings,
userfaultfd, io_uring (it would bypass this filter), signals to any process but itself, and
sockets of any family but AF_UNIX. Another architecture's calling convention (x32, i386) is
refused outright, as its numbers differ.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

_NR_X86_64 = {
    "execve": 59, "execveat": 322, "fork": 57, "vfork": 58, "ptrace": 101,
    "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165, "umount2": 166,
    "pivot_root": 155, "chroot": 161, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "unshare": 272,
    "setns": 308, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "kexec_load": 246, "kexec_file_load": 320, "bpf": 321, "perf_event_open": 298,
    "add_key": 248, "request_key": 249, "keyctl": 250, "userfaultfd": 323,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "tkill": 200, "pidfd_send_signal": 424, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "personality": 135, "acct": 163,
    "swapon": 167, "swapoff": 168, "reboot": 169, "settimeofday": 164, "clock_settime": 227,
}
_SOCKET, _CLONE, _CLONE3, _KILL, _TGKILL = 41, 56, 435, 62, 234
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_CLONE_THREAD = 0x00010000

# classic BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K, _JGE_K, _JSET_K = 0x15, 0x35, 0x45
_RET_K = 0x06
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
# offsets into struct seccomp_data
_NR, _ARCH, _ARG0 = 0, 4, 16

_PR_SET_NO_NEW_PRIVS = 38
_SYS_SECCOMP = 317
_SET_MODE_FILTER = 1
_FLAG_TSYNC = 1

_libc = ctypes.CDLL(None, use_errno=True)


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def supported() -> bool:
    """True where this module knows the system call numbers (x86-64 only, for now)."""
    return platform.machine() == "x86_64"


def build_program(own_pid: int) -> bytes:
    """The filter: instructions of 8 bytes each (struct sock_filter)."""
    deny = sorted(_NR_X86_64.values())
    body = [_op(_LD_W_ABS, _ARCH), _op(_JEQ_K, _AUDIT_ARCH_X86_64, 1, 0), _op(_RET_K, _KILL_PROCESS),
            _op(_LD_W_ABS, _NR)]
    # The tail, jumped to by label: allow, deny, the argument checks. `checks` is built first
    # so the jump distances can be counted from the end.
    tail = [
        _op(_RET_K, _ALLOW),                                    # 0 allow
        _op(_RET_K, _ERRNO | errno.EPERM),                      # 1 deny
        _op(_RET_K, _ERRNO | errno.ENOSYS),                     # 2 enosys (clone3)
        _op(_LD_W_ABS, _ARG0),                                  # 3 socket: family
        _op(_JEQ_K, 1, 0, 1),                                   # 4   AF_UNIX -> allow
        _op(_RET_K, _ALLOW),                                    # 5
        _op(_RET_K, _ERRNO | errno.EPERM),                      # 6
        _op(_LD_W_ABS, _ARG0),                                  # 7 clone: flags
        _op(_JSET_K, _CLONE_THREAD, 0, 1),                      # 8   a thread -> allow
        _op(_RET_K, _ALLOW),                                    # 9
        _op(_RET_K, _ERRNO | errno.EPERM),                      # 10
        _op(_LD_W_ABS, _ARG0),                                  # 11 kill/tgkill: pid or tgid
        _op(_JEQ_K, own_pid, 0, 1),                             # 12   itself -> allow
        _op(_RET_K, _ALLOW),                                    # 13
        _op(_RET_K, _ERRNO | errno.EPERM),                      # 14
    ]
    labels = {"allow": 0, "deny": 1, "enosys": 2, "socket": 3, "clone": 7, "signal": 11}
    jumps: list[tuple[int, str]] = [(_X32_BIT, "deny")]
    jumps += [(nr, "deny") for nr in deny]
    jumps += [(_SOCKET, "socket"), (_CLONE, "clone"), (_CLONE3, "enosys"), (_KILL, "signal"), (_TGKILL, "signal")]
    checks = []
    count = len(jumps)
    for index, (nr, label) in enumerate(jumps):
        # distance from the instruction after this one to the label in the tail (+1 for the
        # "allow" that follows the checks)
        distance = (count - index - 1) + 1 + labels[label]
        code = _JGE_K if nr == _X32_BIT else _JEQ_K
        checks.append(_op(code, nr, distance, 0))
    program = body + checks + [_op(_RET_K, _ALLOW)] + tail
    return b"".join(program)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS: no execve can ever grant privileges again (needed for the rest)."""
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_NO_NEW_PRIVS): " + os.strerror(err))


def install(program: bytes) -> None:
    """Load the filter for every thread of the process (SECCOMP_FILTER_FLAG_TSYNC)."""
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    syscall = _libc.syscall
    syscall.restype = ctypes.c_long
    result = syscall(_SYS_SECCOMP, _SET_MODE_FILTER, _FLAG_TSYNC, ctypes.byref(prog))
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, "seccomp(SECCOMP_SET_MODE_FILTER): " + os.strerror(err))
