import subprocess
import sys

import pytest

from seq2seq import memory


def test_rejects_fewer_than_one_arena():
    with pytest.raises(ValueError, match="arenas=0"):
        memory.limit_malloc_arenas(0)


def test_an_arena_max_from_the_environment_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.limit_malloc_arenas() is False


def test_caps_the_arenas_of_a_fresh_glibc_process():
    # In a process of its own: the cap is process-wide and binds for good.
    code = ("import os; os.environ.pop('MALLOC_ARENA_MAX', None); "
            "from seq2seq.memory import limit_malloc_arenas; print(limit_malloc_arenas(2))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    is_glibc = "glibc" in " ".join(__import__("platform").libc_ver())
    assert result.stdout.strip() == str(is_glibc)


CLI_PROBE = """
import sys
import seq2seq.cli.main as cli
seen = []
cli.limit_malloc_arenas = lambda: seen.append("tensorflow" in sys.modules)
try:
    cli.main(["--version"])
except SystemExit:
    pass
print(seen)
"""


def test_the_cli_sets_the_cap_before_tensorflow_is_imported():
    result = subprocess.run([sys.executable, "-c", CLI_PROBE], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[False]"


RELEASE_PROBE = """
from seq2seq.memory import release_freed_memory

def rss_mb():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024

blocks = [bytes(2000) for _ in range(100_000)]  # ~200 MB from glibc's heap (too big for pymalloc)
top = bytes(2000)  # allocated last: keeps the heap's top in use, so glibc cannot trim on its own
held = rss_mb()
del blocks
freed = rss_mb()
print(held, freed, release_freed_memory(), rss_mb())
"""


@pytest.mark.skipif("glibc" not in " ".join(__import__("platform").libc_ver()), reason="glibc's malloc_trim")
def test_release_hands_memory_freed_inside_the_heap_back_to_the_os():
    result = subprocess.run([sys.executable, "-c", RELEASE_PROBE], capture_output=True, text=True, check=True)
    held, freed, released, after = result.stdout.split()
    held, freed, after = int(held), int(freed), int(after)
    assert released == "True"
    assert freed > held - 50  # freeing alone leaves the pages resident
    assert after < freed - 150  # most of the ~200 MB goes back
