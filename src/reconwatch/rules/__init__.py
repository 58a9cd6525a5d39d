"""Detection rules: TOML model, loading, validation, exceptions."""
