"""What every responder is: something that turns a Request into a Response.

Responders decide, the connection writes (architecture.md, principle 2). A responder may block cooperatively
(disk work through DiskIO, a CGI child process) and raises `HTTPError` for error answers.
"""

from __future__ import annotations

from typing import Protocol

from x15g.http.messages import Request, Response


class Responder(Protocol):
    def respond(self, request: Request) -> Response:
        """Describe the answer to `request`; raise HTTPError for an error answer."""
        ...


class ImmediateResponder(Protocol):
    """A responder that can often answer without blocking (the static files' cache hits): the
    connection then answers from the hub, without a greenlet switch."""

    def respond_now(self, request: Request) -> Response | None:
        """The answer if it can be made without waiting on anything (no disk, no child, no
        body); None when `respond` must make it in the connection's greenlet."""
        ...
