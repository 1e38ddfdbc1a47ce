"""WSGI modules that misbehave at import, for the supervisor tests (`--wsgi tests.ops.startup_apps:app`
imports fine; the others are separate modules because the failure happens at import time)."""

from __future__ import annotations


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]
