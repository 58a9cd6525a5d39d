"""`reconwatch serve`'s settings: a TOML file, then the command line; checked before anything starts."""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from reconwatch.errors import ConfigError, UsageError
from reconwatch.plan.limits import (
    DEFAULT_MEMORY,
    RULE_RUN_SECONDS,
    QueryLimits,
    parse_memory,
    parse_seconds,
)
from reconwatch.rules.datemath import parse_interval
from reconwatch.service.delivery import SinkSpec

DEFAULT_BIND = "127.0.0.1:9200"  # Elasticsearch's port: clients' default


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    data_dir: Path | None = None  # None: the user's data directory (store.default_data_dir)
    bind: str = DEFAULT_BIND
    api_key: str | None = None
    retention: timedelta = timedelta(days=7)
    max_body_bytes: int = 100 * 1024 * 1024
    queue_batches: int = 64
    rules: tuple[Path, ...] = ()
    # Files tailed into the store (--follow): NDJSON or audit logs, by the format registry.
    follow: tuple[Path, ...] = ()
    # --rule: built-ins, packs (recon) or rule files by name, besides the default built-ins.
    rule: tuple[str, ...] = ()
    builtin_rules: bool = True
    # alert sink targets: paths, - (stdout), registered URLs, with their retry settings
    sinks: tuple[SinkSpec, ...] = ()
    # rule_ids run in real time too ("*": every rule); None: the built-in scan rules and the
    # native detector rules.
    realtime: tuple[str, ...] | None = None
    # The store's DuckDB memory (every query and write on it) and each rule run's or ES|QL
    # request's time budget in seconds (None: none); --memory-limit, --timeout.
    memory_limit: str = DEFAULT_MEMORY
    query_timeout: float | None = RULE_RUN_SECONDS

    def query_limits(self) -> QueryLimits:
        return QueryLimits(self.memory_limit, self.query_timeout)


def load_config(path: Path) -> ServiceConfig:
    """The settings in `path`; ConfigError naming the file, the key and the reason."""
    name = str(path)
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(name, "<file>", exc.strerror or str(exc)) from None
    except UnicodeDecodeError:
        raise ConfigError(name, "<file>", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, "<file>", f"not TOML: {exc}") from None
    settings: dict[str, Any] = {}
    for key, value in doc.items():
        reader = _KEYS.get(key)
        if reader is None:
            known = ", ".join(sorted(_KEYS))
            raise ConfigError(name, key, f"unknown key (known: {known})")
        settings[key] = reader(name, key, value, path.parent)
    return ServiceConfig(**settings)


def _text(name: str, key: str, value: object, _base: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(name, key, f"expected a non-empty string, got {value!r}")
    return value


def _path(name: str, key: str, value: object, base: Path) -> Path:
    return base / Path(_text(name, key, value, base)).expanduser()


def _paths(name: str, key: str, value: object, base: Path) -> tuple[Path, ...]:
    if not isinstance(value, list):
        raise ConfigError(name, key, f"expected a list of directories, got {value!r}")
    return tuple(_path(name, key, v, base) for v in value)


def _targets(name: str, key: str, value: object, base: Path) -> tuple[SinkSpec, ...]:
    if not isinstance(value, list):
        raise ConfigError(name, key, f"expected a list of alert destinations, got {value!r}")
    return tuple(_sink(name, key, item, base) for item in value)


_SINK_KEYS = ("target", "max_attempts", "dead_letter")


def _sink(name: str, key: str, item: object, base: Path) -> SinkSpec:
    """A destination: its text, or a table {target, max_attempts, dead_letter}."""
    if not isinstance(item, dict):
        return SinkSpec(_target(name, key, item, base))
    unknown = sorted(set(item) - set(_SINK_KEYS))
    if unknown:
        raise ConfigError(
            name, f"{key}.{unknown[0]}", f"unknown key (known: {', '.join(_SINK_KEYS)})"
        )
    if "target" not in item:
        raise ConfigError(name, f"{key}.target", "missing: where the alerts go")
    attempts = item.get("max_attempts")
    letter = item.get("dead_letter")
    return SinkSpec(
        _target(name, f"{key}.target", item["target"], base),
        None if attempts is None else _positive(name, f"{key}.max_attempts", attempts, base),
        None if letter is None else _path(name, f"{key}.dead_letter", letter, base),
    )


def _target(name: str, key: str, item: object, base: Path) -> str:
    text = _text(name, key, item, base)
    # A plain relative path is relative to the config file, like data_dir and rules.
    plain = text != "-" and "://" not in text
    return str(base / Path(text).expanduser()) if plain else text


def _names(name: str, key: str, value: object, base: Path) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(name, key, f"expected a list of rule_ids, got {value!r}")
    return tuple(_text(name, key, item, base) for item in value)


def _files(name: str, key: str, value: object, base: Path) -> tuple[Path, ...]:
    if not isinstance(value, list):
        raise ConfigError(name, key, f"expected a list of files, got {value!r}")
    return tuple(_path(name, key, v, base) for v in value)


def _bool(name: str, key: str, value: object, _base: Path) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(name, key, f"expected true or false, got {value!r}")
    return value


def _positive(name: str, key: str, value: object, _base: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(name, key, f"expected a positive whole number, got {value!r}")
    return value


def _duration(name: str, key: str, value: object, base: Path) -> timedelta:
    text = _text(name, key, value, base)
    try:
        return parse_interval(text)
    except Exception:
        raise ConfigError(
            name, key, f"expected a duration such as 7d or 12h, got {text!r}"
        ) from None


def _memory(name: str, key: str, value: object, base: Path) -> str:
    text = _text(name, key, value, base)
    try:
        return parse_memory(text)
    except UsageError:
        raise ConfigError(
            name, key, f"expected a size such as 512MB or 2GB, got {text!r}"
        ) from None


def _seconds(name: str, key: str, value: object, _base: Path) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(name, key, f"expected a number of seconds (0: no budget), got {value!r}")
    return parse_seconds(float(value))


def _bind(name: str, key: str, value: object, base: Path) -> str:
    text = _text(name, key, value, base)
    try:
        split_bind(text)
    except UsageError as exc:
        raise ConfigError(name, key, str(exc)) from None
    return text


_KEYS: dict[str, Callable[[str, str, object, Path], Any]] = {
    "data_dir": _path,
    "bind": _bind,
    "api_key": _text,
    "retention": _duration,
    "max_body_bytes": _positive,
    "queue_batches": _positive,
    "rules": _paths,
    "follow": _files,
    "rule": _names,
    "builtin_rules": _bool,
    "sinks": _targets,
    "realtime": _names,
    "memory_limit": _memory,
    "query_timeout": _seconds,
}


def split_bind(text: str) -> tuple[str, int]:
    """ADDR:PORT (an IPv6 address in brackets) -> (address, port)."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        msg = f"expected ADDR:PORT such as 127.0.0.1:9200, got {text!r}"
        raise UsageError(msg)
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any address


def check_exposure(host: str, api_key: str | None) -> None:
    """Listening beyond this machine needs an API key: refuse to start without one."""
    if not is_loopback(host) and not api_key:
        msg = (
            f"--bind {host}: listening on an address other than loopback needs an API key "
            "(api_key in the --config file, or the RECONWATCH_API_KEY environment variable)"
        )
        raise UsageError(msg)
