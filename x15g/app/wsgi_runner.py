"""Run a WSGI application call in a pooled greenlet, so that PEP 3333's `write()` can hand its
bytes to the connection and return only once they were sent.

A `write()` happens deep inside the app's call, but the connection sends only what `respond()`
returned. So the call runs in a runner greenlet: `write(data)` switches back to the connection's
greenlet with the data, `respond()` returns a streamed answer, and the runner is resumed (its
`write()` returns) when the connection asks for the next chunk, i.e. after this one left.

The connection waits for its socket on watchers that switch to *its* greenlet (and its sweeper
throws timeouts into it), also when the app reads `wsgi.input` from the runner. So while a runner
runs, the connection's greenlet sits in `drive()`, which passes every such wake-up or exception
on to the runner until the runner reports a write, its result, or its exception. Waits of the
app's own (gevent sockets, sleep) wake the runner directly.

`begin` starts a call from the hub instead (app/wsgi.py's respond_now, for requests without a
body): the hub must not wait, so when the app waits on something the runner simply switches to
the hub; whoever joins the call later (the connection's greenlet) sets `start.caller` to itself
and the runner reports there. Runners are kept for reuse: a new greenlet costs ~5 us, a round
trip into a kept one ~0.5 us alone and ~1.5 us inside a busy worker (measured in both).
"""

from __future__ import annotations

from typing import Any, Callable

from greenlet import GreenletExit, getcurrent, greenlet

# What a runner reports in `start.outcome` / `start.value` when it switches to the connection's
# greenlet with SIGNAL (a unique object, so no wake-up value can pose as one).
WROTE = "wrote"  # value: bytes given to write(); the runner waits in write()
RETURNED = "returned"  # value: what the app returned
RAISED = "raised"  # value: the exception the app raised
SIGNAL = object()
# greenlet's own switch: gevent's Hub.switch takes no value, and a report may go to the hub.
report_to = greenlet.switch
_NOTHING = object()  # a wake-up that carried no value (libev watchers switch with none)
IDLE_RUNNERS = 64  # kept for reuse; more are made while that many app calls are blocked


class ClientGone(BrokenPipeError):
    """Raised by write() when the answer ended before the app did (the client went away, or the
    app's Content-Length was reached and the connection closed)."""


class RunnerPool:
    """The runners of one worker (app/wsgi.py's responder owns one)."""

    def __init__(self, idle: int = IDLE_RUNNERS) -> None:
        self._idle: list[greenlet] = []
        self._limit = idle

    def _runner(self) -> greenlet:
        if self._idle:
            return self._idle.pop()
        from gevent import get_hub

        # Its parent is the hub, as for the connection runners: never a connection that may be gone.
        return greenlet(self._loop, parent=get_hub())

    def call(self, app: Callable[..., Any], environ: dict[str, Any], start: Any) -> str:
        """Run `app(environ, start)` in a runner until it returns, raises or writes; the outcome
        (and `start.value`). After WROTE the runner waits in `start.write` for `drive`."""
        runner = self._runner()
        start.runner = runner
        start.caller = getcurrent()
        return drive(runner, start, (app, environ, start))

    def begin(self, app: Callable[..., Any], environ: dict[str, Any], start: Any) -> bool:
        """Start `app(environ, start)` from the hub: True when it reported at once (start.outcome);
        False when it waits on something (the hub resumes it; it reports to `start.caller`,
        which whoever joins it sets to their own greenlet)."""
        runner = self._runner()
        start.runner = runner
        start.caller = getcurrent()
        return runner.switch((app, environ, start)) is SIGNAL and bool(start.outcome)

    def _loop(self, job: tuple) -> None:
        idle = self._idle
        while True:
            app, environ, start = job
            del job
            try:
                start.value = app(environ, start)
                start.outcome = RETURNED
            except BaseException as exc:  # noqa: B036 - whatever the app raised goes back to respond()
                start.value = exc
                start.outcome = RAISED
            start.runner = None  # write() from now on (during iteration) runs in the caller
            caller = start.caller  # read now: a joining greenlet may have taken over
            del app, environ, start  # an idle runner holds nothing of its last request
            if len(idle) < self._limit:
                idle.append(getcurrent())
            try:
                job = report_to(caller, SIGNAL)
            except GreenletExit:  # an idle runner dropped (garbage-collected): end quietly
                return
            del caller


def run_out(runner: greenlet, start: Any, throw: BaseException | None = None) -> str:
    """Resume a runner waiting in write() until the app returns or raises: each further write()
    returns at once (its bytes dropped), or raises `throw` when given. The last outcome."""
    drive(runner, start, None, throw)
    while start.outcome is WROTE:
        drive(runner, start, None, throw)
    return start.outcome


def drive(runner: greenlet, start: Any, value: Any, throw: BaseException | None = None) -> str:
    """Resume `runner` (with `value`, or raising `throw` in it) and stay with it until it reports
    (start.outcome): wake-ups and exceptions that reach this greenlet meanwhile are meant for the
    runner (it waits on this connection's socket) and are passed on."""
    while True:
        try:
            if throw is not None:
                got = runner.throw(throw)
                throw = None
            elif value is _NOTHING:
                got = runner.switch()
            else:
                got = runner.switch(value)
        except BaseException as exc:  # noqa: B036 - e.g. the sweeper's timeout: the runner's to handle
            throw = exc
            continue
        if got is SIGNAL:
            return start.outcome
        value = _NOTHING if got == () else got
