"""The one settings registry: every option declared once.

Each `Option` names its flag, `X15G_<NAME>` environment variable, config-file key, type/validator,
default and help. The configargparse parser, `config/x15g.conf` and the README option table are all
derived from `OPTIONS` (gunicorn's config registry plus waitress's single validated settings object,
architecture.md, principle 3). `load_settings` returns one frozen `Settings` passed down to every module; nothing
else reads the environment or the config file.

Precedence: command-line flag > environment > config file > default.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import configargparse

from x15g import __version__
from x15g.errors import ConfigError

DEFAULT_CONFIG_FILES = ["./x15g.conf", "/etc/x15g/x15g.conf"]


# --- validators: each turns one string into a value or raises ValueError with a clear message ---


def parse_bool(text: str | bool) -> bool:
    """`true/false/yes/no/on/off/1/0`, case-insensitive."""
    if isinstance(text, bool):
        return text
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"must be more than 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return value


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {text!r}")
        return value

    parse.__name__ = "one of " + "|".join(allowed)
    return parse


def bind_spec(text: str) -> str:
    """`HOST:PORT`, `[IPv6]:PORT`, `:PORT` or `unix:/path`; checked here, resolved by listeners."""
    text = text.strip()
    if text.startswith("unix:"):
        if len(text) <= 5:
            raise ValueError("unix: needs a path")
        return text
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"bind {text!r} must be HOST:PORT, [IPv6]:PORT or unix:/path")
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(f"bind {text!r}: unbalanced brackets")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bind {text!r}: port must be 0-65535")
    return text


def key_value(text: str) -> str:
    """`KEY=VALUE` (for repeated mapping options)."""
    if "=" not in text or text.startswith("="):
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    return text


def address_list(text: str | tuple) -> tuple[str, ...]:
    """Comma-separated IP addresses or CIDRs, or `*` for any; empty for none."""
    import ipaddress

    if isinstance(text, tuple):
        return text
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    for item in items:
        if item != "*":
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR") from None
    return items


def optional_str(text: str) -> str | None:
    text = text.strip()
    return text or None


# --- the registry ---


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: `name` is the attribute; the flag is `--name-with-dashes`."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    section: str
    short: str | None = None
    repeat: bool = False  # may be given several times; the value is a tuple
    switch: bool = False  # a boolean: `--flag` alone means true, `--flag false` turns it off
    cli_only: bool = False  # e.g. --config, --check-config: not a file/env key

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "X15G_" + self.name.upper()

    @property
    def file_key(self) -> str:
        return self.name.replace("_", "-")


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


KiB = 1024
MiB = 1024 * 1024

OPTIONS: tuple[Option, ...] = (
    # server
    Option("root", ".", str, "document root to serve", "server"),
    Option("bind", ("127.0.0.1:8000",), bind_spec, "HOST:PORT, [IPv6]:PORT or unix:/path to listen on; repeat for several", "server", short="-b", repeat=True),
    Option("workers", 0, non_negative_int, "worker processes; 0 means one per CPU", "server", short="-w"),
    Option("max_connections", 1000, positive_int, "connections one worker serves at once; when full it stops accepting (backpressure)", "server"),
    Option("backlog", 2048, positive_int, "listen(2) backlog", "server"),
    Option("max_accept", 32, positive_int, "connections a worker accepts per wake-up; low values balance several workers on one port", "server"),
    Option("reuse_port", True, parse_bool, "the master opens one SO_REUSEPORT listener per worker slot so the kernel balances (else one socket all workers share)", "server", switch=True),
    Option("loop", "libev", choice("libev", "libuv"), "gevent event loop", "server"),
    Option("threadpool_size", 8, positive_int, "threads per worker for blocking disk work (open, stat, cold reads, fsync)", "server"),
    Option("graceful_timeout", 30.0, non_negative_float, "seconds to finish in-flight requests on SIGTERM/SIGHUP before closing", "server"),
    Option("drain_idle_grace", 1.0, non_negative_float, "on SIGTERM/SIGHUP, seconds an idle keep-alive connection may still send one request (answered with Connection: close) before it is closed; 0 closes idle connections at once", "server"),
    Option("pid_file", None, optional_str, "write the master's PID to this file", "server"),
    Option("user", None, optional_str, "after binding, drop privileges to this user (when started as root)", "server"),
    Option("group", None, optional_str, "after binding, drop privileges to this group (when started as root)", "server"),
    Option("timeout", 30.0, non_negative_float, "watchdog: a worker whose event loop is held this many seconds by one request (CPU-bound app code) logs the request and exits, and the master replaces it; 0 disables", "server"),
    Option("max_requests", 0, non_negative_int, "a worker that has served this many requests drains and exits with status 0 so the master starts a fresh one (memory leaks in apps); 0 disables", "server"),
    Option("max_requests_jitter", 0, non_negative_int, "add a random 0..N to --max-requests per worker, so workers do not recycle at the same moment", "server"),
    Option("forwarded_allow_ips", ("127.0.0.1", "::1"), address_list, "peers (addresses or CIDRs, comma-separated; * for any) whose Forwarded / X-Forwarded-For / X-Forwarded-Proto / X-Request-ID headers are believed: they set the client address and scheme (access log, admin access, apps); others' are ignored", "server"),
    # protocol limits and timeouts
    Option("max_request_line", 8190, positive_int, "longest request line in bytes (longer: 414)", "limits"),
    Option("max_header_size", 64 * KiB, positive_int, "largest request head in bytes, request line included (larger: 431)", "limits"),
    Option("max_header_count", 100, positive_int, "most header fields in one request (more: 431)", "limits"),
    Option("max_field_size", 8190, positive_int, "longest single header field line in bytes (longer: 431)", "limits"),
    Option("max_body_size", 10 * MiB, non_negative_int, "largest request body in bytes (larger: 413)", "limits"),
    Option("header_timeout", 10.0, positive_float, "seconds for a whole request head to arrive (slowloris guard; then 408 and close)", "limits"),
    Option("keepalive_timeout", 15.0, non_negative_float, "seconds an idle keep-alive connection is kept; 0 disables keep-alive", "limits"),
    Option("body_timeout", 30.0, positive_float, "seconds without progress while reading a request body (then 408 and close)", "limits"),
    Option("send_timeout", 30.0, positive_float, "seconds without progress while sending to a client that stopped reading (then close)", "limits"),
    Option("max_keepalive_requests", 10000, positive_int, "requests served on one connection before it is closed", "limits"),
    # static files
    Option("index", "index.html", str, "file served for a directory URL", "static"),
    Option("autoindex", False, parse_bool, "list directories that have no index file", "static", switch=True),
    Option("follow_symlinks", False, parse_bool, "serve symlinks whose target stays inside the root", "static", switch=True),
    Option("dotfiles", False, parse_bool, "serve files and directories whose name starts with a dot", "static", switch=True),
    Option("mime_type", (), key_value, "extra MIME mapping EXT=TYPE (e.g. .md=text/markdown); repeat for several", "static", repeat=True),
    Option("default_type", "application/octet-stream", str, "Content-Type of files with an unknown extension", "static"),
    Option("precompressed", True, parse_bool, "serve FILE.br / FILE.gz beside FILE by Accept-Encoding", "static", switch=True),
    Option("cache_control", (), key_value, "Cache-Control by glob: PATTERN=VALUE (e.g. '*.css=max-age=3600'); first match wins; repeat", "static", repeat=True),
    Option("allow_world_writable_root", False, parse_bool, "serve a document root that any user may write to", "static", switch=True),
    # caches
    Option("cache_entries", 10000, positive_int, "paths kept in the open-file cache (LRU)", "cache"),
    Option("cache_memory", 64 * MiB, non_negative_int, "bytes of small file bodies kept in memory by the cache", "cache"),
    Option("cache_revalidate", 1.0, non_negative_float, "seconds between stat() revalidations of a cached path", "cache"),
    Option("ready_answers", 4096, non_negative_int, "requests repeating a head byte for byte, for a cached file, answered from ready bytes without parsing: heads kept (their bytes bounded by half of --cache-memory); 0 disables", "cache"),
    Option("small_file_size", 64 * KiB, non_negative_int, "files up to this size are kept in memory and sent with the head in one write; larger ones go by sendfile", "cache"),
    # logging
    Option("access_log", None, optional_str, "access log file, or - for stdout; off when unset", "logging"),
    Option("access_log_format", "combined", choice("combined", "json"), "access log format", "logging"),
    Option("error_log", "-", str, "error log file, or - for stderr", "logging"),
    Option("log_level", "info", choice("debug", "info", "warning", "error", "critical"), "error log level", "logging"),
    # admin endpoints
    Option("admin_prefix", "/-/", str, "URL prefix of health/status/metrics; empty disables them", "admin"),
    Option("admin_access", "loopback", choice("loopback", "any"), "who may use the admin endpoints", "admin"),
    # applications
    Option("wsgi", None, optional_str, "host a WSGI application MODULE:CALLABLE", "apps"),
    Option("wsgi_prefix", "/", str, "URL prefix where the WSGI application is mounted", "apps"),
    Option("cgi_dir", (), key_value, "run CGI/1.1 scripts: URLPREFIX=DIR; repeat for several", "apps", repeat=True),
    Option("cgi_timeout", 30.0, positive_float, "seconds a CGI script may run before it is killed", "apps"),
    # SPECweb99-like module
    Option("specweb", False, parse_bool, "enable the SPECweb99-like dynamic module at /specweb99 and /cgi-bin/specweb99", "specweb", switch=True),
    Option("specweb_state", None, optional_str, "state directory (User.Personality, Custom.Ads, post.log); default ROOT/../specweb_state", "specweb"),
    Option("specweb_urlroot", "/file_set/", str, "URL prefix of the file set", "specweb"),
    Option("post_log_sync", "record", choice("record", "none"), "fsync the post log before acknowledging each POST (record) or leave it to the OS (none)", "specweb"),
)

_BY_NAME = {option.name: option for option in OPTIONS}


def _settings_class() -> type:
    fields = [(o.name, Any, dataclasses.field(default=o.default)) for o in OPTIONS]
    fields.append(("config_file", Any, dataclasses.field(default=None)))
    cls = dataclasses.make_dataclass("Settings", fields, frozen=True, slots=True)
    cls.__doc__ = "The resolved configuration: one attribute per option in x15g.config.OPTIONS."
    cls.__module__ = __name__
    return cls


Settings = _settings_class()


class _OneLineErrorParser(configargparse.ArgumentParser):
    """argparse prints usage and a message; we print one clear line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"x15g: error: {message}\n")
        raise SystemExit(2)


def _typed(option: Option) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return option.parse(text)
        except (ValueError, TypeError) as exc:
            raise configargparse.ArgumentTypeError(f"{option.flag}: {exc}") from None

    convert.__name__ = getattr(option.parse, "__name__", "value")
    return convert


def _help_default(option: Option) -> str:
    if option.repeat:
        return ", ".join(option.default) if option.default else "none"
    if option.default is None:
        return "unset"
    if isinstance(option.default, tuple):  # a list-valued option given once, comma-separated
        return ",".join(option.default) or "none"
    if isinstance(option.default, bool):
        return "true" if option.default else "false"
    return str(option.default)


def build_parser(default_config_files: Sequence[str] = DEFAULT_CONFIG_FILES) -> configargparse.ArgumentParser:
    """The command-line/env/config-file parser, derived from `OPTIONS`."""
    parser = _OneLineErrorParser(
        prog="x15g",
        description="x15g: a fast user-space web server on gevent (static files, sendfile, SPECweb99-like workload).",
        default_config_files=list(default_config_files),
        config_file_parser_class=configargparse.DefaultConfigFileParser,
        args_for_setting_config_path=["-c", "--config"],
        config_arg_help_message="config file of `name = value` lines (default search: " + ", ".join(default_config_files) + ")",
        add_config_file_help=False,
        epilog="Every option is also an X15G_<NAME> environment variable and a `name = value` line of the "
               "config file. Precedence: flag > environment > config file > default. Manual: man x15g.",
    )
    parser.add_argument("--version", action="version", version=f"x15g {__version__}")
    parser.add_argument("--check-config", action="store_true", help="print the resolved configuration and exit (like nginx -t)")
    groups: dict[str, Any] = {}
    for option in OPTIONS:
        group = groups.get(option.section)
        if group is None:
            group = groups[option.section] = parser.add_argument_group(option.section)
        flags = [option.flag] + ([option.short] if option.short else [])
        kwargs: dict[str, Any] = dict(
            dest=option.name,
            env_var=option.env,
            type=_typed(option),
            help=f"{option.help} (default: {_help_default(option)})",
            default=None,
        )
        if option.repeat:
            kwargs["action"] = "append"
        elif option.switch:
            kwargs.update(nargs="?", const=True, metavar="BOOL")
        group.add_argument(*flags, **kwargs)
    return parser


def load_settings(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> tuple[Settings, bool]:
    """Parse argv/env/config file into frozen Settings; returns (settings, check_config).

    Raises SystemExit(2) with one line on any invalid value or unknown option.
    """
    parser = build_parser()
    env = os.environ if environ is None else environ
    namespace, unknown = parser.parse_known_args(args=argv, env_vars=env)
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")
    values: dict[str, Any] = {}
    for option in OPTIONS:
        value = getattr(namespace, option.name)
        if value is None:
            value = option.default
        elif option.repeat:
            value = tuple(value)
        values[option.name] = value
    values["config_file"] = getattr(namespace, "config", None)
    try:
        settings = finish(values)
    except ConfigError as exc:
        parser.error(str(exc))
    return settings, bool(namespace.check_config)


def finish(values: dict[str, Any]) -> Settings:
    """Cross-field checks and derived defaults; raises ConfigError with one clear sentence."""
    if values["workers"] == 0:
        values["workers"] = _cpu_count()
    root = os.path.abspath(values["root"])
    if not os.path.isdir(root):
        raise ConfigError(f"--root {values['root']!r} is not a directory")
    values["root"] = root
    if os.stat(root).st_mode & 0o002 and not values["allow_world_writable_root"]:
        raise ConfigError(f"--root {root!r} is world-writable; pass --allow-world-writable-root to serve it anyway")
    if values["specweb_state"] is None:
        values["specweb_state"] = os.path.join(os.path.dirname(root), "specweb_state")
    else:
        values["specweb_state"] = os.path.abspath(values["specweb_state"])
    if values["specweb"] and (values["specweb_state"] + os.sep).startswith(root + os.sep):
        raise ConfigError("--specweb-state must be outside the document root (it is never served)")
    prefix = values["admin_prefix"]
    if prefix and not (prefix.startswith("/") and prefix.endswith("/")):
        raise ConfigError(f"--admin-prefix {prefix!r} must start and end with /")
    if not values["specweb_urlroot"].startswith("/") or not values["specweb_urlroot"].endswith("/"):
        raise ConfigError("--specweb-urlroot must start and end with /")
    if not values["wsgi_prefix"].startswith("/"):
        raise ConfigError("--wsgi-prefix must start with /")
    if values["wsgi"] is not None and ":" not in values["wsgi"]:
        raise ConfigError(f"--wsgi {values['wsgi']!r} must be MODULE:CALLABLE")
    return Settings(**values)


def default_settings(**overrides: Any) -> Settings:
    """Settings with every default, for tests and tools; `root` must be given or `.` is used."""
    values = {o.name: o.default for o in OPTIONS}
    values["config_file"] = None
    values.update(overrides)
    return finish(values)


def describe(settings: Settings) -> str:
    """`name = value` lines of the resolved configuration (for --check-config)."""
    lines = []
    for option in OPTIONS:
        value = getattr(settings, option.name)
        if option.repeat:
            for item in value:
                lines.append(f"{option.file_key} = {item}")
            if not value:
                lines.append(f"# {option.file_key} =")
        else:
            lines.append(f"{option.file_key} = {'' if value is None else _format(value)}")
    return "\n".join(lines) + "\n"


def _format(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def sample_config() -> str:
    """The text of config/x15g.conf: every option, commented out, with its default and help."""
    out = [
        "# x15g sample configuration: every option, commented out, at its default.",
        "# Generated from x15g/config.py by `python -m tools.gen_docs`; a test keeps it complete.",
        "# Syntax: `name = value`. Precedence: command-line flag > X15G_<NAME> environment > this file > default.",
        "# Repeatable options take one line per value, or a list: name = [a, b].",
    ]
    section = None
    for option in OPTIONS:
        if option.section != section:
            section = option.section
            out += ["", f"## {section}"]
        out.append(f"# {option.help}  [env: {option.env}]")
        out.append(f"# {option.file_key} = {_help_default(option) if option.default is not None else ''}".rstrip())
    return "\n".join(out) + "\n"


def markdown_table() -> str:
    """The README option table."""
    rows = ["| option | environment | default | meaning |", "|---|---|---|---|"]
    for option in OPTIONS:
        default = _help_default(option).replace("|", "\\|")
        rows.append(f"| `{option.flag}` | `{option.env}` | `{default}` | {option.help.replace('|', '/')} |")
    return "\n".join(rows) + "\n"
