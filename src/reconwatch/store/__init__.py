"""The service's embedded store: events by index, alerts by Kibana id, rule runs (one DuckDB file)."""

from reconwatch.store.db import Store, StoreError
from reconwatch.store.events import NewEvent, Written
from reconwatch.store.paths import default_data_dir

__all__ = ["NewEvent", "Store", "StoreError", "Written", "default_data_dir"]
