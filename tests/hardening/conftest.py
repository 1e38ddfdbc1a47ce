"""Fixtures for the hardening tests: a root with a big file and a `secret` beside the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.docroots import make_root
from tests.support.server import ServerProcess


@pytest.fixture
def hroot(tmp_path: Path) -> Path:
    """A fresh root per test (see make_root)."""
    return make_root(tmp_path)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One x15g (defaults, one worker) for a whole module of short tests."""
    with ServerProcess(make_root(tmp_path_factory.mktemp("shared"))) as proc:
        yield proc


@pytest.fixture
def server_default(hroot: Path):
    """x15g with default settings and one worker serving `hroot`."""
    with ServerProcess(hroot) as proc:
        yield proc
