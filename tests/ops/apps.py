"""WSGI applications the ops tests host with `--wsgi tests.ops.apps:NAME` (a plain callable and
a Flask app). Module-level only: the server imports this in its worker processes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import threading
import time
from wsgiref import validate

from flask import Flask, request as flask_request, send_file


def faulty(environ, start_response):
    """Apps that break PEP 3333 in one way each (the server must answer 500 or close, and log)."""
    path = environ["PATH_INFO"]
    if path.endswith("/none"):
        start_response("200 OK", [])
        return None
    if path.endswith("/str-chunk"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["text, not bytes"]
    if path.endswith("/str-later"):  # a str after the first chunk: the stream is cut and closed
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"bytes first ", "then text"])
    if path.endswith("/raise-later"):  # an exception after the first byte went out
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _raise_later()
    if path.endswith("/twice"):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"never"]
    if path.endswith("/no-start"):
        return [b"never"]
    if path.endswith("/bad-status"):
        start_response("OK", [])
        return [b"never"]
    if path.endswith("/long-cl"):  # declares 10, sends 20: cut at 10
        start_response("200 OK", [("Content-Length", "10")])
        return [b"0123456789", b"abcdefghij"]
    if path.endswith("/short-cl"):  # declares 20, sends 5: the client must see the truncation
        start_response("200 OK", [("Content-Length", "20")])
        return [b"01234"]
    raise LookupError(path)


_gates: dict = {}


def _gate(name):
    return _gates.setdefault(name, threading.Event())  # cooperative: the worker is gevent-patched


def _gated(name):
    """Yield one chunk, then wait until /open/NAME is requested before the second."""
    try:
        yield b"first\n"
        opened = _gate(name).wait(20)
        yield b"second\n" if opened else b"gate timed out\n"
        yield b"third\n"
    finally:
        _gate("closed-" + name).set()  # the server called close()


def _generated(total, chunk=65536):
    block = b"x" * chunk
    while total > 0:
        yield block[:total]
        total -= chunk


def streaming(environ, start_response):
    """/gated/NAME and /open/NAME (a stream that goes on when told), /big?BYTES (a generated body)."""
    path = environ["PATH_INFO"]
    if path.startswith("/gated/"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _gated(path[7:])
    if path.startswith("/open/"):
        _gate(path[6:]).set()
        return ok(start_response)
    if path.startswith("/closed/"):
        return ok(start_response, b"yes" if _gate("closed-" + path[8:]).is_set() else b"no")
    if path == "/big":
        total = int(environ["QUERY_STRING"])
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(total))])
        return _generated(total)
    if path == "/pid":
        return ok(start_response, b"%d" % os.getpid())
    if path == "/upload":  # reads the body in pieces, as a streaming upload handler does
        digest, size = hashlib.sha256(), 0
        while True:
            part = environ["wsgi.input"].read(65536)
            if not part:
                break
            digest.update(part)
            size += len(part)
        return ok(start_response, b"%d %s" % (size, digest.hexdigest().encode()))
    if path == "/half":  # reads 10 bytes of its body and answers
        return ok(start_response, environ["wsgi.input"].read(10))
    if path == "/lines":
        return ok(start_response, b"|".join(line.rstrip(b"\n") for line in environ["wsgi.input"]))
    if path.startswith("/write-gated/"):
        return _write_gated(path[13:], start_response)
    if path == "/write-then-read":  # the client sends the body only once it saw the first write
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first\n")
        return [b"got " + environ["wsgi.input"].read()]
    if path.startswith("/write-cl/"):  # declares one length, writes another
        declared, written = path[10:].split("/")
        write = start_response("200 OK", [("Content-Length", declared)])
        write(b"x" * int(written))
        return []
    if path.startswith("/filelike-cl/"):  # a file-like without a descriptor, and a declared length
        declared, size = path[13:].split("/")
        start_response("200 OK", [("Content-Length", declared)])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"y" * int(size)))
    return app(environ, start_response)


class _Closing(list):
    """A list result whose close() tells the test it was called."""

    def __init__(self, items, gate):
        super().__init__(items)
        self.gate = gate

    def close(self):
        _gate(self.gate).set()


def _write_gated(name, start_response):
    """write() one piece, wait until /open/NAME, write a second, return a third; /closed/NAME
    says whether the call ended (a write raised, or close() of its result was called)."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        write(b"first\n")
        opened = _gate(name).wait(20)
        write(b"second\n" if opened else b"gate timed out\n")
    except OSError:  # the client went away: write() says so
        _gate("closed-" + name).set()
        raise
    return _Closing([b"third\n"], "closed-" + name)


def _raise_later():
    yield b"first "
    raise RuntimeError("failed after the first byte")


def app(environ, start_response):
    """A plain PEP 3333 callable; the path picks the behaviour."""
    path = environ["PATH_INFO"]
    if "/fault/" in path:
        return faulty(environ, start_response)
    if path.endswith("/spin"):  # CPU-bound: holds the worker's hub (the watchdog's case)
        deadline = time.monotonic() + float(environ.get("QUERY_STRING") or "30")
        while time.monotonic() < deadline:
            pass
        return ok(start_response)
    if path.endswith("/own-id"):  # an app that names its answers itself
        start_response("200 OK", [("X-Request-ID", "app-chosen"), ("Content-Length", "3")])
        return [b"ok\n"]
    if path.endswith("/content-length"):  # what many apps do; must not fail for a GET
        size = int(environ.get("CONTENT_LENGTH", 0) or 0)
        data = environ["wsgi.input"].read(size)
        return ok(start_response, b"%d %d\n" % (size, len(data)))
    if path.endswith("/boom"):
        raise RuntimeError("boom from the test app")
    if path.endswith("/bad-header"):
        start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
        return [b"never"]
    if path.endswith("/hop-by-hop"):
        start_response("200 OK", [("Connection", "close")])
        return [b"never"]
    if path.endswith("/exc-info"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("502 Bad Gateway", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"replaced\n"]
    if path.endswith("/file"):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        handle = open(os.environ["TEST_WSGI_FILE"], "rb")
        return environ["wsgi.file_wrapper"](handle)
    if path.endswith("/generator"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"%d\n" % i for i in range(1000))
    if path.endswith("/write"):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"returned\n"]
    if path.endswith("/errors"):
        environ["wsgi.errors"].write("a line for the error log\n")
        environ["wsgi.errors"].flush()
    if path.endswith("/slow"):
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
    body = environ["wsgi.input"].read()
    keys = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
            "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT", "HTTP_X_CUSTOM",
            "HTTP_X_UNDER_SCORE", "HTTP_X_REQUEST_ID", "wsgi.url_scheme", "wsgi.input_terminated",
            "wsgi.multiprocess")
    document = {key: environ.get(key) for key in keys}
    document["present"] = sorted(key for key in ("CONTENT_LENGTH", "CONTENT_TYPE") if key in environ)
    document["body"] = body.decode("latin-1")
    document["pid"] = os.getpid()
    data = json.dumps(document).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def ok(start_response, body=b"ok\n"):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _validated_inner(environ, start_response):
    body = b""
    while True:  # wsgiref.validate wants read(size); wsgi.input_terminated makes the loop safe
        part = environ["wsgi.input"].read(65536)
        if not part:
            break
        body += part
    data = b"%s %d\n" % (environ["REQUEST_METHOD"].encode(), len(body))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


validated = validate.validator(_validated_inner)  # wsgiref.validate checks both sides of PEP 3333


flask_app = Flask(__name__)


@flask_app.get("/")
def flask_index():
    return "hello from flask\n"


@flask_app.route("/echo", methods=["POST"])
def flask_echo():
    return {"json": flask_request.get_json(silent=True), "form": flask_request.form.to_dict(),
            "args": flask_request.args.to_dict(), "script_root": flask_request.script_root,
            "path": flask_request.path, "url": flask_request.url}


@flask_app.get("/boom")
def flask_boom():
    raise RuntimeError("flask boom")


@flask_app.get("/download")
def flask_download():
    return send_file(os.environ["TEST_WSGI_FILE"], mimetype="application/octet-stream")


@flask_app.get("/hello/<name>")
def flask_hello(name: str):
    return {"hello": name}
