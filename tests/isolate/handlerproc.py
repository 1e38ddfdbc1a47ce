"""Drive one handler process directly, as a worker would: the setup, then hand-overs of real
TCP sockets; the test reads the answer from the client side and the report from the control
socket. No server process and no gevent in the test itself."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.support.server import REPO
from x15g.config import default_settings
from x15g.http.messages import Request
from x15g.isolate import protocol


class HandlerProcess:
    def __init__(self, kind: str, routes: dict | None = None, **settings: object) -> None:
        """`routes`: the handler's route table (responder.route_table), so it keeps connections."""
        self.settings = default_settings(**settings)
        self.control, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control.settimeout(20)
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "x15g.isolate.handler", str(child.fileno())],
                                     pass_fds=(child.fileno(),), env=env, cwd=str(REPO),
                                     stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        child.close()
        protocol.send(self.control, protocol.setup_message(self.settings, kind, routes))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.next_id = 1

    def ready(self) -> protocol.Report:
        return self.report()

    def report(self) -> protocol.Report:
        data, fds = protocol.receive(self.control)
        assert not fds
        if not data:
            raise EOFError(self.stderr())
        return protocol.decode_report(data)

    def connect(self) -> tuple[socket.socket, socket.socket]:
        """(client, server side): the server side is what a worker would hand over."""
        client = socket.create_connection(self.listener.getsockname(), timeout=10)
        server, _ = self.listener.accept()
        server.setblocking(False)
        return client, server

    def hand_over(self, server: socket.socket, method: str, target: bytes, headers: dict | None = None,
                  body: bytes = b"", keep: bool = True) -> int:
        path, _, query = target.partition(b"?")
        request = Request(method, target, path, query, 11, headers or {}, True,
                          content_length=len(body) if body else None, body=body, peer="127.0.0.1:40000")
        request_id, self.next_id = self.next_id, self.next_id + 1
        payload, body_fd = protocol.encode_request(request_id, request, keep)
        protocol.send(self.control, payload, [server.fileno()] + ([body_fd] if body_fd >= 0 else []))
        if body_fd >= 0:
            os.close(body_fd)
        return request_id

    def stderr(self) -> str:
        self.stop()
        return self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""

    def stop(self) -> None:
        self.control.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.listener.close()


def read_answer(client: socket.socket) -> bytes:
    """One answer with a Content-Length, read from the client side."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = client.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body
