"""HTTP service and web UI."""
