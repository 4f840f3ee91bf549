"""`engine diff`: what `engine serve` would do with a change to its graph directory."""
