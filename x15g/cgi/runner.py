"""A CGI/1.1 runner (RFC 3875): one child process per request, run cooperatively on gevent.

Two modes: *directory* (`--cgi-dir /prefix/=DIR`: `/prefix/script.py/extra?qs` runs
`DIR/script.py` with PATH_INFO `/extra`) and *program* (a fixed argv, e.g. the SPECweb99-like CGI
program at `/cgi-bin/specweb99`). The child gets the RFC 3875 §4.1 meta-variables in its
environment and the request body on stdin (§4.2): read from the connection as it comes (chunked
bodies decoded) and spooled (http/spool.py), up to 1 MiB in memory and through a pipe, larger
from an unlinked temporary file the child reads directly; CONTENT_LENGTH is its decoded length.
Its stdout is a CGI response (§6): header lines,
a blank line, the body. `Status:` sets the status, `Location:` without `Status:` redirects (302),
everything else is passed on except fields the server owns. Output that is not a CGI response is a
502; a child still running after `settings.cgi_timeout` is killed with its process group (504).
stderr goes to the `x15g.cgi` logger.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from x15g import SERVER_SOFTWARE
from x15g.errors import HTTPError
from x15g.http.messages import Request, Response
from x15g.http.spool import SpooledBody, spool
from x15g.http.writer import build_head

if TYPE_CHECKING:
    import subprocess  # only the Popen type: children are started with gevent.subprocess

log = logging.getLogger("x15g.cgi")

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
MAX_OUTPUT = 64 * 1024 * 1024
# Fields the server itself writes (or that would break the framing it chose).
_SERVER_OWNED = {b"status", b"content-length", b"connection", b"transfer-encoding", b"date", b"server", b"keep-alive"}
# HTTP_* meta-variables not to pass (RFC 3875 §4.1.18): credentials, framing, and "httpoxy"
# (a client's Proxy header must not become the child's HTTP_PROXY).
_SKIP_HEADERS = {b"authorization", b"proxy-authorization", b"proxy", b"content-length", b"content-type", b"connection"}
_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_STATUS = re.compile(rb"^([2-5][0-9][0-9])(?: (.*))?$")  # a 1xx is never a final answer


def split_peer(peer: str) -> tuple[str, str]:
    """`ip:port`, `[v6]:port`, bare `ip` or bare IPv6 -> (ip, port or "")."""
    if peer.startswith("["):
        host, _, rest = peer[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    if peer.count(":") == 1:
        host, _, port = peer.partition(":")
        return host, port
    return peer, ""


def _server_name_port(request: Request) -> tuple[bytes, bytes]:
    host = request.header(b"host") or b"localhost"
    if host.startswith(b"["):
        name, _, rest = host.partition(b"]")
        return name + b"]", rest[1:] if rest.startswith(b":") else b"80"
    name, sep, port = host.partition(b":")
    return name, port if sep and port.isdigit() else b"80"


class CgiResponder:
    """Runs a CGI script per request; see the module docstring for the two modes."""

    streams_body = True  # the body is spooled here (respond), not held in memory by the connection

    def __init__(self, settings: object, prefix: str, directory: str | None = None,
                 program: list[str] | None = None, extra_env: dict[str, str] | None = None) -> None:
        if (directory is None) == (program is None):
            raise ValueError("CgiResponder needs exactly one of directory or program")
        self.settings = settings
        self.prefix = prefix.encode() if isinstance(prefix, str) else prefix
        self.directory = os.path.realpath(directory) if directory is not None else None
        self.program = list(program) if program is not None else None
        self.timeout = float(getattr(settings, "cgi_timeout", 30.0))
        self.root = getattr(settings, "root", ".")
        self.extra_env = {k.encode(): v.encode() for k, v in (extra_env or {}).items()}

    def respond(self, request: Request) -> Response:
        """Run the script for `request` and turn its output into a Response."""
        argv, script_name, path_info, cwd = self._locate(request.path)
        reader = request.body_reader
        body = spool(reader) if reader is not None else SpooledBody(request.body, None, len(request.body))
        try:
            env = self._environ(request, script_name, path_info, body.size)
            out = self._run(argv, env, body, cwd)
        finally:
            body.close()
        return parse_output(out, send_body=request.method != "HEAD")

    # --- mapping the URL to a program ---

    def _locate(self, path: bytes) -> tuple[list[str], bytes, bytes, str | None]:
        if not path.startswith(self.prefix):
            raise HTTPError(404, "not found")
        rest = path[len(self.prefix):]
        if self.program is not None:
            if rest and not rest.startswith(b"/"):
                raise HTTPError(404, "not found")
            return self.program, self.prefix, unquote_to_bytes(rest), None
        name, slash, extra = rest.lstrip(b"/").partition(b"/")
        name = unquote_to_bytes(name)
        if not name or name.startswith(b".") or b"/" in name or b"\0" in name:
            raise HTTPError(404, "not found")
        directory = self.directory
        assert directory is not None  # no program: directory mode
        script = os.path.join(directory, os.fsdecode(name))
        real = os.path.realpath(script)
        if os.path.dirname(real) != directory or not os.path.isfile(real):
            raise HTTPError(404, "not found")
        if not os.access(real, os.X_OK):
            raise HTTPError(403, "script is not executable")
        script_name = self.prefix.rstrip(b"/") + b"/" + name
        return [real], script_name, unquote_to_bytes(slash + extra), self.directory

    # --- RFC 3875 §4.1 meta-variables ---

    def _environ(self, request: Request, script_name: bytes, path_info: bytes,
                 body_size: int) -> dict[bytes, bytes]:
        ip, port = split_peer(request.peer)
        server_name, server_port = _server_name_port(request)
        env = {
            b"GATEWAY_INTERFACE": b"CGI/1.1",
            b"SERVER_PROTOCOL": b"HTTP/1.1" if request.version == 11 else b"HTTP/1.0",
            b"SERVER_SOFTWARE": SERVER_SOFTWARE.encode(),
            b"SERVER_NAME": server_name,
            b"SERVER_PORT": server_port,
            b"REQUEST_METHOD": request.method.encode(),
            b"QUERY_STRING": request.query,
            b"SCRIPT_NAME": script_name,
            b"REMOTE_ADDR": ip.encode(),
            b"DOCUMENT_ROOT": os.fsencode(self.root),
            b"PATH": DEFAULT_PATH.encode(),
        }
        if port:
            env[b"REMOTE_PORT"] = port.encode()
        if path_info:
            env[b"PATH_INFO"] = path_info
            env[b"PATH_TRANSLATED"] = os.fsencode(self.root) + path_info
        if body_size or request.content_length is not None or request.chunked:
            env[b"CONTENT_LENGTH"] = b"%d" % body_size
        ctype = request.header(b"content-type")
        if ctype is not None:
            env[b"CONTENT_TYPE"] = ctype
        for name, value in request.headers.items():
            # Names with "_" are dropped: X-A_B and X-A-B would both become HTTP_X_A_B.
            if name in _SKIP_HEADERS or b"_" in name or b"\0" in value:
                continue
            env[b"HTTP_" + name.upper().replace(b"-", b"_")] = value
        env.update(self.extra_env)
        return env

    # --- running the child ---

    def _run(self, argv: list[str], env: dict[bytes, bytes], body: SpooledBody, cwd: str | None) -> bytes:
        from gevent import subprocess

        stdin = body.file if body.file is not None else subprocess.PIPE  # a spooled body: its file
        try:
            child = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, cwd=cwd, close_fds=True, start_new_session=True)
        except OSError as exc:
            log.error("cannot start CGI %s: %s", argv[0], exc)
            raise HTTPError(502, "CGI script could not be started") from None
        try:
            out, err = child.communicate(body.data if body.file is None else None, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(child)
            log.error("CGI %s killed after %.1f s", argv[0], self.timeout)
            raise HTTPError(504, "CGI script timed out") from None
        except BaseException:
            _kill_group(child)
            raise
        for line in err.decode("utf-8", "replace").splitlines():
            log.warning("%s: %s", os.path.basename(argv[-1]), line)
        if child.returncode != 0:
            log.warning("CGI %s exited with status %s", argv[0], child.returncode)
        if len(out) > MAX_OUTPUT:
            raise HTTPError(502, "CGI output too large")
        return out


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's session (the script and anything it started), then reap it."""
    import signal

    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        child.kill()
    except OSError:
        pass
    child.wait()


def parse_output(out: bytes, send_body: bool = True) -> Response:
    """A CGI response (RFC 3875 §6) -> Response; anything malformed is a 502."""
    ends = [i for i in (out.find(b"\r\n\r\n"), out.find(b"\n\n")) if i >= 0]
    if not ends:
        raise HTTPError(502, "CGI output has no header block")
    end = min(ends)
    block, body = out[:end], out[end + (4 if out.startswith(b"\r\n\r\n", end) else 2):]
    status, headers, seen = 200, [], set()
    for line in block.split(b"\n"):
        line = line.rstrip(b"\r")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise HTTPError(502, "malformed CGI header line")
        lname, value = name.lower(), value.strip()
        seen.add(lname)
        if lname == b"status":
            match = _STATUS.match(value)
            if not match:
                raise HTTPError(502, "malformed CGI Status")
            status = int(match.group(1))
        elif lname not in _SERVER_OWNED:
            headers.append((name.decode("latin-1"), value.decode("latin-1")))
    if not seen & {b"content-type", b"location", b"status"}:
        raise HTTPError(502, "CGI output has no Content-Type, Location or Status")
    if b"location" in seen and b"status" not in seen:
        status = 302  # RFC 3875 §6.2.3/§6.2.4: a redirect (local ones are sent to the client too)
    if status in (204, 304):
        body = b""  # RFC 9110 §15.3.5, §15.4.5: no content
    try:
        head = build_head(status, headers, None if status == 204 else len(body))
    except ValueError:
        raise HTTPError(502, "malformed CGI header value") from None
    return Response(status, head, body, len(body), send_body=send_body)
