"""The SPECweb99-like state directory: the tables in memory, shared truth on disk.

Files (specweb99-like.md §5.7): `User.Personality`, `Custom.Ads`, `post.log`, plus two of ours:
`Reset.now` (the `now` a Reset gave, empty for the real clock) and `generation`, an 8-byte
counter every worker maps with `mmap`. A Reset in any worker rewrites the tables (write to a
temporary name, then rename: readers never see half a table), bumps the counter, and every other
worker notices on its next request by reading 8 bytes of shared memory -- no system call per
request. Tables changed by hand (`x15g-fileset` run again) are noticed by a stat at most once a
second.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import time
from dataclasses import dataclass

from x15g.diskio import DiskIO
from x15g.specweb.postlog import PostLog
from x15g.specweb.tables import Ads, parse_ads, parse_users

USERS_FILE = "User.Personality"
ADS_FILE = "Custom.Ads"
POST_LOG_FILE = "post.log"
CLOCK_FILE = "Reset.now"
GENERATION_FILE = "generation"
STAT_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class Tables:
    """One consistent snapshot: users' demographics, the ads, and the Reset's clock (or None)."""

    users: tuple[int, ...]
    ads: Ads | None
    clock: int | None
    generation: int
    stamp: tuple

    def now(self) -> int:
        """The clock for expiry decisions: the Reset's `now` if it gave one, else real time."""
        return self.clock if self.clock is not None else int(time.time())


def write_atomic(path: str, data: bytes, sync: bool = True) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, never a mix."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class TableStore:
    """Loads the tables, reloads them when another process changed them, and applies a Reset."""

    def __init__(self, state_dir: str, disk: DiskIO) -> None:
        import gevent.lock

        self.dir = state_dir
        self.disk = disk
        self.lock = gevent.lock.RLock()
        os.makedirs(state_dir, exist_ok=True)
        self._gen_fd = os.open(self._path(GENERATION_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if os.fstat(self._gen_fd).st_size < 8:
            os.ftruncate(self._gen_fd, 8)
        self._gen = mmap.mmap(self._gen_fd, 8)
        self._tables = self._load()
        self._checked = time.monotonic()

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def generation(self) -> int:
        """The shared Reset counter (8 bytes of shared memory)."""
        return int.from_bytes(self._gen[:8], "little")

    def _stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        out: list[tuple[int, int, int] | None] = []
        for name in (USERS_FILE, ADS_FILE, CLOCK_FILE):
            try:
                st = os.stat(self._path(name))
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def _read(self, name: str) -> bytes | None:
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _load(self) -> Tables:
        """Read and parse the state files (blocking; a missing or bad table loads as empty)."""
        generation, stamp = self.generation(), self._stamp()
        users: tuple[int, ...] = ()
        ads = None
        try:
            users = tuple(parse_users(self._read(USERS_FILE) or b""))
            data = self._read(ADS_FILE)
            ads = parse_ads(data) if data else None
        except ValueError:
            users, ads = (), None  # CAD and POST then answer as for an unknown user
        clock_text = (self._read(CLOCK_FILE) or b"").strip()
        clock = int(clock_text) if clock_text.isdigit() else None
        return Tables(users, ads, clock, generation, stamp)

    def current(self) -> Tables:
        """The tables to use for this request, reloaded first if another worker reset them."""
        tables = self._tables
        stale = tables.generation != self.generation()
        if not stale and time.monotonic() - self._checked >= STAT_INTERVAL:
            self._checked = time.monotonic()
            stale = self.disk.run(self._stamp) != tables.stamp
        if stale:
            with self.lock:
                if self._tables is tables:
                    self._tables = self.disk.run(self._load)
                tables = self._tables
        return tables

    def current_now(self) -> Tables | None:
        """The tables when `current` would return them without a wait (no reload, no stat due)."""
        tables = self._tables
        if tables.generation != self.generation() or time.monotonic() - self._checked >= STAT_INTERVAL:
            return None
        return tables

    def reset(self, users: bytes, ads: bytes, clock: int | None, post_log: PostLog) -> Tables:
        """Reset steps 1-4 (§5.7), atomic for this process's requests (the caller's lock)."""
        with self.lock:
            self.disk.run(self._write_state, users, ads, clock)
            post_log.reset()
            self._tables = self.disk.run(self._load)
            self._checked = time.monotonic()
            return self._tables

    def _write_state(self, users: bytes, ads: bytes, clock: int | None) -> None:
        fcntl.flock(self._gen_fd, fcntl.LOCK_EX)  # one Reset at a time across workers
        try:
            write_atomic(self._path(USERS_FILE), users)
            write_atomic(self._path(ADS_FILE), ads)
            write_atomic(self._path(CLOCK_FILE), b"" if clock is None else b"%d\n" % clock)
            self._gen[:8] = (self.generation() + 1).to_bytes(8, "little")
        finally:
            fcntl.flock(self._gen_fd, fcntl.LOCK_UN)
