"""Rule execution with Kibana semantics: windows, schedules, alert building, evidence."""
