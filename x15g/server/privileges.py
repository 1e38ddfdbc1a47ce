"""Drop root privileges after the listening sockets are bound (`--user`, `--group`)."""

from __future__ import annotations

import grp
import os
import pwd

from x15g.errors import ConfigError


def target_ids(user: str | None, group: str | None) -> tuple[int, int]:
    """(uid, gid) the workers will run as; -1 for "unchanged" (as os.chown takes it)."""
    gid = _gid(group) if group is not None else (_uid_entry(user).pw_gid if user else -1)
    uid = _uid_entry(user).pw_uid if user is not None else -1
    return uid, gid


def drop_privileges(user: str | None, group: str | None) -> None:
    """Switch to `group` then `user` (names or numeric ids); a no-op when both are unset."""
    if user is None and group is None:
        return
    uid, gid = target_ids(user, group)
    if os.geteuid() != 0:
        if uid in (-1, os.geteuid()) and gid in (-1, os.getegid()):
            return  # already that user (systemd's User=): nothing to drop
        raise ConfigError("--user/--group need the server to be started as root")
    if gid != -1:
        os.setgroups([])
        os.setgid(gid)
    if uid != -1:
        os.setuid(uid)


def _uid_entry(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"--user {user!r}: no such user") from None


def _gid(group: str) -> int:
    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"--group {group!r}: no such group") from None
