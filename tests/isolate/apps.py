"""WSGI apps the isolation tests run in handler processes (`--wsgi tests.isolate.apps:NAME`).

`escape` tries one forbidden thing per path and answers what happened, so a test can check each
attempt failed inside the sandbox while the server serves on."""

from __future__ import annotations

import os
import signal
import socket
import time


def hello(environ, start_response):
    body = b"x" * 1024
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def _attempt(what: str, query: str) -> str:
    try:
        if what == "open":
            with open(query, "rb") as f:
                f.read(1)
        elif what == "exec":
            os.execv("/bin/true", ["true"])
        elif what == "tcp":
            socket.create_connection(("127.0.0.1", int(query)), timeout=2).close()
        elif what == "kill":
            os.kill(int(query), signal.SIGTERM)
        elif what == "fork":
            pid = os.fork()
            if pid == 0:
                os._exit(0)
        else:
            return "unknown"
    except OSError as exc:
        return f"denied {type(exc).__name__} {exc.errno}"
    return "ALLOWED"


def escape(environ, start_response):
    """/APP/<what>?<argument>: open a file, exec, connect over TCP, kill a pid, fork;
    /APP/whoami: uid and gid; /APP/sleep?S: sleep S seconds; /APP/crash: exit at once;
    /APP/hog?N: allocate N bytes; /APP/echo: the request body; /APP/big?N: N bytes;
    /APP/env?NAME: the environment variable NAME, or "unset"."""
    what = environ["PATH_INFO"].strip("/")
    query = environ["QUERY_STRING"]
    if what == "whoami":
        text = f"{os.getuid()} {os.getgid()} {os.getpid()}"
    elif what == "sleep":
        time.sleep(float(query or "1"))
        text = "slept"
    elif what == "crash":
        os._exit(7)
    elif what == "echo":
        text = environ["wsgi.input"].read().decode("latin-1")
    elif what == "env":
        text = os.environ.get(query, "unset")
    elif what == "big":
        text = "x" * int(query)
    elif what == "hog":  # more memory than --isolate-memory allows: MemoryError, a 500
        text = str(len(bytearray(int(query))))
    else:
        text = _attempt(what, query)
    body = text.encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
