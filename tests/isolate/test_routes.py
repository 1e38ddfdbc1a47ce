"""handler.Routes's memo of the worker's decisions at "/" (StaticOrApp): a path handed over is
the app's for one window; when it runs out one request asks the worker again while the others
go on, for one more window at the most."""

from __future__ import annotations

import pytest

from x15g.config import default_settings
from x15g.http.messages import Request
from x15g.isolate import protocol, routes

WINDOW = 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(routes, "_monotonic", clock)
    return clock


def table() -> routes.Routes:
    return routes.Routes({"routes": [(b"/admin", False, protocol.OTHER)], "default": protocol.STATIC_OR_MINE},
                         default_settings(cache_revalidate=WINDOW))


def get(path: bytes, method: str = "GET") -> Request:
    return Request(method, path, path, b"", 11, {}, True)


def test_a_handed_path_is_the_apps_for_a_window_then_one_request_asks_again(clock: Clock) -> None:
    memo = table()
    assert not memo.owns(get(b"/app"))  # never handed over: the worker decides
    memo.handed(get(b"/app"))
    clock.now += WINDOW - 0.01
    assert memo.owns(get(b"/app"))
    clock.now += 0.02  # expired
    assert not memo.owns(get(b"/app"))  # this one goes back to the worker
    assert memo.owns(get(b"/app")) and memo.owns(get(b"/app"))  # the others go on meanwhile
    memo.handed(get(b"/app"))  # the worker handed it over again: renewed
    clock.now += WINDOW - 0.01
    assert memo.owns(get(b"/app"))


def test_a_path_the_worker_keeps_is_given_back_after_one_more_window(clock: Clock) -> None:
    memo = table()
    memo.handed(get(b"/app"))
    clock.now += WINDOW + 0.01
    assert not memo.owns(get(b"/app"))  # asks; the worker serves a file now, no new hand-over
    assert memo.owns(get(b"/app"))
    clock.now += WINDOW
    assert not memo.owns(get(b"/app")) and not memo.owns(get(b"/app"))  # every request goes back


def test_other_routes_and_methods(clock: Clock) -> None:
    memo = table()
    assert not memo.owns(get(b"/admin/metrics"))
    assert memo.owns(get(b"/app", "POST"))  # every other method is the app's at "/"
