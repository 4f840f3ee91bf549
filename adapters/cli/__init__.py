"""The `engine` command: the one composition root that wires loader, engine and adapters."""
