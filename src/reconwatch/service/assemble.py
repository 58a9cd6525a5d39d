"""Putting a service together from its settings: store, rules, schedule, HTTP application."""

from __future__ import annotations

import functools
import socket
from collections.abc import Mapping
from dataclasses import replace

from reconwatch.errors import ReconwatchError
from reconwatch.service.app import Limits, Service, open_service
from reconwatch.service.config import ServiceConfig, check_exposure, split_bind
from reconwatch.service.delivery import Delivery
from reconwatch.service.follow import FileFeed
from reconwatch.service.realtime import RealTime, enabled_rules
from reconwatch.service.rules import RuleReloader, RuleSet, load_rules
from reconwatch.service.scheduler import Clock, Scheduler
from reconwatch.store import Store, default_data_dir

API_KEY_ENV = "RECONWATCH_API_KEY"


class ListenError(ReconwatchError):
    """The address to serve on cannot be bound (in use, not this machine's, not allowed)."""


def settle(config: ServiceConfig, environ: Mapping[str, str]) -> ServiceConfig:
    """The settings with the environment's API key and the default data directory filled in;
    UsageError when they expose the service without a key."""
    key = config.api_key or environ.get(API_KEY_ENV) or None
    data_dir = config.data_dir or default_data_dir(environ)
    config = replace(config, api_key=key, data_dir=data_dir)
    host, _ = split_bind(config.bind)
    check_exposure(host, config.api_key)
    return config


def build(config: ServiceConfig, clock: Clock) -> Service:
    """The store opened, the rules loaded (refused files kept for the report), the schedule."""
    assert config.data_dir is not None  # settle() filled it in
    store = Store(config.data_dir, clock, config.retention, memory_limit=config.memory_limit)
    query_limits = config.query_limits()
    loaded = load_rules(list(config.rules), builtin=config.builtin_rules, specs=config.rule)
    scheduler = Scheduler(store, list(loaded.rules.values()), clock, query_limits=query_limits)
    limits = Limits(config.max_body_bytes, config.queue_batches)
    try:
        delivery = Delivery.open(store, config.sinks, loaded.rules) if config.sinks else None
        realtime = RealTime(
            store,
            loaded.rules,
            max_batches=config.queue_batches,
            natives=scheduler.natives,
            query_limits=query_limits,
        )
        failures = list(loaded.failures)
        chosen = enabled_rules(loaded.rules, loaded.realtime_default(), config.realtime)
        # What an operator set per rule (the rules API) wins over the configuration.
        for rule_id, setting in store.rule_settings().items():
            if setting.realtime is not None and rule_id in loaded.rules:
                chosen = [r for r in chosen if r != rule_id] + (
                    [rule_id] if setting.realtime else []
                )
        disabled = {r for r, setting in store.rule_settings().items() if setting.enabled is False}
        for rule_id in chosen:
            if rule_id in disabled:  # a disabled rule runs neither on schedule nor in real time
                continue
            try:
                realtime.enable(rule_id)
            except ReconwatchError as exc:
                failures.append(f"{loaded.rules[rule_id].label}: not run in real time: {exc}")
        for rule in loaded.rules.values():
            if rule.native:  # its saved state read now: one that cannot be used is reported
                scheduler.natives.get(rule)
        failures.extend(scheduler.natives.errors())
    except BaseException:
        store.close()
        raise
    service = open_service(store, limits, config.api_key, scheduler, failures, delivery, realtime)
    service.query_limits = query_limits
    service.reloader = RuleReloader(
        list(config.rules), builtin=config.builtin_rules, specs=config.rule
    )
    service.realtime_choice = functools.partial(_realtime_choice, config.realtime)
    if config.follow:
        try:
            service.feed = FileFeed(store, service.writer, list(config.follow))
        except BaseException:
            service.close()
            raise
    return service


def _realtime_choice(chosen: tuple[str, ...] | None, loaded: RuleSet) -> list[str]:
    return enabled_rules(loaded.rules, loaded.realtime_default(), chosen)


def listen(bind: str) -> socket.socket:
    """A listening socket on ADDR:PORT (port 0: one the kernel chooses)."""
    host, port = split_bind(bind)
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:
        msg = f"cannot listen on {bind}: {exc.strerror or exc}"
        raise ListenError(msg) from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        msg = f"cannot listen on {bind}: {exc.strerror or exc}"
        raise ListenError(msg) from None
    return sock
