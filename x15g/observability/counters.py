"""Per-worker counters, plain integer attributes bumped on the hot path (no locks: one hub thread)."""

from __future__ import annotations

import time


class Counters:
    """What a worker has done since it started; the admin endpoints read and aggregate these."""

    __slots__ = (
        "started", "connections_total", "connections_open", "connections_idle", "requests",
        "by_class", "bytes_sent", "bodies_memory", "bodies_sendfile", "errors_protocol", "timeouts",
        "accept_errors", "ready_answers", "immediate_answers",
    )
    # snapshot() reports by_class (1xx..5xx, filled by RequestMetrics.observe) under these keys.
    CLASS_KEYS = ("responses_1xx", "responses_2xx", "responses_3xx", "responses_4xx", "responses_5xx")

    def __init__(self) -> None:
        self.started = time.time()
        for name in self.__slots__[1:]:
            setattr(self, name, 0)
        self.by_class = [0, 0, 0, 0, 0]

    def snapshot(self) -> dict[str, float]:
        out = {name: getattr(self, name) for name in self.__slots__ if name != "by_class"}
        out.update(zip(self.CLASS_KEYS, self.by_class))
        return out
