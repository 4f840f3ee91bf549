"""One module per graph-format step (`v1_to_v2.py`, ...). Version 1 is the first format,
so there is nothing to migrate yet."""
