"""Event input: files and documents read into datasets the query engine scans."""

from reconwatch.ingest.dataset import Dataset
from reconwatch.ingest.read import IngestReport

__all__ = ["Dataset", "IngestReport"]
