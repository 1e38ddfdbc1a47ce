"""The x15g-loadtest console script (installed with the loadtest extra): its locustfile and its
refusal of a bad --step with one line and exit 2. Real runs through it: tests/ops/test_guide.py."""

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_print_locustfile_names_the_installed_suite():
    out = subprocess.run([str(BIN / "x15g-loadtest"), "--print-locustfile"], capture_output=True, text=True,
                         timeout=60)
    path = Path(out.stdout.strip())
    assert out.returncode == 0 and path.name == "specweb99.py" and path.is_file()
    assert (path.parent / "locust.conf").is_file()


def test_bad_step_is_one_line_and_exit_2():
    out = subprocess.run([str(BIN / "x15g-loadtest"), "--step", "10,5,30"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "--step wants START,STEP,SECONDS,MAX" in out.stderr
    assert out.stdout == ""
