"""Cache admission on a key's second sighting (pure), shared by the parsed whole-head cache and
the ready answers (server/answers.py).

A key that never repeats (a counter or cache-buster in the query, a fresh cookie) then costs one
set insert instead of a cache entry, and cannot push out the entries that are used.
"""

from __future__ import annotations

from typing import Hashable


class SecondSighting:
    """Remembers keys seen once (bounded: forgotten all at once when `limit` is reached)."""

    __slots__ = ("_seen", "limit")

    def __init__(self, limit: int) -> None:
        self._seen: set[Hashable] = set()
        self.limit = limit

    def admit(self, key: Hashable) -> bool:
        """True on the second sighting of `key` (and forgets it); False on the first (notes it)."""
        if key in self._seen:
            self._seen.discard(key)
            return True
        self.note(key)
        return False

    def note(self, key: Hashable) -> None:
        """Count `key` as seen once, so its next sighting is admitted."""
        seen = self._seen
        if len(seen) >= self.limit:
            seen.clear()  # a key that does repeat is simply seen again
        seen.add(key)

    def clear(self) -> None:
        self._seen.clear()
