"""Shared fixtures: a small document root and a running x15g serving it.

Tests in a module that starts processes (it uses `ServerProcess` or `subprocess`) are marked
`process`; `make test-fast` runs the others (`-m "not process"`), the pure-code tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.docroots import make_docroot
from tests.support.server import ServerProcess


SERVER_FIXTURES = {"server", "shared_server", "server_default"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "process: starts a server or another process (not in make test-fast)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        starts = hasattr(module, "ServerProcess") or hasattr(module, "subprocess")
        if starts or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.process)


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
