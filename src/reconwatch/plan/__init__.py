"""Executor-neutral logical plan: typed expressions and pipeline steps."""
