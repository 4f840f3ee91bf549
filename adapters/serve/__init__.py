"""`engine serve DIR`: every graph in a directory, running, following the directory as it changes."""
