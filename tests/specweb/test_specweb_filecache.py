"""The dynamic module's file cache keeps the files in use fresh ahead of their window (refresh),
leaves the others to expire, and drops a file that changed (real files, the real DiskIO)."""

from __future__ import annotations

from pathlib import Path

from x15g.diskio import DiskIO
from x15g.specweb.filecache import FileCache

WINDOW = 1.0


def aged(cache: FileCache, path: Path, used: bool) -> float:
    """Read `path` into the cache and make its entry look checked 0.9 windows ago."""
    entry = cache.get(str(path))
    entry.checked -= 0.9 * WINDOW
    entry.used = used
    return entry.checked


def test_refresh_revalidates_what_is_used_drops_what_changed_and_leaves_the_rest(tmp_path: Path) -> None:
    cache = FileCache(DiskIO(threads=2), revalidate=WINDOW)
    assert cache.tick == WINDOW / 4
    used, idle, changed = tmp_path / "used", tmp_path / "idle", tmp_path / "changed"
    for path in (used, idle, changed):
        path.write_bytes(b"old")
    used_checked = aged(cache, used, used=True)
    idle_checked = aged(cache, idle, used=False)
    aged(cache, changed, used=True)
    changed.write_bytes(b"newer")  # another size: its stat differs
    cache.refresh()
    assert cache.peek(str(used)) is not None  # checked again: a full window ahead
    entry = cache.peek(str(used))
    assert entry is not None and entry.checked > used_checked + 0.5 * WINDOW
    idle_entry = cache._entries[str(idle)]
    assert idle_entry.checked == idle_checked and not idle_entry.used  # not asked for: left to expire
    assert str(changed) not in cache._entries  # the next request reads it again
    assert cache.get(str(changed)).data == b"newer"


def test_a_hit_marks_the_entry_used_and_refresh_clears_the_mark(tmp_path: Path) -> None:
    cache = FileCache(DiskIO(threads=2), revalidate=WINDOW)
    path = tmp_path / "f"
    path.write_bytes(b"data")
    aged(cache, path, used=False)
    assert cache.peek(str(path)) is not None and cache._entries[str(path)].used
    cache.refresh()
    assert not cache._entries[str(path)].used
