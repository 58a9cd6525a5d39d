"""ECS: field schema and types, multivalue rules, mappings from other telemetry."""
