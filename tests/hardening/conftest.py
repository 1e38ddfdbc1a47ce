"""Fixtures for the hardening tests: a root with a big file and a `secret` beside the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hardening.helpers import BIG_SIZE


@pytest.fixture
def hroot(tmp_path: Path) -> Path:
    """tmp/root (served) next to tmp/secret (must never be served)."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_bytes(b"<h1>index</h1>\n")
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "sub" / "a.txt").write_bytes(b"a\n")
    (root / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    (tmp_path / "secret").write_bytes(b"TOP-SECRET-OUTSIDE-ROOT\n")
    os.chmod(root, 0o755)
    os.chmod(tmp_path, 0o755)
    return root


@pytest.fixture
def server_default(hroot: Path):
    """x15g with default settings and one worker serving `hroot`."""
    from tests.serverproc import ServerProcess

    with ServerProcess(hroot) as proc:
        yield proc
