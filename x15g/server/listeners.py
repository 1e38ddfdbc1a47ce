"""Listening sockets from bind specs: TCP (IPv4/IPv6, optional SO_REUSEPORT) and unix sockets.

With SO_REUSEPORT the master opens one listener per worker slot and address (see
`supervisor.ListenerSet`) and the kernel balances new connections between them; unix sockets (and
systems without reuse-port) are bound once by the master and shared by every worker.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import stat
import struct
from dataclasses import dataclass

from x15g.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BindSpec:
    """One parsed `--bind`: `family`, `address` (tuple or path) and the original `text`."""

    text: str
    family: int
    address: tuple | str

    @property
    def is_unix(self) -> bool:
        return self.family == socket.AF_UNIX


def parse_bind(text: str) -> BindSpec:
    """`HOST:PORT`, `[IPv6]:PORT`, `:PORT` (all IPv4 interfaces) or `unix:/path`."""
    if text.startswith("unix:"):
        return BindSpec(text, socket.AF_UNIX, os.path.abspath(text[5:]))
    host, _, port = text.rpartition(":")
    if host.startswith("["):
        return BindSpec(text, socket.AF_INET6, (host[1:-1], int(port), 0, 0))
    return BindSpec(text, socket.AF_INET, (host or "0.0.0.0", int(port)))


def reuse_port_available() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def open_listener(spec: BindSpec, backlog: int, reuse_port: bool) -> socket.socket:
    """Create, bind and listen; raises ConfigError with one clear sentence on failure."""
    sock = socket.socket(spec.family, socket.SOCK_STREAM)
    try:
        if spec.is_unix:
            _remove_stale_unix_socket(str(spec.address))
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if spec.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(spec.address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"cannot bind {spec.text}: address already in use") from None
        raise ConfigError(f"cannot bind {spec.text}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


# A classic BPF socket filter that drops TCP segments with SYN set and ACK clear (a new connection
# attempt) and keeps everything else. The kernel runs a listener's filter on the SYN and on the
# ACK that completes a handshake, before either touches its queues (skb data starts at the TCP
# header; byte 13 holds the flags).
_DROP_SYN = (
    (0x30, 0, 0, 13),          # ldb [13]           (BPF_LD|BPF_B|BPF_ABS)
    (0x54, 0, 0, 0x12),        # and #SYN|ACK       (BPF_ALU|BPF_AND|BPF_K)
    (0x15, 0, 1, 0x02),        # jeq #SYN, drop, keep (BPF_JMP|BPF_JEQ|BPF_K)
    (0x06, 0, 0, 0),           # drop: ret #0       (BPF_RET|BPF_K)
    (0x06, 0, 0, 0xFFFFFFFF),  # keep: ret #-1
)
_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)


def refuse_new_connections(sock: socket.socket) -> bool:
    """Stop a TCP listener from taking new connections while its accept queue stays intact.

    Closing the last copy of a listening socket resets every connection still queued on it; a
    client that already wrote its request then cannot tell whether it was processed. With this
    filter new SYNs are dropped (the client retries after ~1 s and is refused once the socket is
    closed) while handshakes already under way complete, so the owner can accept until the queue
    is empty and close without losing a connection. False where it cannot apply (unix sockets,
    no BPF)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    program = b"".join(struct.pack("HBBI", *insn) for insn in _DROP_SYN)
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(_DROP_SYN), ctypes.addressof(buffer))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def _remove_stale_unix_socket(path: str) -> None:
    """Remove a leftover socket file nobody listens on (never a regular file)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"cannot bind unix:{path}: a non-socket file is in the way")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
    else:
        raise ConfigError(f"cannot bind unix:{path}: address already in use")
    finally:
        probe.close()


def bound_port(sock: socket.socket) -> int | None:
    """The port a TCP listener got (useful with port 0)."""
    name = sock.getsockname()
    return name[1] if isinstance(name, tuple) else None
