"""systemd socket activation (sd_listen_fds(3)): adopt listening sockets passed as fds 3, 4, ...

systemd (or any launcher speaking the same protocol) binds the sockets, then starts the server with
`LISTEN_FDS=<count>` and `LISTEN_PID=<the server's PID>` in its environment. The PID check makes sure
the variables were meant for this process and not inherited from a parent. When sockets are
adopted, `--bind` is ignored and every worker inherits the same sockets (no SO_REUSEPORT balancing;
`--max-accept` keeps the workers taking turns). The variables are removed afterwards so children
(CGI scripts) do not see them, as sd_listen_fds(unset_environment=1) does.
"""

from __future__ import annotations

import os
import socket
from typing import MutableMapping

SD_LISTEN_FDS_START = 3
_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


def listen_fds(environ: MutableMapping[str, str], pid: int | None = None) -> list[socket.socket]:
    """The sockets passed by the service manager, or [] when none were passed to this process."""
    pid = os.getpid() if pid is None else pid
    try:
        count = int(environ.get("LISTEN_FDS", "0"))
        target = int(environ.get("LISTEN_PID", "0"))
    except ValueError:
        return []
    if count <= 0 or target != pid:
        return []
    for name in _VARIABLES:
        environ.pop(name, None)
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        sock = socket.socket(fileno=fd)  # family and type are read from the descriptor
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


def describe(sockets: list[socket.socket]) -> list[str]:
    """Printable addresses of adopted sockets (for the startup log line)."""
    names = []
    for sock in sockets:
        name = sock.getsockname()
        if isinstance(name, tuple):
            host = name[0]
            names.append(f"[{host}]:{name[1]}" if ":" in host else f"{host}:{name[1]}")
        else:
            names.append(f"unix:{name}")
    return names
