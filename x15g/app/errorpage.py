"""The one place an HTTPError becomes a response (architecture.md, principle 6)."""

from __future__ import annotations

from x15g.errors import HTTPError
from x15g.http.messages import Response
from x15g.http.writer import build_head, status_line



def error_response(error: HTTPError, head_only: bool = False) -> Response:
    """A short text/plain answer: `<status> <reason phrase>` plus the error's reason."""
    phrase = status_line(error.status)[13:-2].decode("ascii")
    text = f"{error.status} {phrase}"
    if error.reason and error.reason.lower() != phrase.lower():
        text += f": {error.reason}"
    body = (text + "\n").encode("utf-8", "replace")
    headers = (("Content-Type", "text/plain; charset=utf-8"),) + tuple(error.headers)
    head = build_head(error.status, headers, len(body))
    return Response(error.status, head, body, len(body), close=error.close, send_body=not head_only)
