"""The csv-spec data sets as Elasticsearch indices: typed flattened rows and their catalog columns.

A value is what Elasticsearch returns for it, not what the CSV says: ES|QL reads fields from doc
values, so multivalues come back sorted (keyword and ip also de-duplicated), `float` and
`half_float` lose precision, `scaled_float` is rounded to its scaling factor. `text` fields have
no doc values and keep their source order.
"""

from __future__ import annotations

import fnmatch
import json
import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconwatch.errors import IngestError, ReconwatchError
from reconwatch.plan.nodes import Column
from reconwatch.plan.values import ConversionError, convert, from_list, order_key
from reconwatch.types import DataType, parse_type

# Which data set and mapping make up each index (Elastic's CsvTestsDataLoader).
INDEX_FILES: dict[str, tuple[str, str | None]] = {
    "employees": ("employees.csv", "mapping-default.json"),
    "hosts": ("hosts.csv", "mapping-hosts.json"),
    "sample_data": ("sample_data.csv", None),
}
_DEFAULT_SCALING_FACTOR = 100.0
# Doc values of these types are a sorted *set*: duplicates collapse.
_SET_TYPES = frozenset({DataType.KEYWORD, DataType.IP, DataType.VERSION})

Row = dict[str, object]


class MissingIndexError(ReconwatchError):
    """A FROM pattern that matches no available index."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        super().__init__(f"index [{pattern}] is not available")


@dataclass(frozen=True, slots=True)
class Index:
    """One loaded index: catalog columns (sorted by name) and rows in file order."""

    name: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]


@dataclass(slots=True)
class SpecData:
    """Every index of a spec directory, plus the bad cells and files met while loading."""

    indices: dict[str, Index] = field(default_factory=dict)
    problems: list[IngestError] = field(default_factory=list)

    def resolve(self, patterns: tuple[str, ...]) -> list[Index]:
        """The indices FROM's patterns select, in name order; MissingIndexError naming a pattern
        that selects nothing (Elasticsearch's "Unknown index")."""
        chosen: dict[str, Index] = {}
        for pattern in patterns:
            matches = [n for n in self.indices if fnmatch.fnmatchcase(n, pattern.strip())]
            if not matches:
                raise MissingIndexError(pattern)
            chosen.update((n, self.indices[n]) for n in matches)
        return [chosen[n] for n in sorted(chosen)]

    def columns(self, patterns: tuple[str, ...]) -> dict[str, Column]:
        """The union of the selected indices' fields; a name mapped to two types is unsupported."""
        out: dict[str, Column] = {}
        for index in self.resolve(patterns):
            for col in index.columns:
                seen = out.get(col.name)
                if seen is None:
                    out[col.name] = col
                elif seen.type is not col.type:
                    out[col.name] = Column(col.name, DataType.UNSUPPORTED)
                elif col.multivalued and not seen.multivalued:
                    out[col.name] = col
        return out

    def rows(self, patterns: tuple[str, ...]) -> list[Row]:
        """Rows of the selected indices (index after index, each in file order), every field keyed,
        plus the METADATA fields `_index`, `_id` (`<index>-<row number>`) and `_version` (1)."""
        names = list(self.columns(patterns))
        out: list[Row] = []
        for index in self.resolve(patterns):
            for number, row in enumerate(index.rows, start=1):
                cells = {name: row.get(name) for name in names}
                cells.update(_index=index.name, _id=f"{index.name}-{number}", _version=1)
                out.append(cells)
        return out


@dataclass(frozen=True, slots=True)
class SpecCatalog:
    """A Catalog over a SpecData (FROM on a missing index raises MissingIndexError)."""

    data: SpecData

    def fields(self, indices: tuple[str, ...]) -> Mapping[str, Column]:
        return self.data.columns(indices)


# ---------------------------------------------------------------------------------------------
# CSV reading


def split_csv_line(line: str) -> list[str]:
    """Cells of a data line: commas split, except inside `[...]` multivalues."""
    cells: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in line:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
        if ch == "," and depth == 0:
            cells.append("".join(current))
            current = []
        else:
            current.append(ch)
    cells.append("".join(current))
    return cells


def _precision(raw_type: str, scaling: float) -> Callable[[float], float] | None:
    """How an index stores a floating field of this mapping type, or None if exactly."""
    if raw_type == "float":
        return lambda v: float(struct.unpack("f", struct.pack("f", v))[0])
    if raw_type == "half_float":
        return lambda v: float(struct.unpack("e", struct.pack("e", v))[0])
    if raw_type == "scaled_float":
        # Java's Math.round rounds halves up, Python's round() to even.
        return lambda v: math.floor(v * scaling + 0.5) / scaling
    return None


@dataclass(frozen=True, slots=True)
class _CsvColumn:
    name: str
    raw_type: str
    type: DataType
    store: Callable[[float], float] | None


def _doc_values(values: list[object], column: _CsvColumn) -> object:
    """A field's values as the index returns them (see the module docstring)."""
    if column.type is DataType.TEXT or len(values) < 2:
        return from_list(values)
    ordered = sorted(values, key=lambda v: order_key(v, column.type))
    if column.type in _SET_TYPES:
        ordered = list(dict.fromkeys(ordered))
    return from_list(ordered)


def _cell(text: str, column: _CsvColumn) -> object:
    text = text.strip()
    if column.type is DataType.UNSUPPORTED:
        return None  # ES|QL shows fields of types it cannot read as null
    if text.startswith("[") and text.endswith("]"):
        items = [t.strip() for t in text[1:-1].split(",")] if text[1:-1].strip() else []
    else:
        items = [text] if text else []
    values: list[object] = []
    for item in items:
        value = convert(item, column.type)  # ConversionError: reported by the caller
        if column.store is not None and isinstance(value, float):
            value = column.store(value)
        values.append(value)
    return _doc_values(values, column)


def _header(line: str, scaling: Mapping[str, float]) -> list[_CsvColumn]:
    out: list[_CsvColumn] = []
    for cell in line.split(","):
        name, _, raw = cell.strip().rpartition(":")
        raw = raw.strip().lower()
        type_ = parse_type(raw) or DataType.UNSUPPORTED
        store = _precision(raw, scaling.get(name.strip(), _DEFAULT_SCALING_FACTOR))
        out.append(_CsvColumn(name.strip(), raw, type_, store))
    return out


def load_csv(
    path: Path, index: str, scaling: Mapping[str, float], problems: list[IngestError]
) -> Index:
    """Read one data set; a bad cell becomes null and is reported as file:line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        problems.append(IngestError("empty data set", str(path), 1))
        return Index(index, (), ())
    header = _header(lines[0], scaling)
    rows: list[Row] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = split_csv_line(line)
        if len(cells) != len(header):
            problems.append(
                IngestError(f"{len(cells)} cells, header has {len(header)}", str(path), number)
            )
            continue
        row: Row = {}
        for column, text in zip(header, cells, strict=True):
            try:
                row[column.name] = _cell(text, column)
            except ConversionError as exc:
                problems.append(IngestError(f"{column.name}: {exc}", str(path), number))
                row[column.name] = None
        rows.append(row)
    multi = {c.name for c in header if any(isinstance(r.get(c.name), list) for r in rows)}
    columns = tuple(
        Column(c.name, c.type, c.name in multi) for c in sorted(header, key=lambda c: c.name)
    )
    return Index(index, columns, tuple(rows))


def scaling_factors(mapping_path: Path | None) -> dict[str, float]:
    """`scaling_factor` of each scaled_float field (dotted names) declared in a mapping file."""
    if mapping_path is None or not mapping_path.is_file():
        return {}
    try:
        doc = json.loads(mapping_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, float] = {}

    def walk(props: object, prefix: str) -> None:
        if not isinstance(props, dict):
            return
        for name, spec in props.items():
            if not isinstance(spec, dict):
                continue
            full = f"{prefix}{name}"
            if isinstance(spec.get("scaling_factor"), int | float):
                out[full] = float(spec["scaling_factor"])
            walk(spec.get("properties"), f"{full}.")
            walk(spec.get("fields"), f"{full}.")

    walk(doc.get("properties") if isinstance(doc, dict) else None, "")
    return out


def load_spec_data(root: Path) -> SpecData:
    """The indices of a spec directory (data/*.csv, mappings/*.json); absent ones are not loaded."""
    data = SpecData()
    for index, (csv_name, mapping_name) in INDEX_FILES.items():
        path = root / "data" / csv_name
        if not path.is_file():
            continue
        mapping = root / "mappings" / mapping_name if mapping_name else None
        try:
            data.indices[index] = load_csv(path, index, scaling_factors(mapping), data.problems)
        except (OSError, UnicodeDecodeError) as exc:
            data.problems.append(IngestError(f"cannot read: {exc}", str(path)))
    return data
