"""The store's checkpoints write only the rows committed since the last one, and its WAL stays bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import Clock
from reconwatch.store import NewEvent, Store
from reconwatch.store.db import DB_FILE, WAL_BOUND

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
NET = "logs-endpoint.events.network-default"


def _batch(first: int, size: int, pad: int = 0) -> list[NewEvent]:
    return [
        NewEvent(
            "create",
            NET,
            None,
            {
                "@timestamp": "2026-01-02T11:00:00Z",
                "event": {"action": "connection_attempted", "sequence": i},
                "destination": {"ip": f"10.0.{i // 250 % 250}.{i % 250}"},
                "message": "x" * pad,
            },
        )
        for i in range(first, first + size)
    ]


def _written(store: Store) -> dict[tuple[int, int], int]:
    """Where on disk each segment of the `seq` column is, and its rows (what checkpoints wrote)."""
    cur = store.cursor()
    try:
        rows = cur.execute(
            "SELECT block_id, block_offset, count FROM pragma_storage_info('events') "
            "WHERE column_name = 'seq' AND segment_type <> 'VALIDITY' AND persistent"
        ).fetchall()
    finally:
        cur.close()
    return {(int(r[0]), int(r[1])): int(r[2]) for r in rows}


def _checkpoint(store: Store) -> None:
    cur = store.cursor()
    try:
        cur.execute("CHECKPOINT")
    finally:
        cur.close()


def test_a_checkpoint_rewrites_no_row_group_already_on_disk(tmp_path: Path) -> None:
    # What made the writer stall for seconds: with DuckDB's default vacuum every checkpoint also
    # merged the row groups earlier ones had written (the second checkpoint here rewrote the
    # first's rows, the fourth all four batches), inside the commit that crossed the WAL bound.
    clock = Clock(NOW - timedelta(days=3))
    store = Store(tmp_path, clock, retention=timedelta(days=2))
    try:
        on_disk: dict[tuple[int, int], int] = {}
        for n in range(6):
            clock.now = NOW - timedelta(days=3) + timedelta(hours=n)
            store.write(_batch(n * 300, 300))
            _checkpoint(store)
            now = _written(store)
            kept = {k: v for k, v in now.items() if k in on_disk}
            assert kept == on_disk, f"checkpoint {n} rewrote rows already on disk"
            assert sum(now.values()) - sum(kept.values()) == 300, f"checkpoint {n}"
            on_disk = now
        # Retention deletes the first three batches; the checkpoint after it writes nothing and
        # leaves the rows that stay where they were.
        clock.now = NOW - timedelta(days=1) + timedelta(hours=2, minutes=30)
        assert store.enforce_retention() == 900
        _checkpoint(store)
        after = _written(store)
        assert set(after) <= set(on_disk)
        assert sum(after.values()) == 900
        assert store.count() == 900
    finally:
        store.close()


def test_the_wal_stays_within_its_bound(tmp_path: Path) -> None:
    # 1,000-event batches of about 2.5 MB of WAL each: once the WAL is past WAL_BOUND the next
    # commit checkpoints, so it never holds more than the bound and one batch.
    store = Store(tmp_path, Clock(NOW))
    wal = tmp_path / (DB_FILE + ".wal")
    sizes: list[int] = []
    try:
        for n in range(10):
            store.write(_batch(n * 1000, 1000, pad=2000))
            sizes.append(wal.stat().st_size if wal.exists() else 0)
    finally:
        store.close()
    batch = sizes[0]
    top = sizes.index(max(sizes))
    assert max(sizes) > WAL_BOUND  # the test did take the WAL past the bound
    assert max(sizes) <= WAL_BOUND + batch
    assert sizes[top + 1] < batch  # and the next commit checkpointed
    store = Store(tmp_path, Clock(NOW))
    try:
        assert store.count() == 10_000
    finally:
        store.close()
