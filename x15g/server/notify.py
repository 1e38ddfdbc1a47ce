"""systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram to `$NOTIFY_SOCKET`.

The master sends `READY=1` once every worker serves, `RELOADING=1` (with `MONOTONIC_USEC`, which
systemd 253+ wants) when a SIGHUP reload starts and `READY=1` again when it ends, `STOPPING=1` on
SIGTERM/SIGQUIT, and a `STATUS=` line each time for `systemctl status`. Without `$NOTIFY_SOCKET`
(not started by systemd with Type=notify) every call is a no-op. The variable is removed from the
environment so that children (CGI scripts) cannot talk to systemd on the server's behalf.
"""

from __future__ import annotations

import _socket  # the C socket: the master runs no gevent hub
import os
import time
from typing import MutableMapping


class Notifier:
    """Sends `KEY=VALUE` lines to the service manager; errors are ignored (as sd_notify does)."""

    def __init__(self, environ: MutableMapping[str, str]) -> None:
        address = environ.pop("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        self.address = address if address.startswith(("/", "\0")) else ""

    def send(self, *lines: str) -> bool:
        """One datagram of `lines`; True when it was sent."""
        if not self.address:
            return False
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
        try:
            sock.connect(self.address)
            sock.sendall("\n".join(lines).encode())
            return True
        except OSError:
            return False
        finally:
            sock.close()

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self, status: str) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                  f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")
