"""The scan contract: what every executor may ask of the data a plan's FROM reads, all of it declared."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

from reconwatch.plan.nodes import Column

if TYPE_CHECKING:
    import pyarrow as pa


class RetryScan(Exception):
    """The source learnt something while an executor read it (a file to read in Python, a field
    that is multivalued after all): compile the query again and run it again."""


class ScanSource(Protocol):
    """Events for an executor, by input (a file, an index). Inputs are numbered; a row of any
    form carries only the fields asked for, typed as `column` says (a list is a multivalue in
    doc-values order), plus the METADATA fields asked for.

    Implementations: ingest.Dataset (event files), the conformance data sets, a pinned result
    in engine.detect. `ArrowScan` gives the optional parts a default."""

    def selected_inputs(self, indices: Sequence[str]) -> list[int]:
        """The inputs a FROM with these index patterns reads."""
        ...

    def column(self, name: str) -> Column | None:
        """A field's type and whether it is multivalued; None if no input has it."""
        ...

    def rows(
        self, names: Sequence[str], inputs: Sequence[int], metadata: Sequence[str] = ()
    ) -> Iterable[Mapping[str, object]]:
        """Rows by dotted name, plan-convention values (row-by-row executors)."""
        ...

    def batches(
        self, names: Sequence[str], inputs: Sequence[int], metadata: Sequence[str] = ()
    ) -> Iterator[pa.RecordBatch]:
        """The same rows as Arrow batches laid out by `arrow_schema` (columnar executors)."""
        ...

    def arrow_schema(self, cols: Sequence[Column], metadata: Sequence[str]) -> pa.Schema:
        """The batches' layout: a hidden int32 input column first, then `cols`, then METADATA."""
        ...

    def register_source(
        self,
        con: Any,
        names: Sequence[str],
        inputs: Sequence[int],
        metadata: Sequence[str],
        filtered: Collection[str] | None,
    ) -> bool:
        """Make the table `rw_source` on the DuckDB connection `con` with SQL of the source's own
        (a reader DuckDB runs itself); False when it has none and the batches are to be read.
        `filtered`: the fields the plan's filters read (all when None)."""
        ...

    def spark_chunks(
        self,
        spark: Any,
        names: Sequence[str],
        inputs: Sequence[int],
        metadata: Sequence[str],
        days: tuple[date | None, date | None] | None,
    ) -> Any:
        """An RDD of chunks of (order, row) on the SparkSession `spark`: the rows `rows` gives,
        read on Spark's workers, `order` rising in input order; None when the source has no
        reader of its own there (the driver then hands `rows` over). `days`: only rows of
        these days (inclusive, UTC; None: unbounded) can match, a hint to skip whole files."""
        ...

    def spark_frame(
        self,
        spark: Any,
        cols: Sequence[Column],
        inputs: Sequence[int],
        days: tuple[date | None, date | None] | None,
    ) -> Any:
        """A Spark DataFrame of the `cols` fields of `inputs` read by Spark's own reader (no
        Python on the workers): columns `c0, c1, ...` in the order of `cols`, laid out as
        `arrow_schema` says, and `__ord`, rising in input order. None when an input is not one
        that reader gives the same rows for (the executor then reads `spark_chunks`)."""
        ...

    def scan_failed(self, message: str, inputs: Sequence[int]) -> bool:
        """Learn from an executor's failure while reading `inputs`; True when a re-run
        (RetryScan) can succeed."""
        ...

    def counted_later(self, inputs: Sequence[int]) -> None:
        """Called after an executor read `inputs` without the source's own counting."""
        ...


class ArrowScan:
    """Defaults for a ScanSource whose rows are only what it hands over: no SQL reader of its
    own, nothing to learn from a failed read, nothing counted later."""

    def register_source(
        self,
        con: Any,
        names: Sequence[str],
        inputs: Sequence[int],
        metadata: Sequence[str],
        filtered: Collection[str] | None,
    ) -> bool:
        return False

    def spark_chunks(
        self,
        spark: Any,
        names: Sequence[str],
        inputs: Sequence[int],
        metadata: Sequence[str],
        days: tuple[date | None, date | None] | None,
    ) -> Any:
        return None

    def spark_frame(
        self,
        spark: Any,
        cols: Sequence[Column],
        inputs: Sequence[int],
        days: tuple[date | None, date | None] | None,
    ) -> Any:
        return None

    def scan_failed(self, message: str, inputs: Sequence[int]) -> bool:
        return False

    def counted_later(self, inputs: Sequence[int]) -> None:
        return None
