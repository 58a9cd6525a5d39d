"""Ingest: files, stdin, HTTP bulk and sensor output become ECS event datasets."""
