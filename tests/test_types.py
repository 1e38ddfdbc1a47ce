"""The type checker over x15g/ (configured in pyproject.toml `[tool.mypy]`), as part of the suite.

The option registry's `Settings` gets its typed attributes from `tools/mypy_settings.py`.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.server import REPO

pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")


def test_mypy_passes_over_the_package() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=REPO,
                          capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
