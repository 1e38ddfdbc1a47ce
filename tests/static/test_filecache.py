"""The open-file cache: LRU and memory bounds, revalidation, negative entries, refcounts, residency."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from x15g.config import default_settings
from x15g.diskio import DiskIO
from x15g.http.messages import FileRange
from x15g.static import residency
from x15g.static.filecache import Answer, FileCache, FileEntry, open_entry
from x15g.static.loader import Loader
from x15g.static.pathmap import PathMap


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_cache(root: Path, **options: Any) -> tuple[FileCache, Clock]:
    clock = Clock()
    settings = default_settings(root=str(root), **options)
    return FileCache(settings, DiskIO(inline=True), clock=clock), clock


def fill(cache: FileCache, path: Path, keep: int | None = None) -> FileEntry:
    keep = cache.keep_body if keep is None else keep
    return cache.fill(str(path).encode(), open_entry, str(path), "text/plain", keep)


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_lru_bound_on_entries(tmp_path: Path) -> None:
    cache, _ = make_cache(tmp_path, cache_entries=3)
    files = []
    for i in range(5):
        files.append(tmp_path / f"f{i}")
        files[-1].write_bytes(b"x" * i)
    for path in files[:3]:
        fill(cache, path)
    assert cache.get(str(files[0]).encode()) is not None  # f0 becomes most recent
    fill(cache, files[3])
    assert cache.entries == 3
    assert cache.get(str(files[1]).encode()) is None  # the least recently used went
    assert cache.get(str(files[0]).encode()) is not None
    assert cache.evictions == 1


def test_memory_bound(tmp_path: Path) -> None:
    cache, _ = make_cache(tmp_path, cache_memory=250, small_file_size=100)
    for i in range(4):
        (tmp_path / f"m{i}").write_bytes(b"y" * 100)
        fill(cache, tmp_path / f"m{i}")
    assert cache.memory == 200
    assert cache.entries == 2
    assert cache.get(str(tmp_path / "m0").encode()) is None
    assert cache.get(str(tmp_path / "m3").encode()).body == b"y" * 100


def test_small_bodies_in_memory_large_by_fd(tmp_path: Path) -> None:
    cache, _ = make_cache(tmp_path, small_file_size=10)
    (tmp_path / "small").write_bytes(b"0123456789")
    (tmp_path / "large").write_bytes(b"0123456789A")
    small, large = fill(cache, tmp_path / "small"), fill(cache, tmp_path / "large")
    assert small.fd == -1 and small.get_response.body == b"0123456789"
    assert large.body is None and large.get_response.body == FileRange(large.fd, 0, 11)
    assert large.get_response.release == large.release
    assert cache.memory == 10


@pytest.mark.parametrize("change", ["replace", "mtime", "size"])
def test_revalidation_notices_changes(tmp_path: Path, change: str) -> None:
    cache, clock = make_cache(tmp_path, cache_revalidate=1.0)
    path = tmp_path / "f.txt"
    path.write_bytes(b"first")
    entry = fill(cache, path)
    key = str(path).encode()
    if change == "replace":  # same size and mtime, new inode (an atomic rename)
        other = tmp_path / "new.txt"
        other.write_bytes(b"FIRST")
        st = os.stat(path)
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.rename(other, path)
    elif change == "mtime":
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    else:
        path.write_bytes(b"first, longer")
    clock.now += 0.5
    assert cache.get(key) is entry  # inside the window: no stat, the old answer
    clock.now += 0.6
    assert cache.get(key) is None  # the window passed: one stat notices the change
    assert cache.entries == 0


def test_unchanged_file_is_revalidated_in_place(tmp_path: Path) -> None:
    cache, clock = make_cache(tmp_path)
    path = tmp_path / "same.txt"
    path.write_bytes(b"same")
    entry = fill(cache, path)
    for _ in range(3):
        clock.now += 5
        assert cache.get(str(path).encode()) is entry
    assert cache.revalidations == 3


def test_entries_in_use_are_refreshed_ahead_of_their_window(tmp_path: Path) -> None:
    """refresh() revalidates, off the request path, what was used in its window and ends before
    the next tick: a request for it never waits; an unused one is left to expire; a changed
    file is dropped."""
    cache, clock = make_cache(tmp_path, cache_revalidate=1.0)
    assert cache.tick == 0.25
    used, unused, changed = (tmp_path / name for name in ("used", "unused", "changed"))
    for path in (used, unused, changed):
        path.write_bytes(b"data")
    entries = {path: fill(cache, path) for path in (used, unused, changed)}
    clock.now += 0.4
    cache.refresh()  # nothing ends before the next tick yet
    assert cache.refreshes == 0
    for path in (used, changed):
        assert cache.peek(str(path).encode()) is entries[path]
    changed.write_bytes(b"changed data")
    clock.now += 0.2  # 0.6 s into the window: it ends within two ticks
    cache.refresh()
    assert cache.refreshes == 2 and cache.revalidations == 0
    assert cache.get(str(changed).encode()) is None  # dropped: the next request loads it again
    clock.now += 0.9  # 1.5 s after the fill: past the first window, inside the refreshed one
    assert cache.peek(str(used).encode()) is entries[used]  # no request waited for its stat
    assert cache.peek(str(unused).encode()) is None  # expired: a request revalidates it (get)
    assert cache.get(str(unused).encode()) is entries[unused] and cache.revalidations == 1


def test_negative_entries_are_cached_for_the_window(tmp_path: Path) -> None:
    settings = default_settings(root=str(tmp_path))
    clock = Clock()
    cache = FileCache(settings, DiskIO(inline=True), clock=clock)
    loader = Loader(settings, PathMap(settings))
    answer = cache.fill(b"/late.txt", loader.load, ("late.txt",), False)
    assert isinstance(answer, Answer) and answer.status == 404
    (tmp_path / "late.txt").write_bytes(b"now here")
    assert cache.get(b"/late.txt") is answer  # still the cached 404 inside the window
    clock.now += 1.5
    assert cache.get(b"/late.txt") is None  # reloaded after it
    assert cache.get(b"/late.txt") is answer  # by that caller only: meanwhile others get it as it was
    entry = cache.fill(b"/late.txt", loader.load, ("late.txt",), False)
    assert isinstance(entry, FileEntry) and entry.body == b"now here"


def test_evicted_fd_closes_after_release(tmp_path: Path) -> None:
    cache, _ = make_cache(tmp_path, cache_entries=1, small_file_size=0)
    (tmp_path / "a").write_bytes(b"aaaa")
    (tmp_path / "b").write_bytes(b"bbbb")
    first = fill(cache, tmp_path / "a")
    fd = first.fd
    first.acquire()  # a response is sending from it
    fill(cache, tmp_path / "b")  # evicts "a"
    assert first.retired and is_open(fd)
    first.release()
    assert first.fd == -1 and not is_open(fd)


def test_evicted_idle_fd_closes_at_once(tmp_path: Path) -> None:
    cache, _ = make_cache(tmp_path, cache_entries=1, small_file_size=0)
    (tmp_path / "a").write_bytes(b"aaaa")
    (tmp_path / "b").write_bytes(b"bbbb")
    first = fill(cache, tmp_path / "a")
    fd = first.fd
    fill(cache, tmp_path / "b")
    assert not is_open(fd)
    cache.clear()
    assert cache.entries == 0


def test_cold_range_is_warmed_then_remembered(tmp_path: Path) -> None:
    cache, clock = make_cache(tmp_path, small_file_size=0)
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.write(os.urandom(2 * 1024 * 1024))
        f.flush()
        os.fsync(f.fileno())
    entry = fill(cache, path)
    os.posix_fadvise(entry.fd, 0, 0, os.POSIX_FADV_DONTNEED)
    if residency.probe(entry.fd, 0, entry.size) is not False:
        pytest.skip("this filesystem cannot report page-cache residency")
    cache.ensure_resident(entry, 0, entry.size)
    assert cache.warms == 1
    assert residency.probe(entry.fd, 0, entry.size) is True
    os.posix_fadvise(entry.fd, 0, 0, os.POSIX_FADV_DONTNEED)
    cache.ensure_resident(entry, 0, entry.size)  # remembered for the window: no probe
    assert cache.warms == 1
    clock.now += 2
    cache.ensure_resident(entry, 0, entry.size)
    assert cache.warms == 2


def test_probe_samples_every_stride(tmp_path: Path) -> None:
    path = tmp_path / "p.bin"
    path.write_bytes(b"z" * (3 * residency.STRIDE + 10))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert residency.probe(fd, 0, 3 * residency.STRIDE + 10) in (True, None)
        assert residency.probe(fd, 5, 1) in (True, None)
    finally:
        os.close(fd)


def test_open_fds_are_bounded(tmp_path: Path) -> None:
    cache, _ = make_cache(tmp_path, small_file_size=0)
    cache.max_fds = 2
    entries = []
    for i in range(4):
        (tmp_path / f"fd{i}").write_bytes(b"data")
        entries.append(fill(cache, tmp_path / f"fd{i}"))
    assert cache.open_fds == 2 and cache.entries == 2
    assert [entry.retired for entry in entries] == [True, True, False, False]


def test_out_of_descriptors_frees_the_cache_and_retries(tmp_path: Path) -> None:
    cache, _ = make_cache(tmp_path, small_file_size=0)
    for i in range(40):
        (tmp_path / f"e{i}").write_bytes(b"data")
        fill(cache, tmp_path / f"e{i}")
    calls = []

    def load_once_out_of_fds() -> FileEntry:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.EMFILE, "Too many open files")
        return open_entry(str(tmp_path / "e0"), "text/plain", 0)

    entry = cache.fill(b"/retry", load_once_out_of_fds)
    assert len(calls) == 2 and isinstance(entry, FileEntry)
    assert cache.open_fds <= 20
