"""Start-up checks for `--isolate`, run once in the master before any worker starts."""

from __future__ import annotations

import os

from x15g.config import Settings
from x15g.errors import ConfigError
from x15g.isolate import landlock, sandbox, seccomp


def check(settings: Settings) -> list[str]:
    """Warnings about what the sandbox will not enforce on this machine; raises ConfigError for
    an unknown isolate user or group, and, with --isolate-require-sandbox, for anything missing."""
    try:
        uid, _ = sandbox.target_ids(settings.isolate_user, settings.isolate_group)
    except KeyError as exc:
        raise ConfigError(f"--isolate-user/--isolate-group: no such user or group {exc}") from None
    missing = []
    if landlock.abi_version() == 0:
        missing.append("Landlock (the file system, TCP connect/bind and signals are not confined)")
    if not seccomp.supported():
        missing.append("seccomp (exec, fork, ptrace, mount and network sockets are not filtered)")
    if os.geteuid() != 0 and os.geteuid() != uid:
        missing.append(f"the isolate user (not started as root: handlers keep uid {os.geteuid()})")
    if missing and settings.isolate_require_sandbox:
        raise ConfigError("--isolate-require-sandbox: this system cannot enforce " + "; ".join(missing))
    return [f"--isolate: not enforced: {part}" for part in missing]
