"""Errors that carry their answer.

An `HTTPError` knows the status to answer with and whether the connection must close afterwards,
so exactly one function (`x15g.app.errorpage.error_response`) maps any of them to a response; no
`isinstance` ladders elsewhere (the h11 idea, architecture.md, principle 6).
"""

from __future__ import annotations


class HTTPError(Exception):
    """A request that gets an error answer: `status`, a short `reason` for the body and the log.

    `close` says the connection cannot continue (framing is lost, e.g. a malformed head or body);
    `headers` are extra header lines for the answer (e.g. `Allow` for 405, `Content-Range` for 416).
    """

    def __init__(
        self,
        status: int,
        reason: str = "",
        *,
        close: bool = False,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.close = close
        self.headers = headers

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class ProtocolError(HTTPError):
    """The bytes on the wire are not HTTP/1.1 we accept: answer, then always close."""

    def __init__(self, status: int, reason: str, *, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(status, reason, close=True, headers=headers)


class ConfigError(Exception):
    """A configuration problem: the CLI prints it as one line and exits 2."""
