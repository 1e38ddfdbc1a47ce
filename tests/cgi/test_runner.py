"""The CGI/1.1 runner (RFC 3875) with tiny scripts: meta-variables, stdin, Status, timeouts, 502s."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from x15g.cgi.runner import CgiResponder, parse_output
from x15g.config import default_settings
from x15g.errors import HTTPError
from x15g.http.messages import Request

ENV_SCRIPT = """#!{python}
import json, os, sys
body = sys.stdin.buffer.read()
keys = [k for k in os.environ if k.isupper()]
sys.stdout.write("Status: 201 Made\\r\\nContent-Type: application/json\\r\\nX-Extra: yes\\r\\n\\r\\n")
sys.stdout.write(json.dumps({{"env": {{k: os.environ[k] for k in keys}}, "body": body.decode()}}))
sys.stderr.write("a warning line\\n")
"""

SCRIPTS = {
    "env.py": ENV_SCRIPT,
    "sleep.py": "#!{python}\nimport time\ntime.sleep(30)\n",
    "garbage.py": "#!{python}\nprint('no header block here')\n",
    "nostatus.py": "#!{python}\nimport sys\nsys.stdout.write('X-Only: 1\\n\\nbody')\n",
    "redirect.py": "#!{python}\nimport sys\nsys.stdout.write('Location: http://example.com/\\n\\n')\n",
    "badstatus.py": "#!{python}\nimport sys\nsys.stdout.write('Status: abc\\nContent-Type: text/plain\\n\\n')\n",
    "crlf.py": "#!{python}\nimport sys\nsys.stdout.write('Content-Type: text/plain\\nContent-Length: 999\\nConnection: close\\n\\nhello')\n",
}


@pytest.fixture(scope="module")
def cgidir(tmp_path_factory):
    base = tmp_path_factory.mktemp("cgi")
    root, scripts = base / "root", base / "scripts"
    root.mkdir()
    scripts.mkdir()
    for name, text in SCRIPTS.items():
        path = scripts / name
        path.write_text(text.format(python=sys.executable))
        path.chmod(0o755)
    (scripts / "noexec.py").write_text("#!/bin/sh\necho hi\n")
    (scripts / "noexec.py").chmod(0o644)
    (base / "outside.py").write_text("#!/bin/sh\necho Content-Type: text/plain; echo; echo out\n")
    (base / "outside.py").chmod(0o755)
    os.symlink(base / "outside.py", scripts / "link.py")
    return root, scripts


def responder(cgidir, timeout: float = 5.0) -> CgiResponder:
    root, scripts = cgidir
    return CgiResponder(default_settings(root=str(root), cgi_timeout=timeout), "/cgi/", directory=str(scripts))


def req(method: str, target: bytes, headers: dict | None = None, body: bytes = b"") -> Request:
    path, _, query = target.partition(b"?")
    return Request(method, target, path, query, 11, headers or {}, True,
                   content_length=len(body) if body else None, body=body, peer="[::1]:4567")


def status_of(r: CgiResponder, request: Request) -> int:
    try:
        return r.respond(request).status
    except HTTPError as exc:
        return exc.status


def test_meta_variables_stdin_and_status(cgidir, caplog) -> None:
    headers = {b"host": b"example.org:8080", b"content-type": b"text/plain", b"x-custom": b"v1",
               b"proxy": b"http://evil/", b"authorization": b"secret", b"x_under": b"no"}
    with caplog.at_level("WARNING", logger="x15g.cgi"):
        resp = responder(cgidir).respond(req("POST", b"/cgi/env.py/extra/path?a=1&b=%20", headers, b"hello body"))
    assert resp.status == 201 and resp.head.startswith(b"HTTP/1.1 201 Created\r\n")
    assert b"Content-Type: application/json\r\n" in resp.head and b"X-Extra: yes\r\n" in resp.head
    assert b"Content-Length: %d\r\n" % len(resp.body) in resp.head
    out = json.loads(resp.body)
    env = out["env"]
    assert out["body"] == "hello body"
    expected = {
        "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "POST",
        "QUERY_STRING": "a=1&b=%20", "SCRIPT_NAME": "/cgi/env.py", "PATH_INFO": "/extra/path",
        "CONTENT_LENGTH": "10", "CONTENT_TYPE": "text/plain", "REMOTE_ADDR": "::1", "REMOTE_PORT": "4567",
        "SERVER_NAME": "example.org", "SERVER_PORT": "8080", "SERVER_SOFTWARE": "x15g/0.1.0",
        "HTTP_HOST": "example.org:8080", "HTTP_X_CUSTOM": "v1",
    }
    assert {k: env.get(k) for k in expected} == expected
    assert "HTTP_PROXY" not in env and "HTTP_AUTHORIZATION" not in env and "HTTP_X_UNDER" not in env
    assert "a warning line" in caplog.text


def test_get_without_body_has_no_content_length(cgidir) -> None:
    env = json.loads(responder(cgidir).respond(req("GET", b"/cgi/env.py")).body)["env"]
    assert "CONTENT_LENGTH" not in env and "PATH_INFO" not in env and env["QUERY_STRING"] == ""


def test_timeout_kills_the_script(cgidir) -> None:
    start = time.monotonic()
    assert status_of(responder(cgidir, timeout=0.5), req("GET", b"/cgi/sleep.py")) == 504
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("target, status", [
    (b"/cgi/garbage.py", 502), (b"/cgi/nostatus.py", 502), (b"/cgi/badstatus.py", 502),
    (b"/cgi/redirect.py", 302), (b"/cgi/missing.py", 404), (b"/cgi/noexec.py", 403),
    (b"/cgi/link.py", 404), (b"/cgi/../outside.py", 404), (b"/cgi/%2e%2e%2foutside.py", 404),
    (b"/cgi/", 404), (b"/cgi/.hidden", 404), (b"/other/env.py", 404),
])
def test_statuses(cgidir, target: bytes, status: int) -> None:
    assert status_of(responder(cgidir), req("GET", target)) == status


def test_server_owned_headers_are_replaced(cgidir) -> None:
    resp = responder(cgidir).respond(req("GET", b"/cgi/crlf.py"))
    assert resp.body == b"hello" and b"Content-Length: 5\r\n" in resp.head
    assert b"999" not in resp.head and b"Connection" not in resp.head


@pytest.mark.parametrize("out, status", [
    (b"Content-Type: text/plain\r\n\r\nbody", 200),
    (b"Status: 404 Nope\nContent-Type: text/plain\n\nmissing", 404),
    (b"Status: 204\n\n", 204),
    (b"Location: /x\nStatus: 301 Moved\n\n", 301),
])
def test_parse_output(out: bytes, status: int) -> None:
    assert parse_output(out).status == status


@pytest.mark.parametrize("out", [b"", b"Content-Type text/plain\n\nx", b"Status: 100\n\n", b"Bad Name: x\n\n",
                                 b"Content-Type: a\rb\n\n"])
def test_parse_output_rejects(out: bytes) -> None:
    with pytest.raises(HTTPError) as info:
        parse_output(out)
    assert info.value.status == 502


def test_program_mode(cgidir) -> None:
    root, scripts = cgidir
    r = CgiResponder(default_settings(root=str(root)), "/run", program=[sys.executable, str(scripts / "env.py")],
                     extra_env={"MY_VAR": "x"})
    env = json.loads(r.respond(req("GET", b"/run/more?q")).body)["env"]
    assert env["SCRIPT_NAME"] == "/run" and env["PATH_INFO"] == "/more" and env["MY_VAR"] == "x"
    assert env["DOCUMENT_ROOT"] == str(root)
    assert status_of(r, req("GET", b"/runner")) == 404
