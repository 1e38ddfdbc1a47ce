"""A copy of x15g's runtime (the package and what it imports) that another user can read.

A worker that drops to `--user nobody` still imports modules after the drop. A real install
(`pip install x15g` into /usr/local or /opt) is world-readable, but a checkout and its .venv may sit
under a 0700 home or `mktemp -d` directory that `nobody` cannot enter. Privilege tests run x15g
from this copy, with the base interpreter, so they test the drop and not the checkout's mode.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import shutil
import sys
from pathlib import Path

import x15g


def _runtime_distributions(name: str = "x15g") -> list[metadata.Distribution]:
    """`name`'s distribution and everything it requires at run time (no extras), recursively."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [name]
    while todo:
        wanted = todo.pop()
        if wanted.lower() in seen:
            continue
        dist = metadata.distribution(wanted)
        seen[wanted.lower()] = dist
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                todo.append(re.split(r"[\s;<>=!\[~(]", requirement, maxsplit=1)[0])
    return [dist for key, dist in seen.items() if key != name]


def readable_runtime(dest: Path) -> tuple[list[str], dict[str, str]]:
    """Copy x15g and its dependencies under `dest` (mode 0755 up to `dest`); returns the argv
    prefix that runs `python -m x15g` from the copy and the environment it needs."""
    site = dest / "site"
    shutil.copytree(Path(x15g.__file__).parent, site / "x15g",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for dist in _runtime_distributions():
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file)))
            if source.is_file() and ".." not in file.parts:
                target = site / file
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    for path in [dest, *dest.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    python = getattr(sys, "_base_executable", sys.executable)
    return [python, "-s", "-m", "x15g"], {"PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
