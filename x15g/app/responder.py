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
