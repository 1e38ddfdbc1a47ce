"""The settings registry: precedence, validation, and the documents derived from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from x15g.config import OPTIONS, build_parser, load_settings, sample_config

REPO = Path(__file__).resolve().parents[1]


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    conf = tmp_path / "x.conf"
    conf.write_text(f"root = {tmp_path}\nworkers = 3\nmax-connections = 7\nheader-timeout = 4\n")
    env = {"X15G_WORKERS": "5", "X15G_MAX_CONNECTIONS": "9"}
    settings, _ = load_settings(["-c", str(conf), "--workers", "2"], environ=env)
    assert settings.workers == 2  # flag wins over env and file
    assert settings.max_connections == 9  # env wins over file
    assert settings.header_timeout == 4.0  # file wins over default
    assert settings.keepalive_timeout == 15.0  # default


def test_switches_and_repeats(tmp_path: Path) -> None:
    settings, _ = load_settings(["--root", str(tmp_path), "--autoindex", "-b", "127.0.0.1:1", "-b", "unix:/tmp/x.sock"], environ={})
    assert settings.autoindex is True
    assert settings.bind == ("127.0.0.1:1", "unix:/tmp/x.sock")
    settings, _ = load_settings(["--root", str(tmp_path), "--autoindex", "off"], environ={"X15G_AUTOINDEX": "true"})
    assert settings.autoindex is False


@pytest.mark.parametrize("argv, message", [
    (["--workers", "abc"], "--workers"),
    (["--root", "/nonexistent/x15g"], "is not a directory"),
    (["--bind", "nohost"], "--bind"),
    (["--keepalive-timeout", "-1"], "--keepalive-timeout"),
    (["--log-level", "loud"], "--log-level"),
    (["--no-such-option"], "unrecognised"),
])
def test_bad_values_exit_2_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_settings(argv, environ={})
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_world_writable_root_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "open"
    root.mkdir()
    root.chmod(0o777)
    with pytest.raises(SystemExit):
        load_settings(["--root", str(root)], environ={})
    assert "world-writable" in capsys.readouterr().err
    settings, _ = load_settings(["--root", str(root), "--allow-world-writable-root"], environ={})
    assert settings.root == str(root)


def test_help_lists_every_option_with_env_and_default() -> None:
    text = build_parser().format_help()
    for option in OPTIONS:
        assert option.flag in text
        assert option.env in text
    assert "(default: 127.0.0.1:8000)" in text


def test_sample_config_is_complete_and_current() -> None:
    conf = (REPO / "config" / "x15g.conf").read_text()
    assert conf == sample_config(), "run python tools/gen_docs.py"
    for option in OPTIONS:
        assert f"# {option.file_key} =" in conf


def test_sample_config_parses_when_uncommented(tmp_path: Path) -> None:
    keys = {option.file_key for option in OPTIONS}
    lines = []
    for line in sample_config().splitlines():
        if line.startswith("# ") and " = " in line:
            key, _, value = line[2:].partition(" = ")
            if key in keys and value and value != "none" and key != "root":
                lines.append(f"{key} = {value}")
    conf = tmp_path / "full.conf"
    conf.write_text("\n".join(lines + [f"root = {tmp_path}"]) + "\n")
    settings, _ = load_settings(["-c", str(conf)], environ={})
    assert settings.bind == ("127.0.0.1:8000",)


def test_generated_docs_are_current() -> None:
    result = subprocess.run([sys.executable, str(REPO / "tools" / "gen_docs.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
