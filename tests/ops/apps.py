"""WSGI applications the ops tests host with `--wsgi tests.ops.apps:NAME` (a plain callable and
a Flask app). Module-level only: the server imports this in its worker processes."""

from __future__ import annotations

import json
import os
import sys
import time

from flask import Flask, request as flask_request, send_file


def app(environ, start_response):
    """A plain PEP 3333 callable; the path picks the behaviour."""
    path = environ["PATH_INFO"]
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
            "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "HTTP_X_CUSTOM", "HTTP_X_UNDER_SCORE",
            "wsgi.url_scheme", "wsgi.input_terminated", "wsgi.multiprocess")
    document = {key: environ.get(key) for key in keys}
    document["body"] = body.decode("latin-1")
    data = json.dumps(document).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


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
