"""Per-worker counters, plain integer attributes bumped on the hot path (no locks: one hub thread)."""

from __future__ import annotations

import time


class Counters:
    """What a worker has done since it started; the admin endpoints read and aggregate these
    (responses by status class come from RequestMetrics, see metrics.worker_snapshot)."""

    __slots__ = (
        "started", "connections_total", "connections_open", "connections_idle", "requests",
        "bytes_sent", "bodies_memory", "bodies_sendfile", "errors_protocol",
        "idle_closes", "timeouts_header", "timeouts_body", "timeouts_send", "accept_errors", "ready_answers",
        "immediate_answers",
    )

    started: float
    connections_total: int
    connections_open: int
    connections_idle: int
    requests: int
    bytes_sent: int
    bodies_memory: int
    bodies_sendfile: int
    errors_protocol: int
    idle_closes: int
    timeouts_header: int
    timeouts_body: int
    timeouts_send: int
    accept_errors: int
    ready_answers: int
    immediate_answers: int

    def __init__(self) -> None:
        self.started = time.time()
        for name in self.__slots__[1:]:
            setattr(self, name, 0)

    def head_timed_out(self, idle: bool) -> None:
        """No (complete) head in time: a keep-alive connection idle past its timeout is an ordinary
        close (`idle`); a new connection silent, or a head arriving too slowly, is a header timeout."""
        if idle:
            self.idle_closes += 1
        else:
            self.timeouts_header += 1

    def snapshot(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__slots__}
