"""A WSGI module whose import takes a minute: a generation that never reports ready."""

import time

time.sleep(60)


def app(environ, start_response):  # pragma: no cover - never reached in the tests
    start_response("200 OK", [])
    return [b""]
