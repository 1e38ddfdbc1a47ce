"""The open-file cache (Flash/TUX, nginx's open_file_cache, lighttpd's stat_cache; architecture.md, "The caches").

Per URL path it keeps what does not change per request: the open fd (or the bytes of a small
file), size, mtime, inode, ETag, Last-Modified, Content-Type and ready-made responses for the
plain 200 GET and HEAD. A hit inside the revalidation window is a dict lookup and a
`move_to_end`; after the window one `os.stat` per watched path (in the threadpool) says whether
the entry still describes the file (inode, size and mtime compared, so a replaced file is noticed).
Answers that are not files (404, 403, redirects) are cached as `Answer`s for the same window.

Entries in use are revalidated ahead of time, off the request path (`refresh`, every quarter of
the window): one threadpool call stats every entry used in its window that ends before the next
tick, so a request for a file in use never waits on a revalidation (with browser-like traffic
over the 2,000-file static mix, 1 request in 13 did: a greenlet switch and a threadpool round
trip each). An entry nobody asked for in its window is left to expire: the next request
revalidates it as above.

An entry that leaves the cache while responses still send from its fd is only marked retired; the
fd is closed when the last of them calls `release` (Response.release).
"""

from __future__ import annotations

import errno
import os
import resource
import stat as stat_module
import time
from collections import OrderedDict
from typing import Any, Callable, final

from x15g.diskio import DiskIO
from x15g.http.dates import http_date
from x15g.http.messages import FileRange, Response
from x15g.http.writer import build_head
from x15g.static import residency

Stamp = tuple[int, int, int, int]  # (inode, device, size, mtime_ns)
Watch = tuple[tuple[str, "Stamp | None"], ...]

_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW


def stamp_of(st: os.stat_result) -> Stamp:
    """The identity a revalidation compares: inode and device catch a replaced file."""
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


def stat_stamp(path: str) -> Stamp | None:
    """Blocking: the stamp of `path`, or None when it does not exist (or is not reachable)."""
    try:
        return stamp_of(os.stat(path))
    except (FileNotFoundError, NotADirectoryError):
        return None


@final  # the responder tests `entry.__class__ is FileEntry` (exact, and cheaper than isinstance)
class FileEntry:
    """One regular file, opened and described once (see module doc); `variants` are its
    precompressed sidecars as (content-coding, FileEntry), owned by this entry."""

    __slots__ = (
        "path", "fd", "size", "mtime_ns", "mtime", "ino", "dev", "etag", "last_modified",
        "content_type", "body", "headers", "validators", "get_response", "head_response",
        "variants", "codings", "watch", "fresh_until", "resident_until", "refs", "retired", "owner", "used",
    )

    def __init__(self, path: str, fd: int, st: os.stat_result, content_type: str, body: bytes | None,
                 extra: tuple[tuple[str, str], ...] = (), etag_suffix: str = "") -> None:
        self.path = path
        self.fd = fd
        self.size = st.st_size if body is None else len(body)
        self.mtime_ns = st.st_mtime_ns
        self.mtime = st.st_mtime_ns // 1_000_000_000
        self.ino, self.dev = st.st_ino, st.st_dev
        # Strong validator (RFC 9110 §8.8.3): nanosecond mtime so two writes in one second differ.
        self.etag = b'"%x-%x%s"' % (self.mtime_ns, self.size, etag_suffix.encode("ascii"))
        self.last_modified = http_date(self.mtime)
        self.content_type = content_type
        self.body = body
        names = dict(extra)
        etag, last_modified = self.etag.decode("ascii"), self.last_modified.decode("ascii")
        self.validators = (("ETag", etag), ("Last-Modified", last_modified)) + tuple(
            (name, names[name]) for name in ("Cache-Control", "Vary") if name in names
        )
        self.headers = (("Content-Type", content_type), ("Last-Modified", last_modified), ("ETag", etag),
                        ("Accept-Ranges", "bytes")) + tuple(extra)
        head = build_head(200, self.headers, self.size)
        full = body if body is not None else FileRange(fd, 0, self.size)
        # Both depend only on the request head and this entry: stored as ready answers while fresh.
        # They answer every request for the file, so their wire bytes are made once a second (`wires`).
        self.get_response = Response(200, head, full, self.size, release=None if body is not None else self.release,
                                     fresh=self, wires={})
        self.head_response = Response(200, head, b"", self.size, send_body=False, fresh=self, wires={})
        self.variants: tuple[tuple[str, FileEntry], ...] = ()
        self.codings: tuple[str, ...] = ()
        self.watch: Watch = ((path, stamp_of(st)),)
        self.fresh_until = 0.0
        self.resident_until = 0.0
        self.refs = 0
        self.retired = False
        self.owner = self  # the entry whose revalidation window covers this one (see follow)
        self.used = False  # asked for since its last revalidation (refresh keeps it fresh)

    @property
    def memory(self) -> int:
        """Bytes of bodies this entry (with its variants) holds in memory."""
        own = len(self.body) if self.body is not None else 0
        return own + sum(variant.memory for _, variant in self.variants)

    @property
    def fds(self) -> int:
        """Open file descriptors this entry (with its variants) holds."""
        return (self.fd >= 0) + sum(variant.fds for _, variant in self.variants)

    def acquire(self) -> None:
        """A response is about to send from this entry's fd."""
        self.refs += 1

    def release(self) -> None:
        """A response that sent from this entry's fd is done (Response.release)."""
        self.refs -= 1
        if self.refs <= 0 and self.retired:
            self.close()

    def follow(self, owner: FileEntry) -> None:
        """Make this a sidecar variant of `owner`, which watches its file and retires it.

        Only the owner is in the cache, so the owner's window is this entry's too: answers made
        from it are ready answers while the owner is fresh. Not a body sent by sendfile: whether
        its pages are resident is sampled for the owner's file, not this one.
        """
        self.owner = owner
        self.get_response.fresh = owner if self.body is not None else None
        self.head_response.fresh = owner

    def retire(self) -> None:
        """The cache dropped this entry: close now, or when the last response releases it."""
        self.retired = True
        for _, variant in self.variants:
            variant.retire()
        if self.refs <= 0:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


class Answer:
    """A cached non-file outcome: an error status (404/403) or a redirect/listing marker.

    `kind` is "error", "redirect" (to `location`) or "listing" (of directory `path`).
    """

    __slots__ = ("kind", "status", "reason", "location", "path", "url_path", "fresh_until", "watch", "used")

    def __init__(self, kind: str, status: int, reason: str = "", location: str = "", path: str = "", url_path: str = "") -> None:
        self.kind, self.status, self.reason = kind, status, reason
        self.location, self.path, self.url_path = location, path, url_path
        self.fresh_until = 0.0
        self.watch: Watch = ()  # nothing to compare: reload after the window
        self.used = False

    memory = 0
    fds = 0

    def retire(self) -> None:
        pass


Entry = FileEntry | Answer


def open_entry(path: str, content_type: str, keep_body: int, extra: tuple[tuple[str, str], ...] = (),
               etag_suffix: str = "") -> FileEntry | None:
    """Blocking: open `path` and describe it; None if it is not a regular file.

    Files up to `keep_body` bytes are read into memory and their fd closed (a hit never needs
    it); larger ones keep the fd for sendfile. O_NONBLOCK keeps a FIFO from hanging the open;
    O_NOFOLLOW refuses a symlink swapped in after the path was checked.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat_module.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        if st.st_size > keep_body:
            return FileEntry(path, fd, st, content_type, None, extra, etag_suffix)
        body = _read_all(fd, st.st_size)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return FileEntry(path, -1, st, content_type, body, extra, etag_suffix)


def _read_all(fd: int, size: int) -> bytes:
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break  # the file shrank: serve what is there; revalidation notices the change
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def still_valid(watch: Watch) -> bool:
    """Blocking: one stat per watched path; False when any stamp changed (or nothing to watch)."""
    if not watch:
        return False
    return all(stat_stamp(path) == stamp for path, stamp in watch)


def all_still_valid(watches: list[Watch]) -> list[bool]:
    """Blocking: `still_valid` of each (one threadpool call for a whole refresh)."""
    return [still_valid(watch) for watch in watches]


class FileCache:
    """LRU of URL path -> Entry, bounded by `settings.cache_entries` and, for bodies kept in
    memory, by `settings.cache_memory`; revalidated every `settings.cache_revalidate` seconds.

    Counters for the metrics endpoint: `hits`, `misses`, `revalidations` (on the request path),
    `refreshes` (ahead of it), `evictions`, `warms`, `memory` (bytes of bodies held), `open_fds`
    and `entries` (paths cached).
    """

    def __init__(self, settings: Any, disk: DiskIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._disk = disk
        self._clock = clock
        self._map: OrderedDict[bytes, Entry] = OrderedDict()
        self.max_entries = settings.cache_entries
        self.max_memory = settings.cache_memory
        self.period = settings.cache_revalidate
        self.keep_body = min(settings.small_file_size, settings.cache_memory)
        # Open fds of large files are bounded too: a quarter of the process's limit, so
        # connections keep the rest (nginx's open_file_cache max plays the same role).
        self.max_fds = max(16, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4)
        self.hits = self.misses = self.revalidations = self.evictions = self.warms = 0
        self.refreshes = 0  # revalidations made ahead of time (refresh)
        self.memory = 0
        self.open_fds = 0

    @property
    def entries(self) -> int:
        return len(self._map)

    def get(self, key: bytes) -> Entry | None:
        """The entry for `key`, revalidated if its window has passed; None on a miss.

        Cooperative: a revalidation runs one stat per watched path through DiskIO. Others asking
        for the same entry meanwhile get it as it is (the window was already pushed forward).
        """
        entry = self._map.get(key)
        if entry is not None:
            now = self._clock()
            if now < entry.fresh_until:
                self._map.move_to_end(key)
                self.hits += 1
                entry.used = True
                return entry
            return self._revalidate(key, entry, now)
        self.misses += 1
        return None

    def peek(self, key: bytes) -> Entry | None:
        """The entry for `key` if it is inside its revalidation window (a hit), else None and
        nothing counted: `get` will count the miss or revalidate. Never waits."""
        entry = self._map.get(key)
        if entry is not None and self._clock() < entry.fresh_until:
            self._map.move_to_end(key)
            self.hits += 1
            entry.used = True
            return entry
        return None

    def resident(self, entry: FileEntry) -> bool:
        """Whether sendfile of `entry` is known not to wait on the disk (see ensure_resident)."""
        return entry.fd < 0 or self._clock() < entry.resident_until

    def _revalidate(self, key: bytes, entry: Entry, now: float) -> Entry | None:
        self.revalidations += 1
        entry.fresh_until = now + self.period
        if not entry.watch:
            # Nothing to compare (a 404, 403, redirect): this caller reloads it, and until its
            # fill replaces the entry the others get it as it is, instead of every concurrent
            # request reloading it through the threadpool at once.
            self.misses += 1
            return None
        if self._disk.run(still_valid, entry.watch):
            if self._map.get(key) is entry:  # not evicted or replaced while we waited
                if isinstance(entry, FileEntry):
                    entry.resident_until = 0.0  # sample the page cache again too
                self._map.move_to_end(key)
                self.hits += 1
                return entry
            self.misses += 1
            return None
        if self._map.get(key) is entry:
            self._drop(key)
        self.misses += 1
        return None

    @property
    def tick(self) -> float:
        """How often `refresh` should run (0: never, every request revalidates)."""
        return self.period / 4

    def refresh(self) -> None:
        """Revalidate ahead of time, in one DiskIO call (blocking only the caller), the entries
        used in their window whose window ends before the next tick; drop those that changed.
        A large file's pages are sampled again too, so its ready answer stays usable."""
        started = self._clock()
        horizon = started + 2 * self.tick
        due = [(key, entry) for key, entry in self._map.items()
               if entry.used and entry.watch and entry.fresh_until < horizon]
        if not due:
            return
        valid = self._disk.run(all_still_valid, [entry.watch for _, entry in due])
        until = started + self.period
        self.refreshes += len(due)
        for (key, entry), ok in zip(due, valid):
            if self._map.get(key) is not entry:
                continue  # dropped, evicted or replaced meanwhile
            entry.used = False
            if not ok:
                self._drop(key)
                continue
            entry.fresh_until = max(entry.fresh_until, until)
            if isinstance(entry, FileEntry) and entry.fd >= 0 and residency.probe(entry.fd, 0, entry.size) is not False:
                entry.resident_until = until

    def fill(self, key: bytes, load: Callable[..., Entry], *args: Any) -> Entry:
        """Run `load(*args)` through DiskIO (it may raise HTTPError: not cached) and cache it."""
        try:
            entry = self._disk.run(load, *args)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            # Out of descriptors: give back the older half of the cache's and try once more.
            self.max_fds = max(16, self.open_fds // 2)
            self._evict()
            entry = self._disk.run(load, *args)
        entry.fresh_until = self._clock() + self.period
        old = self._map.pop(key, None)
        if old is not None and old is not entry:
            self._forget(old)
        self._map[key] = entry
        self.memory += entry.memory
        self.open_fds += entry.fds
        self._evict()
        return entry

    def _evict(self) -> None:
        """Drop least recently used entries until every bound holds (never the newest one)."""
        while len(self._map) > 1 and (
            len(self._map) > self.max_entries or self.memory > self.max_memory or self.open_fds > self.max_fds
        ):
            self._drop(next(iter(self._map)))
            self.evictions += 1

    def _forget(self, entry: Entry) -> None:
        self.memory -= entry.memory
        self.open_fds -= entry.fds
        entry.retire()

    def _drop(self, key: bytes) -> None:
        self._forget(self._map.pop(key))

    def clear(self) -> None:
        """Drop every entry (fds close as their last responses release them)."""
        while self._map:
            self._drop(next(iter(self._map)))

    def ensure_resident(self, entry: FileEntry, offset: int, count: int) -> None:
        """Before sendfile of [offset, offset+count): if a sampled page is not cached, read the
        first WARM_WINDOW bytes of the range in the threadpool so the hub never waits on disk.

        The caller holds a reference (acquire) so the fd stays open meanwhile. A whole-file
        answer is remembered for the revalidation window.
        """
        if entry.fd < 0 or count <= 0:
            return
        now = self._clock()
        if now < entry.resident_until:
            return
        whole = offset == 0 and count >= entry.size
        found = residency.probe(entry.fd, offset, count)
        if found is False:
            self.warms += 1
            window = min(count, residency.WARM_WINDOW)
            self._disk.run(residency.warm, entry.fd, offset, window)
            whole = whole and window == count
        if whole:
            entry.resident_until = now + self.period
