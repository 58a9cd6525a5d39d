"""Executors of the logical plan; no backend imports another."""
