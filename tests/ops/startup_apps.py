"""WSGI apps for the supervisor tests. `app` answers `ok`; its `/exit` path answers and then ends
the worker with status 0, as request-count recycling (--max-requests) does: a planned exit."""

from __future__ import annotations

import os

import gevent


def app(environ, start_response):
    if environ["PATH_INFO"].endswith("/exit"):
        gevent.spawn_later(0.2, os._exit, 0)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]
