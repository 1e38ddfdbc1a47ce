"""The application request a worker is running right now, for the watchdog's log line.

Set around each application call (app/wsgi.py) and read by the watchdog thread
(server/watchdog.py) when the hub stops making progress: a CPU-bound request holds the hub, so
the request recorded here is the one to blame.
"""

from __future__ import annotations


class InFlight:
    """`method` and `target` of the request inside application code, or None between calls."""

    __slots__ = ("method", "target")

    def __init__(self) -> None:
        self.method: str | None = None
        self.target: bytes = b""

    def describe(self) -> str:
        if self.method is None:
            return "no application request"
        return f"{self.method} {self.target.decode('latin-1')!r}"


current = InFlight()
