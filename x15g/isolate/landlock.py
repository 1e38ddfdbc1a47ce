"""Landlock (Linux >= 5.13) through its three system calls, with ctypes.

A ruleset names the access rights it handles; everything handled and not granted by a rule on a
directory (or one of its ancestors) is denied to the process and its future threads. Network
rules (ABI 4) deny TCP bind/connect; scopes (ABI 6) stop signals and abstract Unix sockets from
reaching processes outside the domain, i.e. the worker. Must run before the process has threads.
"""

from __future__ import annotations

import ctypes
import os

_SYS_CREATE_RULESET = 444  # the same number on every architecture (generic syscall table)
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

# access rights of files, by the ABI that introduced them
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

READ_ONLY = READ_FILE | READ_DIR
READ_WRITE = READ_ONLY | WRITE_FILE | MAKE_REG | REMOVE_FILE | TRUNCATE

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in linux/landlock.h
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi_version() -> int:
    """The kernel's Landlock ABI, 0 when it has none (or it is disabled at boot)."""
    version = _syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def fs_rights(abi: int) -> int:
    """Every file-system right this ABI knows (all of them are handled, i.e. denied by default)."""
    return _FS_BY_ABI[max(v for v in _FS_BY_ABI if v <= abi)]


def restrict(read_only: list[int], read_write: list[int], files: list[int], abi: int) -> list[str]:
    """Confine this thread (and threads it starts later) to the given directory fds (and
    single files, readable only); returns
    what is enforced, as short phrases for the start-up log line. Raises OSError on failure."""
    handled = fs_rights(abi)
    attr = _RulesetAttr(handled, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0,
                        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = _check(_syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)))
    try:
        for fds, rights in ((read_only, READ_ONLY), (read_write, READ_WRITE), (files, READ_FILE)):
            for fd in fds:
                rule = _PathBeneath(rights & handled, fd)
                _check(_syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), ctypes.c_uint32(0)))
        _check(_syscall(_SYS_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)))
    finally:
        os.close(ruleset)
    enforced = [f"landlock ABI {abi}: files"]
    if abi >= 4:
        enforced.append("TCP bind/connect")
    if abi >= 6:
        enforced.append("signals and abstract sockets scoped")
    return enforced


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, "landlock: " + os.strerror(err))
    return result
