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
