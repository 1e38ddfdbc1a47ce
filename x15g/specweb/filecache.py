"""File-set bytes in memory for the dynamic operations, with their ad-tag offsets precomputed.

Every dynamic reply carries a whole file, and a CAD reply rewrites the ad fields of class 1 and 2
files; keeping those bytes and the field offsets in memory makes both a slice-and-join (the
X15/TUX lesson in specweb99-like.md §8). Bounded by total bytes (LRU); an entry is revalidated
with one stat at most every `revalidate` seconds (a regenerated file set is noticed); reads and
stats go through DiskIO so a cold file never blocks the hub. The entries in use are revalidated
ahead of their window by `refresh` (the worker runs it every `tick` seconds, as for the static
file cache), so a request for them is answered from the hub instead of waiting for its stat.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass

from x15g.diskio import DiskIO
from x15g.errors import HTTPError
from x15g.specweb.fileset import tag_offsets


@dataclass(slots=True)
class CachedFile:
    """The bytes of one file, where its ad fields are, and what stat said when it was read."""

    data: bytes
    offsets: tuple[int, ...] | None  # None until a caller asks for them
    ident: tuple[int, int, int]
    checked: float
    used: bool = False  # asked for since it was last checked (refresh keeps it fresh)


def _read(path: str) -> CachedFile | None:
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    return CachedFile(data, None, (st.st_ino, st.st_mtime_ns, st.st_size), time.monotonic())


def _ident(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _idents(paths: list[str]) -> list[tuple[int, int, int] | None]:
    return [_ident(path) for path in paths]


class FileCache:
    """`get(path, with_tags)` -> CachedFile, or HTTPError(404) when there is no such file."""

    def __init__(self, disk: DiskIO, max_bytes: int = 64 * 1024 * 1024, revalidate: float = 1.0) -> None:
        self.disk = disk
        self.max_bytes = max_bytes
        self.revalidate = revalidate
        self._entries: OrderedDict[str, CachedFile] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, path: str, with_tags: bool = False) -> CachedFile:
        """The cached file at absolute `path` (read through DiskIO on a miss or a change).

        With `with_tags`, `offsets` holds the ad-field offsets (found once, then kept).
        """
        entry = self._lookup(path)
        if with_tags and entry.offsets is None:
            entry.offsets = tuple(tag_offsets(entry.data))
        return entry

    def peek(self, path: str, with_tags: bool = False) -> CachedFile | None:
        """The cached file if it is inside its revalidation window (a hit), else None and
        nothing counted: `get` reads or revalidates it. Never waits."""
        entry = self._entries.get(path)
        if entry is None or time.monotonic() - entry.checked >= self.revalidate:
            return None
        self._entries.move_to_end(path)
        self.hits += 1
        entry.used = True
        if with_tags and entry.offsets is None:
            entry.offsets = tuple(tag_offsets(entry.data))
        return entry

    def _lookup(self, path: str) -> CachedFile:
        entry = self._entries.get(path)
        if entry is not None:
            if time.monotonic() - entry.checked < self.revalidate:
                self._entries.move_to_end(path)
                self.hits += 1
                entry.used = True
                return entry
            if self.disk.run(_ident, path) == entry.ident:
                entry.checked = time.monotonic()
                self._entries.move_to_end(path)
                self.hits += 1
                entry.used = True
                return entry
            self._drop(path)
        self.misses += 1
        entry = self.disk.run(_read, path)
        if entry is None:
            raise HTTPError(404, "no such file")
        self._store(path, entry)
        return entry

    @property
    def tick(self) -> float:
        """How often `refresh` should run (0: never)."""
        return self.revalidate / 4

    def refresh(self) -> None:
        """Revalidate ahead of time, in one DiskIO call, the entries used since their last check
        whose window ends before the next tick; drop those that changed (the next request reads
        them again)."""
        started = time.monotonic()
        horizon = started + 2 * self.tick - self.revalidate
        due = [(path, entry) for path, entry in self._entries.items() if entry.used and entry.checked < horizon]
        if not due:
            return
        idents = self.disk.run(_idents, [path for path, _ in due])
        for (path, entry), ident in zip(due, idents):
            if self._entries.get(path) is not entry:
                continue  # dropped or replaced meanwhile
            entry.used = False
            if ident == entry.ident:
                entry.checked = max(entry.checked, started)
            else:
                self._drop(path)

    def _drop(self, path: str) -> None:
        old = self._entries.pop(path, None)
        if old is not None:
            self._bytes -= len(old.data)

    def _store(self, path: str, entry: CachedFile) -> None:
        if len(entry.data) > self.max_bytes:
            return
        self._drop(path)  # another greenlet may have stored it meanwhile
        self._entries[path] = entry
        self._bytes += len(entry.data)
        while self._bytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self._bytes -= len(old.data)
