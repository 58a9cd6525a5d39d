"""Streaming executor: the plan evaluated incrementally over a sliding event-time window."""
