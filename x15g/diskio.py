"""The one facade for blocking disk work (architecture.md, principle 5, the Flash lesson).

Every open, fstat, scandir, cold read and fsync that may wait on a disk goes through `DiskIO.run`,
which hands it to the gevent hub's threadpool so the event loop keeps serving other connections.
Library code receives a `DiskIO` and never touches the threadpool itself; tests may pass
`DiskIO(inline=True)` to run calls directly.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

T = TypeVar("T")


class DiskIO:
    """Runs blocking calls in the hub's threadpool (or inline, for tests and tools)."""

    def __init__(self, threads: int = 8, inline: bool = False) -> None:
        self.inline = inline
        self._threads = threads
        self._pool: Any = None

    def _threadpool(self) -> Any:
        if self._pool is None:
            import gevent

            hub = gevent.get_hub()
            hub.threadpool.maxsize = self._threads
            self._pool = hub.threadpool
        return self._pool

    def run(self, func: Callable[..., T], *args: Any) -> T:
        """Call `func(*args)` off the hub and return its result (exceptions propagate)."""
        if self.inline:
            return func(*args)
        # Exceptions travel back as values: gevent's threadpool would print a traceback for each
        # one raised in a thread, flooding the error log under EMFILE or a failing disk.
        ok, value = self._threadpool().apply(_capture, (func, args))
        if ok:
            return value
        raise value


def _capture(func: Callable[..., Any], args: tuple) -> tuple[bool, Any]:
    try:
        return True, func(*args)
    except BaseException as exc:  # noqa: BLE001 - re-raised in the calling greenlet
        return False, exc
