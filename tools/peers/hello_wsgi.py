"""The WSGI apps of tools/bench's `wsgi` and `flask` scenarios, the same for every server.

`app` answers every request with 1 KiB of text and its Content-Length (the "hello world" a user
tries first); `flask_app` is Flask's hello world (Flask is imported only when asked for).
"""

from __future__ import annotations

from typing import Callable, Iterable

BODY = (b"hello, world\n" * 79)[:1023] + b"\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]
FLASK_BODY = b"hello, world\n"
EXPECTED = {"app": BODY, "flask_app": FLASK_BODY}  # what tools/bench checks each server answers


def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    """1 KiB of text for any request."""
    start_response("200 OK", HEADERS)
    return [BODY]


def __getattr__(name: str):  # `hello_wsgi:flask_app` builds the Flask app on first use
    if name != "flask_app":
        raise AttributeError(name)
    from flask import Flask

    flask_app = Flask("hello")

    @flask_app.get("/")
    def hello() -> str:
        return FLASK_BODY.decode()

    globals()["flask_app"] = flask_app
    return flask_app
