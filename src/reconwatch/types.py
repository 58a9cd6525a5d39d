"""Data types every layer shares (ES|QL's names): their spellings in csv-spec headers, mappings and casts, and the numeric widening order."""

from __future__ import annotations

from enum import StrEnum


class DataType(StrEnum):
    """The ES|QL types reconwatch knows; values are Elasticsearch's names."""

    KEYWORD = "keyword"
    TEXT = "text"
    LONG = "long"
    INTEGER = "integer"
    UNSIGNED_LONG = "unsigned_long"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    DATETIME = "datetime"  # Elasticsearch's `date`; ES|QL prints it as `datetime` or `date`
    DATE_NANOS = "date_nanos"
    IP = "ip"
    VERSION = "version"
    NULL = "null"
    DATE_PERIOD = "date_period"
    TIME_DURATION = "time_duration"
    GEO_POINT = "geo_point"
    UNSUPPORTED = "unsupported"

    @property
    def is_numeric(self) -> bool:
        return self in NUMERIC

    @property
    def is_string(self) -> bool:
        return self in (DataType.KEYWORD, DataType.TEXT)

    @property
    def is_temporal_amount(self) -> bool:
        return self in (DataType.DATE_PERIOD, DataType.TIME_DURATION)


NUMERIC = (DataType.INTEGER, DataType.LONG, DataType.UNSIGNED_LONG, DataType.DOUBLE)

# Every spelling seen in csv-spec headers, mappings and `::` casts.
_ALIASES: dict[str, DataType] = {
    "keyword": DataType.KEYWORD,
    "k": DataType.KEYWORD,
    "s": DataType.KEYWORD,
    "string": DataType.KEYWORD,
    "text": DataType.TEXT,
    "wildcard": DataType.KEYWORD,
    "constant_keyword": DataType.KEYWORD,
    "match_only_text": DataType.TEXT,
    "long": DataType.LONG,
    "l": DataType.LONG,
    "integer": DataType.INTEGER,
    "int": DataType.INTEGER,
    "i": DataType.INTEGER,
    "short": DataType.INTEGER,
    "byte": DataType.INTEGER,
    "unsigned_long": DataType.UNSIGNED_LONG,
    "ul": DataType.UNSIGNED_LONG,
    "double": DataType.DOUBLE,
    "d": DataType.DOUBLE,
    "float": DataType.DOUBLE,
    "half_float": DataType.DOUBLE,
    "scaled_float": DataType.DOUBLE,
    "boolean": DataType.BOOLEAN,
    "bool": DataType.BOOLEAN,
    "date": DataType.DATETIME,
    "datetime": DataType.DATETIME,
    "dt": DataType.DATETIME,
    "date_nanos": DataType.DATE_NANOS,
    "ip": DataType.IP,
    "version": DataType.VERSION,
    "v": DataType.VERSION,
    "null": DataType.NULL,
    "date_period": DataType.DATE_PERIOD,
    "time_duration": DataType.TIME_DURATION,
    "geo_point": DataType.GEO_POINT,
}


def parse_type(name: str) -> DataType | None:
    """The DataType a spelling stands for (case- and space-insensitive), or None if unknown."""
    return _ALIASES.get(name.strip().lower())


def widen(a: DataType, b: DataType) -> DataType:
    """The result type of arithmetic on two numeric types (integer < long < double)."""
    if DataType.DOUBLE in (a, b):
        return DataType.DOUBLE
    if DataType.UNSIGNED_LONG in (a, b):
        return DataType.UNSIGNED_LONG
    if DataType.LONG in (a, b):
        return DataType.LONG
    return DataType.INTEGER
