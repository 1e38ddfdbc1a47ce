"""The layering rules of docs/architecture.md, checked by walking every module's imports.

Layers, lowest first: errors and cache; http; cgi; static, specweb, app; observability and server;
cli. A module may import its own layer and the layers below it, never above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "x15g"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name for name in names if name == "x15g" or name.startswith("x15g.")}


def modules(under: str) -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py")) if under else sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", modules("cache"), ids=lambda p: p.name)
def test_cache_policy_imports_nothing_of_x15g(path: Path) -> None:
    assert not {name for name in imports_of(path) if not name.startswith("x15g.cache")}


@pytest.mark.parametrize("path", modules("http"), ids=lambda p: p.name)
def test_http_is_pure(path: Path) -> None:
    allowed = {"x15g", "x15g.errors"}
    bad = {name for name in imports_of(path)
           if name not in allowed and not name.startswith(("x15g.http", "x15g.cache"))}
    assert not bad, f"{path.name} imports {bad}"
    text = path.read_text()
    assert "import gevent" not in text and "import socket" not in text


@pytest.mark.parametrize("path", modules("cgi"), ids=lambda p: p.name)
def test_cgi_runner_sits_on_http_only(path: Path) -> None:
    allowed = ("x15g.errors", "x15g.http", "x15g.cache", "x15g.cgi")
    assert not {name for name in imports_of(path) if name != "x15g" and not name.startswith(allowed)}


@pytest.mark.parametrize("path", modules("specweb") + modules("static"), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_responders_never_import_the_app_layer(path: Path) -> None:
    """specweb/ and static/ are mounted by app/ (app/build.py wires them), never the reverse."""
    assert not {name for name in imports_of(path) if name.startswith("x15g.app")}


@pytest.mark.parametrize("path", modules("static") + modules("specweb") + modules("app") + modules("cgi"), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_responders_never_import_the_server(path: Path) -> None:
    assert not {name for name in imports_of(path) if name.startswith("x15g.server")}


@pytest.mark.parametrize("path", [p for p in modules("") if p.name not in ("cli.py", "__main__.py")], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_imports_the_cli(path: Path) -> None:
    assert "x15g.cli" not in imports_of(path)


def test_monkey_patching_happens_only_in_the_entry_points() -> None:
    """The `x15g` command, and the isolated handler process (a program of its own)."""
    patched = [str(p.relative_to(PACKAGE)) for p in modules("") if "patch_all(" in p.read_text()]
    assert sorted(patched) == ["cli.py", "isolate/handler.py"]


@pytest.mark.parametrize("path", [p for p in modules("isolate") if p.name != "handler.py"], ids=lambda p: p.name)
def test_the_worker_side_of_isolation_never_imports_the_server(path: Path) -> None:
    """app/build.py imports the pool: it must stay below the server layer too."""
    assert not {name for name in imports_of(path) if name.startswith("x15g.server")}
