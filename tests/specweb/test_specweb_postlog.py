"""The post log (specweb99-like.md §6.5): record format, ordering across processes, crash recovery."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from x15g.diskio import DiskIO
from x15g.specweb.postlog import PostLog, header, record

FILENAME = b"/file_set/dir00007/class1_3"


def test_record_written_out() -> None:
    rec = record(1, 1000000000, 4242, 7, 1, 3, 12, FILENAME, 5, 10012)
    expected = (b"         1 1000000000       4242     7  1  3         12 "
                + FILENAME + b" " * 33 + b"          5      10012\n")
    assert rec == expected and len(rec) == 139
    assert record(2, 1, 2, 3, 0, 8, 0, "/x/" + "y" * 70, 9, 10000)[56:117] == b"/x/" + b"y" * 57 + b" "  # %-60.60s truncates


def test_header() -> None:
    assert header(0) == b"         0\n" and header(12345) == b"     12345\n"


def test_record_rejects_out_of_range_fields() -> None:
    with pytest.raises(ValueError):
        record(1, 1, 1, 123456, 1, 1, 1, FILENAME, 1, 10000)


def _append_many(path: str, count: int, client: int) -> None:
    log = PostLog(path, DiskIO(inline=True), "none")
    for _ in range(count):
        log.append(1, os.getpid(), 1, 2, 3, client, FILENAME, 0, 10000 + client)


@pytest.mark.parametrize("sync", ["record", "none"])
def test_append_reset_read(tmp_path, sync: str) -> None:
    log = PostLog(str(tmp_path / "post.log"), DiskIO(inline=True), sync)
    assert log.read() == b"         0\n"
    assert [log.append(7, 1, 0, 1, 2, 3, FILENAME, 4, 10005) for _ in range(3)] == [1, 2, 3]
    data = log.read()
    assert len(data) == 11 + 3 * 139 and data[:11] == b"         3\n"
    assert data[11 + 139:11 + 149] == b"         2"
    log.reset()
    assert log.read() == b"         0\n"
    assert log.append(7, 1, 0, 1, 2, 3, FILENAME, 4, 10005) == 1


def test_appends_from_processes_are_ordered_and_complete(tmp_path) -> None:
    path = str(tmp_path / "post.log")
    PostLog(path, DiskIO(inline=True), "none").reset()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, 150, c)) for c in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    data = open(path, "rb").read()
    assert len(data) == 11 + 600 * 139 and data[:11] == b"       600\n"
    recs = [data[11 + 139 * i:11 + 139 * (i + 1)] for i in range(600)]
    assert [int(r[:10]) for r in recs] == list(range(1, 601))
    assert sorted(int(r[45:55]) for r in recs) == sorted(c for c in range(4) for _ in range(150))


def test_greenlets_share_one_log(tmp_path) -> None:
    import gevent

    log = PostLog(str(tmp_path / "post.log"), DiskIO(threads=4), "record")
    jobs = [gevent.spawn(log.append, 1, 1, 0, 0, 0, c, FILENAME, 0, 10000) for c in range(50)]
    gevent.joinall(jobs, timeout=30)
    assert sorted(j.value for j in jobs) == list(range(1, 51))
    assert len(log.read()) == 11 + 50 * 139


@pytest.mark.parametrize("damage, count", [
    (lambda good: good[:11 + 139 * 2 + 50], 2),  # torn third record
    (lambda good: b"         2\n" + good[11:], 3),  # stale header: the size is the truth
    (lambda good: good[:11 + 139 * 2] + b"\0" * 139, 2),  # size grew but the data never landed
    (lambda good: good[:5], 0),  # torn header of an empty log
])
def test_recovery(tmp_path, damage, count: int) -> None:
    path = str(tmp_path / "post.log")
    log = PostLog(path, DiskIO(inline=True), "record")
    for _ in range(3):
        log.append(1, 1, 0, 0, 0, 0, FILENAME, 0, 10000)
    good = log.read()
    log.close()
    with open(path, "wb") as fh:
        fh.write(damage(good))
    data = PostLog(path, DiskIO(inline=True), "record").read()
    assert data == header(count) + good[11:11 + 139 * count]


def test_read_repairs_a_header_left_behind_by_a_killed_writer(tmp_path) -> None:
    """A writer SIGKILLed between its record and its header: the live log's next read is whole."""
    path = str(tmp_path / "post.log")
    log = PostLog(path, DiskIO(inline=True), "record")
    for _ in range(3):
        log.append(1, 1, 0, 0, 0, 0, FILENAME, 0, 10000)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, header(2), 0)  # what the killed writer's missing second pwrite leaves
    finally:
        os.close(fd)
    data = log.read()  # the same open log, as a surviving worker would read it
    assert data[:11] == header(3) and len(data) == 11 + 3 * 139
    with open(path, "rb") as fh:
        assert fh.read(11) == header(3)
