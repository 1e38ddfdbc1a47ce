"""http/spool.py: a whole body read from its stream, in memory up to a threshold, else spooled."""

from __future__ import annotations

import io
import os

import pytest

from x15g.errors import HTTPError
from x15g.http.spool import spool


def test_a_small_body_stays_in_memory() -> None:
    body = spool(io.BytesIO(b"a=1&b=2"), threshold=100)
    assert (body.data, body.file, body.size) == (b"a=1&b=2", None, 7)


def test_a_body_past_the_threshold_is_in_a_temporary_file_from_its_start() -> None:
    data = os.urandom(300_000)
    body = spool(io.BytesIO(data), threshold=100_000)
    try:
        assert body.data == b"" and body.size == len(data) and body.file is not None
        assert os.fstat(body.file.fileno()).st_nlink == 0  # unlinked: nothing left behind on disk
        assert body.file.read() == data
    finally:
        body.close()
    assert body.file is None


def test_more_than_the_limit_is_413_before_the_rest_is_read() -> None:
    stream = io.BytesIO(b"x" * 1_000_000)
    with pytest.raises(HTTPError) as raised:
        spool(stream, threshold=1000, limit=1000)
    assert raised.value.status == 413
    assert stream.tell() < 1_000_000
