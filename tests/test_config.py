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


def _error_line(capsys: pytest.CaptureFixture, argv: list[str], environ: dict | None = None) -> str:
    with pytest.raises(SystemExit) as exit_info:
        load_settings(argv, environ=environ or {})
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_repeated_lines_of_a_repeatable_option_all_count_in_order(tmp_path: Path) -> None:
    conf = tmp_path / "x.conf"
    conf.write_text(f"root = {tmp_path}\nbind = 127.0.0.1:1\nbind = 127.0.0.1:2\n"
                    "cache-control = *.css=max-age=60\ncache-control = [\"a=b, c\", \"d=e\"]\ncache-control = *=no-cache\n")
    settings, _ = load_settings(["-c", str(conf)], environ={})
    assert settings.bind == ("127.0.0.1:1", "127.0.0.1:2")
    assert settings.cache_control == ("*.css=max-age=60", "a=b, c", "d=e", "*=no-cache")
    assert settings.sources["bind"] == f"{conf}:2" or settings.sources["bind"] == f"{conf}:3"


@pytest.mark.parametrize("text, message", [
    ("workers = 2\nworkers = 3\n", ":2: workers is already set on line 1"),
    ("workrs = 2\n", ":1: unknown option 'workrs'"),
    ("max-body-size = 12X\n", ":1: max-body-size: expected a size"),
    ("header-timeout = soon\n", ":1: header-timeout: expected a duration"),
    ("root = /nonexistent/x15g\n", ":1: --root '/nonexistent/x15g' is not a directory"),
])
def test_config_file_errors_name_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture, text: str, message: str) -> None:
    conf = tmp_path / "x.conf"
    conf.write_text(text)
    argv = ["-c", str(conf)] + ([] if text.startswith("root") else ["--root", str(tmp_path)])
    err = _error_line(capsys, argv)
    assert f"{conf}{message}" in err


def test_environment_and_argument_errors_name_their_source(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    err = _error_line(capsys, ["--root", str(tmp_path)], {"X15G_WORKERS": "many"})
    assert "environment X15G_WORKERS='many'" in err
    err = _error_line(capsys, [], {"X15G_ROOT": "/nonexistent/x15g"})
    assert "environment X15G_ROOT: --root '/nonexistent/x15g' is not a directory" in err
    err = _error_line(capsys, ["--root", "/nonexistent/x15g"])
    assert "argument --root: --root '/nonexistent/x15g' is not a directory" in err


@pytest.mark.parametrize("flag, text, value", [
    ("--cache-memory", "64M", 64 << 20), ("--cache-memory", "8k", 8192), ("--max-body-size", "1G", 1 << 30),
    ("--max-body-size", "4096", 4096), ("--graceful-timeout", "30s", 30.0), ("--graceful-timeout", "500ms", 0.5),
    ("--keepalive-timeout", "5m", 300.0), ("--cgi-timeout", "1h", 3600.0), ("--header-timeout", "2.5", 2.5),
])
def test_sizes_and_durations_take_units(tmp_path: Path, flag: str, text: str, value: float) -> None:
    settings, _ = load_settings(["--root", str(tmp_path), flag, text], environ={})
    assert getattr(settings, flag[2:].replace("-", "_")) == value


def test_help_lists_the_allowed_values_of_choices() -> None:
    text = build_parser().format_help()
    assert "one of: libev, libuv" in " ".join(text.split())
    assert "one of: debug, info, warning, error, critical" in " ".join(text.split())


def test_check_config_output_reads_back_as_the_same_settings(tmp_path: Path) -> None:
    from x15g.config import describe

    conf = tmp_path / "x.conf"
    conf.write_text((REPO / "config" / "production.conf").read_text())
    argv = ["-c", str(conf), "--root", str(tmp_path), "--user", "", "--group", "", "--pid-file", ""]
    settings, _ = load_settings(argv, environ={})
    printed = describe(settings)
    again = tmp_path / "again.conf"
    again.write_text(printed)
    reread, _ = load_settings(["-c", str(again)], environ={})
    assert describe(reread) == printed
    assert len(reread.cache_control) == 3 and reread == settings
