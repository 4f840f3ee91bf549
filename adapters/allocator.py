"""Keep glibc's heap from shrinking and growing again with every batch.

A graph runs in a steady cycle: a batch is decoded, transformed and encoded, and freed.
glibc's malloc gives memory at the top of its heap back to the system as soon as 128 KiB
of it is free, and takes it back (zeroed pages, a page fault each) on the next batch. On
the JSON Lines benchmark (`bench/shapes.py`) that churn was a fifth of the run, spent in
the kernel. Keeping up to 8 MiB (asking for 4 MiB more at a time) ends it; peak memory
is unchanged, since the memory was in use a moment before.

Only on glibc, and only when the user has not tuned malloc through its own variables.
"""

import ctypes
import os
import sys
from typing import Final

M_TRIM_THRESHOLD: Final = -1
M_TOP_PAD: Final = -2
TRIM_THRESHOLD_BYTES: Final = 8 << 20
TOP_PAD_BYTES: Final = 4 << 20


def keep_heap_headroom() -> bool:
    """True when the setting was made."""
    if not sys.platform.startswith("linux") or any(name.startswith("MALLOC_") for name in os.environ):
        return False
    try:
        # The symbols already loaded into this process, libc's among them: no library search
        # (ctypes.util.find_library would run ldconfig in a subprocess).
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no mallopt here
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and bool(mallopt(M_TOP_PAD, TOP_PAD_BYTES))
