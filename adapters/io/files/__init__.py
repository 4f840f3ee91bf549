"""Files and the standard streams: `file.read`, `stdin`, `stdout`, `file.write`."""
