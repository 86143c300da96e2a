"""`seq2seq.bench.startup`: timing a process to its first output line and reading its peak memory."""

import sys

import pytest

from seq2seq.bench import decode as bench_decode
from seq2seq.bench import startup


def test_a_process_is_timed_to_its_first_line_and_its_exit_with_its_peak_memory():
    # The child prints, waits 0.4 s, then holds a 64 MB buffer before its second line.
    script = ("import sys, time\nprint(sys.stdin.read().upper(), flush=True)\ntime.sleep(0.4)\n"
              "buffer = bytearray(64 * 2**20)\nprint('done')\n")
    result = startup.timed_process([sys.executable, "-c", script], b"abc")
    assert result["stdout"] == b"ABC\ndone\n"
    assert result["first_line_seconds"] + 0.4 <= result["seconds"]
    assert 64 <= result["peak_rss_mb"] < 1024
    assert 0 < result["cpu_seconds"] < result["seconds"]


def test_a_failing_process_raises_with_its_stderr():
    script = "import sys; sys.exit('broken on purpose')"
    with pytest.raises(RuntimeError, match="exited with 1: broken on purpose"):
        startup.timed_process([sys.executable, "-c", script])


def test_startup_report_refuses_no_texts_and_bench_decode_skips_it_without_a_run(tmp_path):
    with pytest.raises(ValueError, match="at least one text"):
        startup.startup_report(tmp_path, [])
    with pytest.raises(ValueError, match="repeats=0"):
        startup.startup_report(tmp_path, ["a"], repeats=0)
    assert bench_decode._startup(None, ["a"], 3) is None
    assert bench_decode._startup(str(tmp_path), ["a"], 0) is None
