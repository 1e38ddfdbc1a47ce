"""The SPECweb99-like module in a handler process answers byte for byte as in the worker."""

from __future__ import annotations

import os
import re

import pytest

from tests.isolate.handlerproc import HandlerProcess, read_answer
from x15g.config import default_settings
from x15g.diskio import DiskIO
from x15g.errors import HTTPError
from x15g.http.messages import Request
from x15g.app.errorpage import error_response
from x15g.specweb import fileset
from x15g.specweb.fileset_cli import write_state
from x15g.specweb.responder import SpecwebResponder

RESET = b"/specweb99?command/Reset&maxload=10&pttime=0&maxthread=10&exp=0,180&urlroot=/file_set/&now=1000000000"
COOKIE = {b"cookie": b"my_cookie=user_id=10003&last_ad=5"}
FORM = b"urlroot=/file_set/&dir=00001&class=1&num=3&client=7"
_DATE = re.compile(rb"\r\nDate: [^\r]*")

# (method, target, headers, body): every kind of dynamic request, bad ones too
REQUESTS = [
    ("GET", RESET, {}, b""),
    ("GET", b"/specweb99?/file_set/dir00000/class0_0", {}, b""),
    ("GET", b"/specweb99?/file_set/dir00001/class3_8", {}, b""),  # a large file (parts)
    ("HEAD", b"/specweb99?/file_set/dir00001/class1_4", {}, b""),
    ("GET", b"/specweb99?/file_set/dir00001/class2_8", {b"cookie": b"my_cookie=user_id=10000&last_ad=0"}, b""),
    ("GET", b"/specweb99?/file_set/dir00000/class1_0", {b"cookie": b"junk"}, b""),
    ("POST", b"/specweb99", COOKIE, FORM),
    ("GET", b"/specweb99?command/Fetch", {}, b""),
    ("GET", b"/specweb99?/file_set/../etc/passwd", {}, b""),
    ("GET", b"/specweb99?/file_set/dir00005/class1_1", {}, b""),
    ("DELETE", b"/specweb99", {}, b""),
]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """Two identical file sets and state directories: one per side."""
    out = []
    for name in ("inproc", "isolated"):
        base = tmp_path_factory.mktemp(name)
        os.chmod(base, 0o755)
        root = str(base / "docroot")
        fileset.generate(root, 2)
        write_state(root, 10)
        out.append(root)
    return out


def in_process(responder: SpecwebResponder, method: str, target: bytes, headers: dict, body: bytes) -> bytes:
    path, _, query = target.partition(b"?")
    request = Request(method, target, path, query, 11, headers, True,
                      content_length=len(body) if body else None, body=body, peer="127.0.0.1:40000")
    try:
        response = responder.respond(request)
    except HTTPError as error:
        response = error_response(error, method == "HEAD")
    out = response.head + b"Date: x\r\n\r\n"
    if response.send_body and method != "HEAD":
        out += response.body if isinstance(response.body, bytes) else b"".join(response.body)
    return out


def _records_masked(answer: bytes) -> bytes:
    """A Fetch answer with each record's time, pid and thread id (bytes 11-33 and 117-127 of
    139) blanked."""
    head, _, body = answer.partition(b"<pre>\n")
    log = bytearray(body)
    for start in range(11, len(log) - 139, 139):
        log[start + 11:start + 33] = b"-" * 22
        log[start + 117:start + 127] = b"-" * 10
    return head + bytes(log)


def test_every_request_kind_byte_identical(roots) -> None:
    inproc_root, isolated_root = roots
    responder = SpecwebResponder(default_settings(root=inproc_root), DiskIO(inline=True))
    handler = HandlerProcess("specweb", root=isolated_root, specweb=True)
    try:
        assert handler.ready().request_id == 0
        for method, target, headers, body in REQUESTS:
            expected = in_process(responder, method, target, headers, body)
            client, server = handler.connect()
            with client, server:
                handler.hand_over(server, method, target, headers, body)
                answer = read_answer(client) if method != "HEAD" else client.recv(65536)
                report = handler.report()
            got = _DATE.sub(b"\r\nDate: x", answer)
            if target.endswith(b"Fetch"):  # the post log's records hold a pid and a time
                got, expected = _records_masked(got), _records_masked(expected)
            assert got == expected, (method, target)
            assert report.status == int(expected[9:12])
        # the post log on the isolated side holds the POST (written by the isolate user)
        log = open(os.path.join(os.path.dirname(isolated_root), "specweb_state", "post.log"), "rb").read()
        assert log.startswith(b"         1\n") and len(log) == 150
    finally:
        handler.stop()
