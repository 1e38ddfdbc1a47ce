"""What `pip install .` installs is what the README says: the wheel and the sdist of this checkout,
built by the project's own build backend (setuptools, offline: no build isolation).

- the wheel: the four console scripts (x15g, x15g-fileset, x15g-precompress, x15g-loadtest), the
  man page as share/man/man1/x15g.1, the `x15g` and `loadtests` packages (with py.typed and
  locust.conf), gevent/greenlet/configargparse as its only unconditional requirements and locust
  under the `loadtest` extra;
- the sdist: the manual's docs/ and config/ that README.md links to, and the tests and tools.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.support.server import REPO

pytest.importorskip("setuptools", minversion="68", reason="the build backend is in the test extra")

TREE = ["pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "Makefile", "Dockerfile", ".ci",
        "x15g", "loadtests", "docs", "config", "tests", "tools"]
SCRIPTS = {"x15g": "x15g.cli:main", "x15g-fileset": "x15g.specweb.fileset_cli:main",
           "x15g-precompress": "x15g.static.precompress:main", "x15g-loadtest": "loadtests.cli:main"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, sdist) built from a copy of the checkout (the build writes egg-info beside it)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache", ".hypothesis")
    for name in TREE:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=skip)
        else:
            shutil.copy2(path, src / name)
    code = ("import sys; from setuptools import build_meta as b; out, result = sys.argv[1:3]; "
            "names = [b.build_wheel(out), b.build_sdist(out)]; "  # (the backend rewrites sys.argv)
            "open(result, 'w').write(' '.join(names))")  # (stdout carries the build's log)
    done = subprocess.run([sys.executable, "-c", code, str(out), str(src / "built.txt")], cwd=src,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheel_name, sdist_name = (src / "built.txt").read_text().split()
    return out / wheel_name, out / sdist_name


def test_the_wheel_installs_the_documented_programs_and_no_more_requirements(built: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(built[0]) as wheel:
        names = set(wheel.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        metadata = Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
    scripts = dict(line.split(" = ") for line in entry_points.split("[console_scripts]")[1].strip().splitlines())
    assert scripts == SCRIPTS
    assert {"x15g/py.typed", "loadtests/locust.conf", "loadtests/specweb99.py"} <= names
    assert any(n.endswith(".data/data/share/man/man1/x15g.1") for n in names), sorted(names)
    assert not any(n.startswith(("tests/", "tools/")) for n in names)
    requires = metadata.get_all("Requires-Dist")
    unconditional = sorted(r.split(">")[0].split("<")[0].strip() for r in requires if "extra ==" not in r)
    assert unconditional == ["configargparse", "gevent", "greenlet"], requires
    assert any(r.startswith("locust") and "extra == \"loadtest\"" in r for r in requires), requires


def test_the_sdist_carries_the_manual_tests_and_tools(built: tuple[Path, Path]) -> None:
    with tarfile.open(built[1]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    linked = {"docs/architecture.md", "docs/performance.md", "docs/operations.md", "docs/hosting.md",
              "docs/specweb99-like.md", "docs/locust-ui.png", "docs/x15g.1", "config/x15g.service"}
    assert linked <= names, sorted(linked - names)
    assert {"tests/conftest.py", "tests/support/server.py", "tools/gen_docs.py", "Makefile", ".ci/run"} <= names
    assert not any("__pycache__" in name for name in names)
