"""Fixtures for the hardening tests: a root with a big file and a `secret` beside the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hardening.helpers import BIG_SIZE


def make_root(tmp_path: Path) -> Path:
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
def hroot(tmp_path: Path) -> Path:
    """A fresh root per test (see make_root)."""
    return make_root(tmp_path)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One x15g (defaults, one worker) for a whole module of short tests."""
    from tests.serverproc import ServerProcess

    with ServerProcess(make_root(tmp_path_factory.mktemp("shared"))) as proc:
        yield proc


@pytest.fixture
def server_default(hroot: Path):
    """x15g with default settings and one worker serving `hroot`."""
    from tests.serverproc import ServerProcess

    with ServerProcess(hroot) as proc:
        yield proc
