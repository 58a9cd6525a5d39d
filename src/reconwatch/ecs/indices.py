"""The fields an index pattern's indices can map: all of ECS for Elastic's indices, and which patterns reconwatch knows completely."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from reconwatch.ecs.schema import ECS_FIELDS, is_ecs_index
from reconwatch.types import DataType as T
from reconwatch.types import parse_type

# Elastic Defend's own extensions of ECS follow its naming conventions: an `Ext` object inside an
# ECS field set (`process.Ext.ancestry`), capitalised top-level objects (`Effective_process`,
# `Target`, `Tcc`, `Memory_protection`) and `.caseless` keyword multi-fields.
_DEFEND_EXTENSION = re.compile(r"(^|.*\.)Ext(\..+)?$|^[A-Z][A-Za-z_]*(\..+)?$|.+\.caseless$")


@dataclass(frozen=True, slots=True)
class IndexFields:
    """What the indices an index pattern selects can map.

    `fields` have known types. `complete`: nothing else can exist, so another name fails at run
    time ("Unknown column"), except a name `extension` allows (a field the integration may add,
    type unknown). Not complete: reconwatch does not ship that integration's fields, so another
    name may exist and its type is unknown."""

    pattern: str
    source: str
    fields: Mapping[str, T]
    complete: bool
    extension: re.Pattern[str] | None = None

    def allows(self, name: str) -> bool:
        """Whether `name`, not in `fields`, may still be a field of these indices."""
        if not self.complete:
            return True
        return self.extension is not None and self.extension.match(name) is not None


# Index patterns whose indices reconwatch knows completely: Elastic Defend's data streams map ECS,
# the fields reconwatch's own schema lists, and Defend's extensions.
_DEFEND = ("logs-endpoint.",)


def index_fields(pattern: str) -> IndexFields:
    """The fields of the indices `pattern` (as FROM writes it) can select."""
    pattern = pattern.strip()
    if any(pattern.startswith(prefix) for prefix in _DEFEND):
        source = f"ECS {ecs_version()} and Elastic Defend"
        return IndexFields(
            pattern, source, _defend_fields(), complete=True, extension=_DEFEND_EXTENSION
        )
    if is_ecs_index(pattern):
        # Elastic's integrations map ECS fields with ECS's types; their own fields are not shipped.
        return IndexFields(pattern, f"ECS {ecs_version()}", ecs_field_types(), complete=False)
    return IndexFields(pattern, "nothing", {}, complete=False)


@functools.cache
def _defend_fields() -> Mapping[str, T]:
    # ECS's types win over the ones reconwatch's ingest reads a few fields as (`message`).
    return {**ECS_FIELDS, **ecs_field_types()}


@functools.cache
def _ecs_table() -> tuple[str, dict[str, T], frozenset[str]]:
    """(version, field -> type, fields ECS normalizes to arrays) from the shipped ECS table."""
    text = resources.files("reconwatch").joinpath("data/ecs/ecs-fields.tsv").read_text("utf-8")
    version = ""
    types: dict[str, T] = {}
    arrays: set[str] = set()
    for line in text.splitlines():
        if line.startswith("#"):
            found = re.match(r"# ECS (\S+):", line)
            version = found.group(1) if found else version
            continue
        name, es_type, *flags = line.split("\t")
        # Objects hold other fields; flattened, nested and the rest are columns ES|QL cannot read.
        if es_type in ("object", "nested"):
            continue
        types[name] = parse_type(es_type) or T.UNSUPPORTED
        if "array" in flags:
            arrays.add(name)
    return version, types, frozenset(arrays)


def ecs_version() -> str:
    return _ecs_table()[0]


def ecs_field_types() -> Mapping[str, T]:
    """Every ECS field (multi-fields such as `process.command_line.text` included) and its type."""
    return _ecs_table()[1]


def ecs_array_fields() -> frozenset[str]:
    """ECS fields that ECS says hold arrays."""
    return _ecs_table()[2]
