"""`engine run` and `serve` keep glibc's heap from shrinking after every batch, unless the
user tunes malloc through its own variables."""

import os
import subprocess
import sys

import pytest

ASK = "from adapters.allocator import keep_heap_headroom; print(keep_heap_headroom())"


def headroom_set(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    result = subprocess.run([sys.executable, "-c", ASK], env=clean | env, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_the_headroom_is_set_unless_a_malloc_variable_is():
    assert headroom_set({}) == "True"
    assert headroom_set({"MALLOC_ARENA_MAX": "2"}) == "False"
