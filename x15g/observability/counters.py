"""Per-worker counters, plain integer attributes bumped on the hot path (no locks: one hub thread)."""

from __future__ import annotations

import time


class Counters:
    """What a worker has done since it started; the admin endpoints read and aggregate these."""

    __slots__ = (
        "started", "connections_total", "connections_open", "connections_idle", "requests",
        "responses_1xx", "responses_2xx", "responses_3xx", "responses_4xx", "responses_5xx",
        "bytes_sent", "bodies_memory", "bodies_sendfile", "errors_protocol", "timeouts",
        "accept_errors",
    )

    def __init__(self) -> None:
        self.started = time.time()
        for name in self.__slots__[1:]:
            setattr(self, name, 0)

    def count_response(self, status: int, sent: int) -> None:
        self.requests += 1
        self.bytes_sent += sent
        klass = status // 100
        if klass == 2:
            self.responses_2xx += 1
        elif klass == 3:
            self.responses_3xx += 1
        elif klass == 4:
            self.responses_4xx += 1
        elif klass == 5:
            self.responses_5xx += 1
        else:
            self.responses_1xx += 1

    def snapshot(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__slots__}
