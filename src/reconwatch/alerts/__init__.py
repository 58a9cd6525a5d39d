"""Alert sinks and renderers."""
