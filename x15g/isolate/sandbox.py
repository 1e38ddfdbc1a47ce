"""Lock the handler process in, before it imports any application code.

The steps, in order (each needs the one before): open every granted directory while still
privileged; set the rlimits with hard = soft, so they cannot be raised again; hand the writable
grants to the isolate user; drop to the isolate uid/gid with no supplementary groups; close
every file descriptor but the ones given; PR_SET_NO_NEW_PRIVS; Landlock; seccomp.

Granted directories are reached through their descriptors afterwards (`/proc/self/fd/N`, see
`Grants.path`): the process needs no search permission on their parents, so a Python installed
under a private home directory, or a document root under a 0700 directory, still works for the
isolate user, while nothing beside the grants can be looked up at all.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import resource
from dataclasses import dataclass, field

from x15g.isolate import landlock, seccomp

log = logging.getLogger("x15g.isolate")


class SandboxUnavailable(Exception):
    """A required part of the sandbox cannot be enforced on this kernel or as this user."""


@dataclass
class Plan:
    """What the sandbox allows. `keep` are the fds that stay open (the control socket, stderr)."""

    user: str = "nobody"
    group: str = "nogroup"
    read_only: list[str] = field(default_factory=list)
    read_write: list[str] = field(default_factory=list)
    keep: list[int] = field(default_factory=list)
    memory: int = 0  # RLIMIT_AS in bytes, 0 = unchanged
    max_fds: int = 0  # RLIMIT_NOFILE, 0 = the current soft limit
    require: bool = False  # refuse to run when Landlock or seccomp is missing


# What any dynamically linked program reads: shared libraries (an extension module imported later
# may load one, e.g. binascii needs libz) and the loader's cache. Public files, read-only.
SYSTEM_LIBRARIES = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/etc/ld.so.cache")


@dataclass
class Grants:
    """The granted directories, open; `path` maps a granted path to the one the sandbox can use."""

    fds: dict[str, int] = field(default_factory=dict)

    def path(self, path: str) -> str:
        """`path` rewritten through its granted ancestor's descriptor, or unchanged."""
        path = os.path.abspath(path)
        best = ""
        for granted in self.fds:
            if (path == granted or path.startswith(granted.rstrip("/") + "/")) and len(granted) > len(best):
                best = granted
        if not best:
            return path
        return f"/proc/self/fd/{self.fds[best]}{path[len(best):]}"


def target_ids(user: str, group: str) -> tuple[int, int]:
    """(uid, gid) of the isolate user and group (names or numbers); KeyError if unknown."""
    uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
    gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    return uid, gid


def apply(plan: Plan) -> tuple[Grants, list[str], list[str]]:
    """Enter the sandbox; returns the grants and what is enforced / what is not (for the log).
    Raises SandboxUnavailable when `plan.require` and a part is missing, OSError on failure."""
    enforced: list[str] = []
    missing: list[str] = []
    grants = Grants()
    read_only: list[int] = []
    read_write: list[int] = []
    files: list[int] = []  # single files, read-only (the dynamic loader's cache)
    for paths, fds in ((plan.read_only, read_only), (plan.read_write, read_write)):
        for path in paths:
            path = os.path.realpath(path)
            if path == "/" or path in grants.fds or not os.path.exists(path):
                continue  # the whole file system is never a grant
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            grants.fds[path] = fd
            (fds if os.path.isdir(path) else files).append(fd)
    _set_limits(plan, enforced)
    uid, gid = target_ids(plan.user, plan.group)
    if os.geteuid() == 0:
        for path in plan.read_write:
            _give(grants.path(path), uid, gid)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        enforced.append(f"uid {uid} gid {gid}")
    elif os.geteuid() != uid:
        missing.append(f"own uid (not started as root: runs as uid {os.geteuid()})")
    close_other_fds(set(plan.keep) | set(grants.fds.values()))
    enforced.append("inherited fds closed")
    seccomp.no_new_privs()
    enforced.append("no_new_privs")
    _only_thread()
    abi = landlock.abi_version()
    if abi:
        enforced += landlock.restrict(read_only, read_write, files, abi)
    else:
        missing.append("Landlock (files, TCP, signals)")
    if seccomp.supported():
        seccomp.install(seccomp.build_program(os.getpid()))
        enforced.append("seccomp (exec, fork, ptrace, mount, non-Unix sockets denied)")
    else:
        missing.append("seccomp (no filter for this architecture)")
    if missing and plan.require:
        raise SandboxUnavailable("not enforced: " + "; ".join(missing))
    return grants, enforced, missing


def _set_limits(plan: Plan, enforced: list[str]) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if plan.memory:
        resource.setrlimit(resource.RLIMIT_AS, (plan.memory, plan.memory))
        enforced.append(f"address space {plan.memory >> 20} MiB")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fds = plan.max_fds or soft
    fds = min(fds, hard) if hard != resource.RLIM_INFINITY else fds
    resource.setrlimit(resource.RLIMIT_NOFILE, (fds, fds))
    enforced.append(f"{fds} fds")


def _give(path: str, uid: int, gid: int) -> None:
    """Make a writable grant (a state directory) and the files in it the isolate user's."""
    os.chown(path, uid, gid)
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False):
            os.chown(entry.path, uid, gid)


def close_other_fds(keep: set[int]) -> None:
    """Close every descriptor not in `keep` (those inherited by accident included)."""
    top = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    low = 0
    for fd in sorted(keep) + [top]:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1


def _only_thread() -> None:
    """Landlock confines the calling thread and its later children only: there must be no other."""
    threads = os.listdir("/proc/self/task")
    if len(threads) != 1:
        raise SandboxUnavailable(f"the handler has {len(threads)} threads before its sandbox")
