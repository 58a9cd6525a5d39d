"""Python functions registered on the DuckDB connection where SQL has no exact equivalent (IPs, dates)."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from urllib.parse import quote_plus

import duckdb

from reconwatch.plan import values


def ip_key(text: str) -> bytes | None:
    try:
        return values.ip_bytes(text)
    except ValueError:
        return None


def ip_canon(text: str) -> str | None:
    try:
        return values.canonical_ip(text)
    except values.ConversionError:
        return None


def cidr(ip: str, blocks: list[str]) -> bool | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    for block in blocks:
        if block is None:
            continue
        try:
            net = ipaddress.ip_network(block.strip(), strict=False)
        except ValueError:
            continue
        if addr.version == net.version and addr in net:
            return True
    return False


def parse_date(text: str) -> datetime | None:
    try:
        return values.parse_datetime(text).replace(tzinfo=None)
    except values.ConversionError:
        return None


def double_text(value: float) -> str:
    return values.java_double(value)


def url_encode(text: str) -> str:
    return quote_plus(text, safe="*-._")


def url_encode_component(text: str) -> str:
    return quote_plus(text, safe="*-._").replace("+", "%20")


def ip_prefix(ip: str, v4: int, v6: int) -> str | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    length = v4 if addr.version == 4 else v6
    if not 0 <= length <= addr.max_prefixlen:
        return None
    return str(ipaddress.ip_network(f"{addr}/{length}", strict=False).network_address)


def register(con: duckdb.DuckDBPyConnection) -> None:
    """Make the rw_* helpers callable from SQL on this connection."""
    v, b, ts, d = "VARCHAR", "BLOB", "TIMESTAMP", "DOUBLE"
    con.create_function("rw_ip_key", ip_key, [v], b, side_effects=False)
    con.create_function("rw_ip_canon", ip_canon, [v], v, side_effects=False)
    con.create_function("rw_cidr", cidr, [v, "VARCHAR[]"], "BOOLEAN", side_effects=False)
    con.create_function("rw_parse_date", parse_date, [v], ts, side_effects=False)
    con.create_function("rw_double_text", double_text, [d], v, side_effects=False)
    con.create_function("rw_url_encode", url_encode, [v], v, side_effects=False)
    con.create_function("rw_url_encode_component", url_encode_component, [v], v, side_effects=False)
    con.create_function("rw_ip_prefix", ip_prefix, [v, "INTEGER", "INTEGER"], v, side_effects=False)
