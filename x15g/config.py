"""The one settings registry: every option declared once.

Each `Option` names its flag, `X15G_<NAME>` environment variable, config-file key, type/validator,
default and help. The configargparse parser, `config/x15g.conf` and the README option table are all
derived from `OPTIONS` (gunicorn's config registry plus waitress's single validated settings object,
architecture.md, principle 3). `load_settings` returns one frozen `Settings` passed down to every module; nothing
else reads the environment or the config file.

Precedence: command-line flag > environment > config file > default.

Config files: `name = value` lines (configargparse's syntax). A key given twice is an error naming
both lines, unless its option takes several values: then every line counts, in order (a `[a, b]`
list counts as its elements). Every error names where the bad value came from: the command line
(`argument --flag`), an `X15G_*` variable, or `file:line`. Sizes take K/M/G, durations ms/s/m/h.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Sequence

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


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {text!r}")
        return value

    parse.__name__ = "one of " + "|".join(allowed)
    parse.allowed = allowed  # type: ignore[attr-defined]  # listed by --help and the docs
    return parse


_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
_DURATION_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}


def size(minimum: int) -> Callable[[str], int]:
    """Bytes: a whole number, optionally with K, M or G (powers of 1024): `64M`, `8k`, `1048576`."""
    def parse(text: str) -> int:
        value = str(text).strip()
        number, unit = _split_unit(value)
        if unit.lower() not in _SIZE_UNITS or not number.isdigit():
            raise ValueError(f"expected a size in bytes such as 65536, 64K, 64M or 1G, got {text!r}")
        result = int(number) * _SIZE_UNITS[unit.lower()]
        if result < minimum:
            raise ValueError(f"must be at least {minimum}, got {text!r}")
        return result

    parse.__name__ = "size"
    return parse


def duration(minimum: float, inclusive: bool = True) -> Callable[[str], float]:
    """Seconds: a number, optionally with ms, s, m or h: `500ms`, `30s`, `5m`, `1h`, `2.5`."""
    def parse(text: str) -> float:
        value = str(text).strip()
        number, unit = _split_unit(value)
        try:
            result = float(number) * _DURATION_UNITS[unit.lower()]
        except (KeyError, ValueError):
            raise ValueError(f"expected a duration such as 30, 30s, 500ms, 5m or 1h, got {text!r}") from None
        if not (result >= minimum if inclusive else result > minimum):
            raise ValueError(f"must be {'at least' if inclusive else 'more than'} {minimum:g} s, got {text!r}")
        return result

    parse.__name__ = "duration"
    return parse


def _split_unit(text: str) -> tuple[str, str]:
    """`"64M"` -> ("64", "M"); `"1.5s"` -> ("1.5", "s")."""
    end = len(text)
    while end and text[end - 1].isalpha():
        end -= 1
    return text[:end].strip(), text[end:]


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


def name_list(text: str | tuple) -> tuple[str, ...]:
    """Comma-separated environment variable names, or `*` for all; empty or `none` for none."""
    if isinstance(text, tuple):
        return text
    if text.strip() == "none":  # what --help and the sample configuration show for the default
        return ()
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    for item in items:
        if item != "*" and not (item.replace("_", "a").isalnum() and item.isascii() and not item[0].isdigit()):
            raise ValueError(f"{item!r} is not an environment variable name")
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
    Option("graceful_timeout", 30.0, duration(0), "seconds to finish in-flight requests on SIGTERM/SIGHUP before closing", "server"),
    Option("drain_idle_grace", 1.0, duration(0), "on SIGTERM/SIGHUP, seconds an idle keep-alive connection may still send one request (answered with Connection: close) before it is closed; 0 closes idle connections at once", "server"),
    Option("pid_file", None, optional_str, "write the master's PID to this file", "server"),
    Option("user", None, optional_str, "after binding, drop privileges to this user (when started as root)", "server"),
    Option("group", None, optional_str, "after binding, drop privileges to this group (when started as root)", "server"),
    Option("timeout", 30.0, duration(0), "watchdog: a worker whose event loop is held this many seconds by one request (CPU-bound app code) logs the request and exits, and the master replaces it; 0 disables", "server"),
    Option("max_requests", 0, non_negative_int, "a worker that has served this many requests drains and exits with status 0 so the master starts a fresh one (memory leaks in apps); 0 disables", "server"),
    Option("max_requests_jitter", 0, non_negative_int, "add a random 0..N to --max-requests per worker, so workers do not recycle at the same moment", "server"),
    Option("forwarded_allow_ips", ("127.0.0.1", "::1"), address_list, "peers (addresses or CIDRs, comma-separated; * for any) whose Forwarded / X-Forwarded-For / X-Forwarded-Proto / X-Request-ID headers are believed: they set the client address and scheme (access log, admin access, apps); others' are ignored", "server"),
    # protocol limits and timeouts
    Option("max_request_line", 8190, size(1), "longest request line in bytes (longer: 414)", "limits"),
    Option("max_header_size", 64 * KiB, size(1), "largest request head in bytes, request line included (larger: 431)", "limits"),
    Option("max_header_count", 100, positive_int, "most header fields in one request (more: 431)", "limits"),
    Option("max_field_size", 8190, size(1), "longest single header field line in bytes (longer: 431)", "limits"),
    Option("max_body_size", 10 * MiB, size(0), "largest request body in bytes (larger: 413)", "limits"),
    Option("header_timeout", 10.0, duration(0, inclusive=False), "seconds for a whole request head to arrive (slowloris guard; then 408 and close)", "limits"),
    Option("keepalive_timeout", 15.0, duration(0), "seconds an idle keep-alive connection is kept; 0 disables keep-alive", "limits"),
    Option("body_timeout", 30.0, duration(0, inclusive=False), "seconds without progress while reading a request body (then 408 and close)", "limits"),
    Option("send_timeout", 30.0, duration(0, inclusive=False), "seconds without progress while sending to a client that stopped reading (then close)", "limits"),
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
    Option("cache_memory", 64 * MiB, size(0), "bytes of small file bodies kept in memory by the cache", "cache"),
    Option("cache_revalidate", 1.0, duration(0), "seconds between stat() revalidations of a cached path", "cache"),
    Option("ready_answers", 4096, non_negative_int, "requests for a cached file whose head was answered before, byte for byte or in the fields that select the answer (method, path, version, Connection, Accept-Encoding, Range, If-*), answered from ready bytes without routing: keys kept (their bytes bounded by half of --cache-memory); 0 disables", "cache"),
    Option("small_file_size", 8 * KiB, size(0), "files up to this size are kept in memory and sent with the head in one write; larger ones go by sendfile (python -m tools.body_sizes measures where memory stops paying)", "cache"),
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
    Option("cgi_timeout", 30.0, duration(0, inclusive=False), "seconds a CGI script may run before it is killed", "apps"),
    # isolated handlers
    Option("isolate", False, parse_bool, "run the WSGI app and the SPECweb99-like dynamic module in sandboxed handler processes, each given the client socket by fd", "isolate", switch=True),
    Option("isolate_user", "nobody", str, "user the handler processes run as (name or uid)", "isolate"),
    Option("isolate_group", "nogroup", str, "group the handler processes run as (name or gid)", "isolate"),
    Option("isolate_procs", 2, positive_int, "handler processes per worker", "isolate"),
    Option("isolate_timeout", 30.0, duration(0, inclusive=False), "seconds a handler may take to answer; then it is killed and the request gets 504", "isolate"),
    Option("isolate_hold", 0.1, duration(0), "seconds a handler keeps a keep-alive connection quiet after its answer, to answer the next request itself if it is its own, before it gives the connection back to the worker; 0 gives it back after every answer", "isolate"),
    Option("isolate_env", (), name_list, "environment variables of the server's that the handler processes get too (comma-separated names, * for all); else they get only PATH, LANG, LC_ALL, LC_CTYPE, TZ and PYTHONPATH, PYTHONHOME", "isolate"),
    Option("isolate_memory", 1024 * MiB, size(0), "address-space limit of one handler process in bytes (RLIMIT_AS); 0 leaves it unlimited", "isolate"),
    Option("isolate_require_sandbox", False, parse_bool, "refuse to start when the kernel lacks Landlock or seccomp (else a warning says what is not enforced)", "isolate", switch=True),
    # SPECweb99-like module
    Option("specweb", False, parse_bool, "enable the SPECweb99-like dynamic module at /specweb99 and /cgi-bin/specweb99", "specweb", switch=True),
    Option("specweb_state", None, optional_str, "state directory (User.Personality, Custom.Ads, post.log); default ROOT/../specweb_state", "specweb"),
    Option("specweb_urlroot", "/file_set/", str, "URL prefix of the file set", "specweb"),
    Option("post_log_sync", "record", choice("record", "none"), "fsync the post log before acknowledging each POST (record) or leave it to the OS (none)", "specweb"),
)

_BY_NAME = {option.name: option for option in OPTIONS}
_BY_FILE_KEY = {option.file_key: option for option in OPTIONS}
_FLAGS = {flag: o.name for o in OPTIONS for flag in (o.flag, o.short) if flag}


def _settings_class() -> type:
    fields = [(o.name, Any, dataclasses.field(default=o.default)) for o in OPTIONS]
    fields.append(("config_file", Any, dataclasses.field(default=None)))
    # option name -> where its value came from ("argument --x", "X15G_X", "file:line"); unset: default
    fields.append(("sources", Any, dataclasses.field(default_factory=dict, compare=False)))
    cls = dataclasses.make_dataclass("Settings", fields, frozen=True, slots=True)
    cls.__doc__ = "The resolved configuration: one attribute per option in x15g.config.OPTIONS."
    cls.__module__ = __name__
    return cls


Settings = _settings_class()


class OptionError(ConfigError):
    """A bad value of one option; `load_settings` prefixes where the value came from."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def source_of(settings: Any, name: str) -> str:
    """Where option `name` of `settings` came from, e.g. `/etc/x15g/x15g.conf:12` or `default`."""
    return settings.sources.get(name, "default")


def explain(error: ConfigError, sources: dict[str, str]) -> str:
    """The one line printed for a configuration error: its source first."""
    if isinstance(error, OptionError):
        return f"{sources.get(error.name, 'default ' + _BY_NAME[error.name].flag)}: {error}"
    return str(error)


_LINE = re.compile(  # configargparse's DefaultConfigFileParser line syntax
    r"^(?P<key>[^:=;#\s]+)\s*"
    r"(?:(?P<equal>[:=\s])\s*(['\"]?)(?P<value>.+?)?\3)?"
    r"\s*(?:\s[;#]\s*(?P<comment>.*?)\s*)?$")


def read_config_file(path: str, text: str) -> list[tuple[Option, str, int]]:
    """(option, value text, line number) for every setting line of a config file, each value
    validated; raises ConfigError naming `path:line` for an unknown key, a bad value, or a
    single-valued key given twice. A repeatable option's lines (and `[a, b]` lists) each count."""
    items: list[tuple[Option, str, int]] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#;[" or line.startswith("---"):
            continue
        where = f"{path}:{number}"
        match = _LINE.match(line)
        if not match:
            raise ConfigError(f"{where}: cannot read {line!r}; expected `name = value`")
        key = match.group("key").lstrip("-")
        option = _BY_FILE_KEY.get(key)
        if option is None or option.cli_only:
            raise ConfigError(f"{where}: unknown option {key!r}")
        value = match.group("value")
        if value is None:
            value = "" if match.group("equal") not in (None, " ") else "true"
        values = [value]
        if option.repeat and value.startswith("[") and value.endswith("]"):
            try:
                values = [str(v) for v in json.loads(value)]
            except ValueError:
                values = [v.strip() for v in value[1:-1].split(",")]
        elif not option.repeat and key in first_line:
            raise ConfigError(f"{where}: {key} is already set on line {first_line[key]} "
                              f"(only options that take several values may repeat)")
        first_line.setdefault(key, number)
        for item in values:
            try:
                option.parse(item)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{where}: {key}: {exc}") from None
            items.append((option, item, number))
    return items


class _LineConfigParser(configargparse.ConfigFileParser):
    """configargparse's file hook: our reader, so repeated lines of repeatable options all count."""

    def get_syntax_description(self) -> str:
        return "`name = value` lines; repeatable options take one line per value"

    def parse(self, stream: Any) -> dict[str, Any]:
        items: dict[str, Any] = {}
        try:
            lines = read_config_file(getattr(stream, "name", "config"), stream.read())
        except ConfigError as exc:
            raise configargparse.ConfigFileParserException(str(exc)) from None
        for option, value, _ in lines:
            if option.repeat:
                items.setdefault(option.file_key, []).append(value)
            else:
                items[option.file_key] = value
        return items


class _OneLineErrorParser(configargparse.ArgumentParser):
    """argparse prints usage and a message; we print one clear line and exit 2."""

    def error(self, message: str) -> NoReturn:
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


def _help_values(option: Option) -> str:
    """`one of: a, b; ` for choice options, what a size or duration accepts, else ''."""
    allowed = getattr(option.parse, "allowed", None)
    if allowed:
        return "one of: " + ", ".join(allowed) + "; "
    kind = getattr(option.parse, "__name__", "")
    if kind == "size":
        return "bytes, or with K/M/G; "
    if kind == "duration":
        return "seconds, or with ms/s/m/h; "
    return ""


def build_parser(default_config_files: Sequence[str] = DEFAULT_CONFIG_FILES) -> configargparse.ArgumentParser:
    """The command-line/env/config-file parser, derived from `OPTIONS`."""
    parser = _OneLineErrorParser(
        prog="x15g",
        description="x15g: a fast user-space web server on gevent (static files, sendfile, SPECweb99-like workload).",
        default_config_files=list(default_config_files),
        config_file_parser_class=_LineConfigParser,
        args_for_setting_config_path=["-c", "--config"],
        config_arg_help_message="config file of `name = value` lines (default search: " + ", ".join(default_config_files) + ")",
        add_config_file_help=False,
        epilog="Every option is also an X15G_<NAME> environment variable and a `name = value` line of the "
               "config file. Precedence: flag > environment > config file > default. Manual: man x15g.",
    )
    parser.add_argument("--version", action="version", version=f"x15g {__version__}")
    parser.add_argument("--check-config", action="store_true",
                        help="run every start-up check short of binding (users, application import, paths, "
                             "log files writable by the worker user), print the resolved configuration as a "
                             "config file and exit: 0 when a start would succeed, 2 otherwise (like nginx -t)")
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
            help=f"{option.help} ({_help_values(option)}default: {_help_default(option)})",
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

    Raises SystemExit(2) with one line, naming where the bad value came from, on any invalid value
    or unknown option.
    """
    parser = build_parser()
    env = os.environ if environ is None else environ
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _check_environment(env)
    except ConfigError as exc:
        parser.error(str(exc))
    namespace, unknown = parser.parse_known_args(args=argv, env_vars=env)
    if unknown:
        parser.error(f"unrecognised arguments on the command line: {' '.join(unknown)}")
    values: dict[str, Any] = {}
    for option in OPTIONS:
        value = getattr(namespace, option.name)
        if value is None:
            value = option.default
        elif option.repeat:
            value = tuple(value)
        values[option.name] = value
    values["config_file"] = getattr(namespace, "config", None)
    values["sources"] = _sources(parser, argv, env)
    try:
        settings = finish(values)
    except ConfigError as exc:
        parser.error(explain(exc, values["sources"]))
    return settings, bool(namespace.check_config)


def _check_environment(env: Any) -> None:
    """Validate every `X15G_*` value here, so an error names the variable (argparse would name
    the flag configargparse turned it into)."""
    for option in OPTIONS:
        text = env.get(option.env)
        if text is None or option.cli_only:
            continue
        items = [text]
        if option.repeat and text.startswith("[") and text.endswith("]"):
            items = [v.strip() for v in text[1:-1].split(",")]
        for item in items:
            try:
                option.parse(item)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"environment {option.env}={text!r}: {exc}") from None


def _sources(parser: Any, argv: list[str], env: Any) -> dict[str, str]:
    """Option name -> where its value came from, by precedence: command line, environment, file."""
    sources: dict[str, str] = {}
    files = [key.split("|", 1)[1] for key in getattr(parser, "_source_to_settings", {}) if key.startswith("config_file|")]
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                lines = read_config_file(path, f.read())
        except (OSError, ConfigError):
            continue
        for option, _, number in lines:
            sources.setdefault(option.name, f"{path}:{number}")
    for option in OPTIONS:
        if option.env in env:
            sources[option.name] = f"environment {option.env}"
    for token in argv:
        name = _FLAGS.get(token.split("=", 1)[0])
        if name is not None:
            sources[name] = f"argument {_BY_NAME[name].flag}"
    return sources


def finish(values: dict[str, Any]) -> Settings:
    """Cross-field checks and derived defaults; raises OptionError (naming the option) with one clear sentence."""
    if values["workers"] == 0:
        values["workers"] = _cpu_count()
    root = os.path.abspath(values["root"])
    if not os.path.isdir(root):
        raise OptionError("root", f"--root {values['root']!r} is not a directory")
    values["root"] = root
    if os.stat(root).st_mode & 0o002 and not values["allow_world_writable_root"]:
        raise OptionError("root", f"--root {root!r} is world-writable; pass --allow-world-writable-root to serve it anyway")
    if values["specweb_state"] is None:
        values["specweb_state"] = os.path.join(os.path.dirname(root), "specweb_state")
    else:
        values["specweb_state"] = os.path.abspath(values["specweb_state"])
    if values["specweb"] and (values["specweb_state"] + os.sep).startswith(root + os.sep):
        raise OptionError("specweb_state", "--specweb-state must be outside the document root (it is never served)")
    prefix = values["admin_prefix"]
    if prefix and not (prefix.startswith("/") and prefix.endswith("/")):
        raise OptionError("admin_prefix", f"--admin-prefix {prefix!r} must start and end with /")
    if not values["specweb_urlroot"].startswith("/") or not values["specweb_urlroot"].endswith("/"):
        raise OptionError("specweb_urlroot", "--specweb-urlroot must start and end with /")
    if not values["wsgi_prefix"].startswith("/"):
        raise OptionError("wsgi_prefix", "--wsgi-prefix must start with /")
    if values["wsgi"] is not None and ":" not in values["wsgi"]:
        raise OptionError("wsgi", f"--wsgi {values['wsgi']!r} must be MODULE:CALLABLE")
    if values["isolate"] and not (values["wsgi"] or values["specweb"]):
        raise OptionError("isolate", "--isolate has nothing to isolate: it needs --wsgi or --specweb")
    return Settings(**values)


def default_settings(**overrides: Any) -> Settings:
    """Settings with every default, for tests and tools; `root` must be given or `.` is used."""
    values = {o.name: o.default for o in OPTIONS}
    values["config_file"] = None
    values["sources"] = {}
    values.update(overrides)
    return finish(values)


def describe(settings: Settings) -> str:
    """The resolved configuration as a config file (for --check-config): read back with
    `--config`, it gives the same settings. Repeatable options get one line per value."""
    lines = ["# x15g configuration as resolved by --check-config"]
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
