"""Shared fixtures: a small document root and a running x15g serving it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.serverproc import ServerProcess


def make_docroot(base: Path) -> Path:
    """A document root with a few files of known content."""
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_bytes(b"<h1>index</h1>\n")
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "sub" / "index.html").write_bytes(b"<p>sub</p>\n")
    (root / "one_k.bin").write_bytes(bytes(range(256)) * 4)
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / ".secret").write_bytes(b"TOPSECRET\n")
    os.chmod(root, 0o755)
    return root


@pytest.fixture
def docroot(tmp_path: Path) -> Path:
    """A fresh document root for tests that change files or need their own server."""
    return make_docroot(tmp_path)


@pytest.fixture(scope="module")
def shared_docroot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A document root shared by one module's tests (do not modify it)."""
    return make_docroot(tmp_path_factory.mktemp("shared"))


@pytest.fixture
def server(docroot: Path):
    """x15g with default settings (one worker) serving `docroot`, started for one test."""
    with ServerProcess(docroot) as proc:
        yield proc


@pytest.fixture(scope="module")
def shared_server(shared_docroot: Path):
    """x15g with default settings serving `shared_docroot`, one per test module (saves start-ups)."""
    with ServerProcess(shared_docroot) as proc:
        yield proc
