"""Handler processes started as root for a worker that is not: `--user` with `--isolate`.

A worker drops root right after it is forked (`--user`), but its handlers must start as root to
take the isolate uid and hand the writable grants to it. So, before it drops root, the worker
starts a launcher (`python -m x15g.isolate.launcher FD`, one per worker, root) and later asks it
for each handler process. The launcher trusts only what it got at its start, while the worker
was still root: the settings and the import path. From them it makes each handler's sandbox plan
and environment itself, so the worker only names the application kind and passes the handler's
end of its control socket. The handler reads that plan from a pipe and enters the sandbox before
it reads anything from the worker (handler.py), so a compromised worker cannot choose a
handler's uid, its grants, or what it runs as root.

Messages, one per SOCK_SEQPACKET datagram:
- worker -> launcher: first the start (marshal: settings, import path); then `spawn KIND SEQ`
  with the handler's control socket attached, or `kill PID` (only a process it started itself).
- launcher -> worker: `pid SEQ N` (the reply to that spawn; N 0 when it could not start one),
  and `exit PID CODE` once one of its handlers ended (CODE as Popen.returncode).
The launcher ends when the worker's end closes (the worker is gone, and its handlers see their
control sockets close too): it gives them a second, kills the rest and reaps them all.
"""

from __future__ import annotations

import dataclasses
import logging
import marshal
import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from x15g.isolate import protocol

_KINDS = ("wsgi", "specweb")
CLOSE_TIMEOUT = 1.0
_MESSAGE = 64 * 1024  # the start (the settings) is the largest
log = logging.getLogger("x15g.isolate")

current: "Launcher | None" = None  # the worker's launcher, once started (start_launcher)


# -- the worker's side --------------------------------------------------------------------------


class LaunchedProcess:
    """A handler the launcher started, with the part of subprocess.Popen the pool uses."""

    def __init__(self, launcher: "Launcher", pid: int) -> None:
        from gevent.event import Event

        self.launcher = launcher
        self.pid = pid
        self.returncode: int | None = None
        self.exited = Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self.exited.wait(timeout):
            raise subprocess.TimeoutExpired(f"isolated handler {self.pid}", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            self.launcher.send(b"kill %d" % self.pid)

    def send_signal(self, signum: int) -> None:
        """Only SIGKILL is ever sent to a handler (it ignores the others)."""
        self.kill()


class Launcher:
    """The worker's end: `spawn` a handler process for a kind of application."""

    def __init__(self, proc: subprocess.Popen, sock: socket.socket) -> None:
        self.proc = proc
        self.sock = sock
        self.replies: dict[int, Any] = {}  # AsyncResult per spawn waiting for its pid
        self.sequence = 0
        self.children: dict[int, LaunchedProcess] = {}
        self.reader: Any = None
        self.closing = False

    def send(self, data: bytes, fds: tuple[int, ...] = ()) -> None:
        protocol.send(self.sock, data, fds)

    def spawn(self, kind: str, control_fd: int) -> LaunchedProcess:
        """A new handler process given `control_fd` (the caller closes its copy); OSError when
        the launcher could not start one."""
        import gevent
        from gevent.event import AsyncResult

        if self.reader is None:
            self.reader = gevent.spawn(self._read)
        self.sequence += 1
        sequence = self.sequence
        reply = self.replies[sequence] = AsyncResult()
        try:
            self.send(b"spawn %s %d" % (kind.encode(), sequence), (control_fd,))
            pid = reply.get(timeout=30)
        except Exception as exc:
            raise OSError(f"the handler launcher did not start a handler: {exc!r}") from None
        finally:
            self.replies.pop(sequence, None)
        if not pid:
            raise OSError("the handler launcher could not start a handler")
        child = self.children[pid] = LaunchedProcess(self, pid)
        return child

    def _read(self) -> None:
        """The launcher's messages: pids for spawns, exits of handlers."""
        while True:
            try:
                data = self.sock.recv(256)
            except OSError:
                data = b""
            if not data:
                break
            word, _, rest = data.partition(b" ")
            if word == b"pid":
                sequence, _, pid = rest.partition(b" ")
                reply = self.replies.get(int(sequence))
                if reply is not None:
                    reply.set(int(pid))
            elif word == b"exit":
                pid, _, code = rest.partition(b" ")
                child = self.children.pop(int(pid), None)
                if child is not None:
                    child.returncode = int(code)
                    child.exited.set()
        for reply in self.replies.values():  # the launcher is gone: no more handlers
            reply.set(0)
        for child in self.children.values():
            child.returncode = -signal.SIGKILL
            child.exited.set()
        if not self.closing:
            # Without it no handler can be started or killed: the worker stops (draining) and
            # the master starts a new one, with a new launcher.
            log.error("the handler launcher %d exited; the worker stops", self.proc.pid)
            os.kill(os.getpid(), signal.SIGTERM)

    def close(self) -> None:
        """At the worker's stop, after its pools closed: the launcher reaps what is left and exits."""
        self.closing = True
        self.sock.close()
        try:
            self.proc.wait(timeout=CLOSE_TIMEOUT + 1.0)
        except subprocess.TimeoutExpired:  # it is root and we are not: it cannot be killed from here
            log.error("the handler launcher %d did not exit", self.proc.pid)


def start_launcher(settings: Any) -> Launcher:
    """Start the worker's launcher (while the worker is still root) and give it its start."""
    global current
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in (ours, theirs):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * _MESSAGE)
    proc = subprocess.Popen([sys.executable, "-m", "x15g.isolate.launcher", str(theirs.fileno())],
                            pass_fds=(theirs.fileno(),), close_fds=True, stdin=subprocess.DEVNULL)
    theirs.close()
    ours.send(marshal.dumps({"settings": protocol.settings_values(settings), "path": list(sys.path)}))
    current = Launcher(proc, ours)
    return current


# -- the launcher's side ------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)  # it ends with its worker, as the handlers do
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sock = socket.socket(fileno=int(argv[0]))
    start = marshal.loads(protocol.receive(sock)[0])
    settings = protocol.settings_from(start["settings"])
    env = protocol.handler_environment(os.environ, settings.isolate_env)
    stderr = protocol.handler_stderr(settings)
    plans = {kind: marshal.dumps({"plan": dataclasses.asdict(protocol.handler_plan(settings, kind, start["path"])),
                                  "log_level": settings.log_level}) for kind in _KINDS}
    children: dict[int, subprocess.Popen] = {}
    while True:
        ready, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in ready:
            while True:
                try:
                    if not os.read(wake_r, 512):
                        break
                except BlockingIOError:
                    break
        _reap(children, sock)
        if sock not in ready:
            continue
        try:
            data, fds = protocol.receive(sock)
        except ValueError:  # truncated: not a message the worker sends
            continue
        if not data:
            break
        word, _, rest = data.partition(b" ")
        if word == b"spawn":
            kind, _, sequence = rest.decode(errors="replace").partition(" ")
            ok = len(fds) == 1 and kind in _KINDS and sequence.isdigit()
            pid = _spawn(plans[kind], fds[0], env, stderr, children) if ok else 0
            _reply(sock, b"pid %s %d" % (sequence.encode() if sequence.isdigit() else b"0", pid))
        elif word == b"kill" and rest.isdigit() and int(rest) in children:
            try:
                os.kill(int(rest), signal.SIGKILL)
            except ProcessLookupError:
                pass
        for fd in fds:
            os.close(fd)
    deadline = time.monotonic() + CLOSE_TIMEOUT
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    for proc in children.values():
        proc.wait()
    return 0


def _spawn(plan: bytes, control_fd: int, env: dict[str, str], stderr: Any, children: dict[int, subprocess.Popen]) -> int:
    """A handler process given `control_fd` and, on a pipe, its plan (the handler reads it at once)."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, plan)  # far below a pipe's buffer
        os.close(write_end)
        proc = subprocess.Popen([sys.executable, "-m", "x15g.isolate.handler", str(control_fd), str(read_end)],
                                pass_fds=(control_fd, read_end), close_fds=True, stdin=subprocess.DEVNULL,
                                stderr=stderr, env=env)
    except OSError as exc:
        print(f"x15g launcher: could not start an isolated handler: {exc}", file=sys.stderr)
        return 0
    finally:
        os.close(read_end)
    children[proc.pid] = proc
    return proc.pid


def _reap(children: dict[int, subprocess.Popen], sock: socket.socket) -> None:
    for pid, proc in list(children.items()):
        code = proc.poll()
        if code is not None:
            del children[pid]
            _reply(sock, b"exit %d %d" % (pid, code))


def _reply(sock: socket.socket, data: bytes) -> None:
    try:
        sock.send(data)
    except OSError:
        pass  # the worker is gone: the loop sees its end close


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
