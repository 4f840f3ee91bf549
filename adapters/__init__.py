"""Everything that touches the outside world: files, stdio, and the command line."""
