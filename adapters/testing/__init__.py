"""`engine test`: graph tests written in YAML or TOML, run against the real plan with
sources fed from fixtures and sinks captured (docs/testing.md)."""
