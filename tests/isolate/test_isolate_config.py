"""--isolate configuration errors stop the start with one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.server import APP_ENV, REPO, free_port


@pytest.mark.parametrize("args, message", [
    (["--isolate"], "--isolate has nothing to isolate"),
    (["--isolate", "--wsgi", "tests.isolate.apps:hello", "--isolate-user", "no-such-user-x15g"], "no such user"),
    (["--isolate", "--wsgi", "tests.isolate.apps:hello", "--isolate-procs", "0"], "--isolate-procs"),
    (["--isolate", "--wsgi", "tests.isolate.apps:hello", "--isolate-timeout", "0"], "--isolate-timeout"),
    (["--isolate", "--wsgi", "tests.isolate.apps:hello", "--isolate-env", "APP,NOT-A-NAME"], "--isolate-env"),
])
def test_bad_isolation_settings_exit_2(tmp_path, args: list[str], message: str) -> None:
    out = subprocess.run([sys.executable, "-m", "x15g", "--root", str(tmp_path), "--bind", f"127.0.0.1:{free_port()}",
                          *args], cwd=str(REPO), env=dict(APP_ENV, PATH="/usr/bin:/bin"), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
