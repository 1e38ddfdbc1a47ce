"""Importing locust monkey-patches gevent; inside the pytest process that deadlocks later tests.

Tests drive locust as a subprocess only; the pure parts of loadtests/ must import without it.
"""

from __future__ import annotations

import subprocess
import sys


def test_pure_loadtest_modules_do_not_import_locust() -> None:
    code = ("import sys, loadtests.specweb_workload, loadtests.specweb_checks, loadtests.specweb_summary;"
            "print('locust' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert result.stdout.strip() == "False", result.stderr
