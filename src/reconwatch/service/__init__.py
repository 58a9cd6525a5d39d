"""`reconwatch serve`: an Elasticsearch-compatible HTTP service over the embedded store."""
