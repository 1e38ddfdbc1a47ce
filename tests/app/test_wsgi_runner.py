"""app/wsgi_runner.py in process: the app call in a runner greenlet, write() handing its bytes
over and waiting, wake-ups of the caller passed on, ClientGone, and runners reused."""

from __future__ import annotations

from greenlet import getcurrent, greenlet

from x15g.app.wsgi_head import StartResponse
from x15g.app.wsgi_runner import RAISED, RETURNED, WROTE, ClientGone, RunnerPool, drive, run_out


def writer(environ, start_response):
    write = start_response("200 OK", [])
    write(b"one")
    write(b"")  # nothing to send: returns at once
    write(b"two")
    return [b"three"]


def test_each_write_is_handed_over_and_the_call_resumes_after_it() -> None:
    pool = RunnerPool()
    start = StartResponse()
    assert pool.call(writer, {}, start) is WROTE and start.value == b"one"
    runner = start.runner
    assert drive(runner, start, None) is WROTE and start.value == b"two"
    assert drive(runner, start, None) is RETURNED and start.value == [b"three"]
    start2 = StartResponse()
    assert pool.call(lambda e, s: [b"x"], {}, start2) is RETURNED
    assert start2.caller is getcurrent() and len(pool._idle) == 1  # the same runner served both


def test_a_write_after_the_answer_ended_raises_client_gone_in_the_app() -> None:
    seen = []

    def app(environ, start_response):
        write = start_response("200 OK", [])
        try:
            write(b"one")
            write(b"two")
        except ClientGone:
            seen.append("gone")
            raise

    start = StartResponse()
    pool = RunnerPool()
    assert pool.call(app, {}, start) is WROTE
    assert run_out(start.runner, start, ClientGone("gone")) is RAISED
    assert seen == ["gone"] and isinstance(start.value, ClientGone)


def test_wake_ups_that_reach_the_caller_are_passed_on_to_the_runner() -> None:
    """The app waits on something that wakes the caller's greenlet (as the connection's socket
    watchers do): drive hands the wake-up, and an exception thrown at the caller, to the runner."""
    got = []
    caller = getcurrent()
    waker = greenlet(lambda: (caller.switch("woken"), caller.throw(TimeoutError("late"))))

    def app(environ, start_response):
        got.append(waker.switch())  # like a hub wait: the waker switches to the caller, not to us
        try:
            waker.switch()
        except TimeoutError as exc:
            got.append(str(exc))
        start_response("200 OK", [])
        return [b"done"]

    start = StartResponse()
    assert RunnerPool().call(app, {}, start) is RETURNED
    assert got == ["woken", "late"] and start.value == [b"done"]
