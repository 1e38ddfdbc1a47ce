"""The PEP 3333 environ of a request, built cheaply.

Everything that depends only on the request head (method, target, version, header fields) goes
into a template kept per distinct head, so a repeated head costs one dict copy plus the few keys
that vary per request: the client (REMOTE_*), the scheme, `wsgi.input` and the request ID. What
depends on nothing (wsgi.version, SERVER_SOFTWARE, ...) is computed once per worker.

By the letter (PEP 3333, RFC 3875 §4.1): SCRIPT_NAME is the mount prefix and PATH_INFO the rest,
percent-decoded and carried as latin-1 "bytes-as-str"; CONTENT_LENGTH is the request's
Content-Length ("0" for an explicit zero) and absent when it has none; CONTENT_TYPE is absent when
the request has none; header fields become HTTP_* except those whose name contains `_`, dropped
so they cannot pose as ones with `-` (nginx, gunicorn); REMOTE_HOST is the address (no DNS).
"""

from __future__ import annotations

import logging
from typing import Any, Iterable
from urllib.parse import unquote_to_bytes

from x15g import SERVER_SOFTWARE
from x15g.http.messages import Request

log = logging.getLogger("x15g.wsgi")
_CACHE_SIZE = 1024
_PROTOCOLS = {10: "HTTP/1.0", 11: "HTTP/1.1"}
_names: dict[bytes, str | None] = {}  # header name -> environ key (None: not passed on)


class ErrorStream:
    """`wsgi.errors`: text written by the app becomes error-log lines."""

    def __init__(self) -> None:
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            log.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._pending:
            log.error("%s", self._pending)
            self._pending = ""


class EmptyInput:
    """`wsgi.input` of a request without a body: stateless, so one serves every such request."""

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Any:
        return iter(())


EMPTY_INPUT = EmptyInput()


def _environ_key(name: bytes) -> str | None:
    key = _names.get(name, False)
    if key is False:
        if b"_" in name:
            key = None
        else:
            text = name.decode("latin-1").upper().replace("-", "_")
            key = text if text in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + text
        if len(_names) < _CACHE_SIZE:
            _names[name] = key
    return key  # type: ignore[return-value]


def split_host(value: bytes | None, host: str, port: str) -> tuple[str, str]:
    """SERVER_NAME and SERVER_PORT from a Host header (`name`, `name:port`, `[v6]:port`)."""
    if not value:
        return host, port
    text = value.decode("latin-1")
    name, sep, port_text = text.rpartition(":")
    if sep and port_text.isdigit() and not name.endswith(":"):
        return name.strip("[]"), port_text
    return text.strip("[]"), port


def split_peer(peer: str) -> tuple[str, str]:
    """("address", "port") of "host:port" / "[v6]:port"; ("", "") for a unix-socket peer."""
    if peer.startswith("["):
        host, _, rest = peer[1:].partition("]")
        return host, rest[1:]
    host, sep, port = peer.rpartition(":")
    return (host, port) if sep else ("", "")


class EnvironBuilder:
    """Builds environs for one mount point of one worker."""

    def __init__(self, script_name: str, default_host: str, default_port: str, multiprocess: bool,
                 file_wrapper: Any) -> None:
        self.script_name = script_name
        self.default_host = default_host
        self.default_port = default_port
        self.errors = ErrorStream()
        self.constant = {
            "SCRIPT_NAME": script_name,
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "wsgi.version": (1, 0),
            "wsgi.errors": self.errors,
            "wsgi.multithread": False,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": file_wrapper,
        }
        self._templates: dict[tuple, dict[str, Any]] = {}
        self._peers: dict[str, tuple[str, str]] = {}

    def build(self, request: Request, body_input: Any, request_id: str) -> dict[str, Any]:
        """The environ for `request`, reading its body from `body_input`."""
        headers = request.headers
        key = (request.method, request.target, request.version, tuple(headers.items()))
        template = self._templates.get(key)
        if template is None:
            template = self._template(request)
            if len(self._templates) >= _CACHE_SIZE:
                self._templates.clear()
            self._templates[key] = template
        environ = template.copy()
        peer = request.peer
        address = self._peers.get(peer)
        if address is None:
            address = split_peer(peer)
            if len(self._peers) >= _CACHE_SIZE:
                self._peers.clear()
            self._peers[peer] = address
        environ["REMOTE_ADDR"] = environ["REMOTE_HOST"] = address[0]
        environ["REMOTE_PORT"] = address[1]
        environ["wsgi.url_scheme"] = request.scheme
        environ["wsgi.input"] = body_input
        environ["HTTP_X_REQUEST_ID"] = request_id
        return environ

    def _template(self, request: Request) -> dict[str, Any]:
        path = unquote_to_bytes(request.path).decode("latin-1")
        script = self.script_name
        host, port = split_host(request.headers.get(b"host"), self.default_host, self.default_port)
        env = dict(self.constant)
        env["REQUEST_METHOD"] = request.method
        env["PATH_INFO"] = path[len(script):] if script and path.startswith(script) else path
        env["QUERY_STRING"] = request.query.decode("latin-1")
        env["RAW_URI"] = request.target.decode("latin-1")
        env["SERVER_NAME"] = host
        env["SERVER_PORT"] = port
        env["SERVER_PROTOCOL"] = _PROTOCOLS.get(request.version) or f"HTTP/{request.version // 10}.{request.version % 10}"
        for name, value in request.headers.items():
            key = _environ_key(name)
            if key is not None:
                env[key] = value.decode("latin-1")
        if request.content_length is not None:
            env["CONTENT_LENGTH"] = str(request.content_length)
        return env
