"""Command line: one module per command, argument plumbing only."""
