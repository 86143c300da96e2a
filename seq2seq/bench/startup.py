"""Start-up time and peak memory of `seq2seq translate`, each in a process of its own.

`seq2seq bench decode` adds these to its JSON (`startup_report`). Every figure
comes from a child process started here: seconds from just before it is
started to its first line on stdout, and its peak resident set size (the
kernel's `ru_maxrss` of the child, from `os.wait4`). Measured on a copy of the
run directory, so that the first translate (which traces the decoding graph
and writes `decode_cache/`, `seq2seq.runs.decode_cache`) is timed too and the
user's run is not written:

- `first_translate_seconds`: one sentence, the run without a cached graph;
- `startup_seconds`: one sentence, with the cached graph (median of `repeats`);
- `tensorflow_import_seconds`: `import tensorflow, tensorflow_text` and one
  printed line, the floor the two above sit on (median of `repeats`): on a
  loaded machine compare ratios to it rather than seconds;
- `decode_peak_rss_mb`: translating all the benchmark's sentences in one
  process with the cached graph (the run's beam size), and its seconds.

A `seq2seq translate` that fails raises `RuntimeError` with its stderr.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTUP_REPEATS = 3
# The sentence timed from process start to output (the one of issue 20's target).
STARTUP_SENTENCE = "Open file"
TRANSLATE = [sys.executable, "-m", "seq2seq.cli.main", "translate"]
IMPORT_FLOOR = [sys.executable, "-c", "import tensorflow, tensorflow_text; print('ready', flush=True)"]


# Starts argv[2:] from a small process and writes its peak RSS (KiB) to argv[1]. A child forked straight
# from a big parent (pytest, a benchmark holding TensorFlow) inherits the parent's peak in ru_maxrss,
# even across exec; forked from this launcher it inherits only the launcher's few MB.
_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def timed_process(argv: list[str], stdin: bytes = b"", env: dict | None = None) -> dict:
    """Runs `argv` with `stdin`; returns {"first_line_seconds", "seconds", "cpu_seconds", "peak_rss_mb", "stdout"}.

    `first_line_seconds` runs from just before the process is started to its
    first line on stdout (None if it printed none); `seconds` to its exit;
    `cpu_seconds` is its user + system time, which other processes' load
    disturbs less than the wall-clock time.
    The process is started by a small launcher (its ~30 ms start-up is counted), so that
    `peak_rss_mb` is the process's own peak, not the caller's.
    Raises `RuntimeError` (with the process's stderr) if it exits with an error.
    """
    with tempfile.TemporaryFile() as stderr, tempfile.TemporaryFile() as stdin_file, \
            tempfile.TemporaryDirectory() as work:
        peak_file = Path(work) / "peak_rss_kib"
        stdin_file.write(stdin)
        stdin_file.seek(0)
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(peak_file), *argv], stdin=stdin_file,
                                   stdout=subprocess.PIPE, stderr=stderr, env=env)
        first = process.stdout.readline()
        first_line = time.perf_counter() - started if first else None
        rest = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        process.stdout.close()
        if process.returncode != 0:
            stderr.seek(0)
            message = stderr.read().decode("utf-8", errors="replace").strip()
            raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}: {message[-2000:]}")
        # ru_maxrss is in KiB on Linux.
        peak_rss_kib = int(peak_file.read_text())
    return {"first_line_seconds": first_line, "seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": peak_rss_kib / 1024,
            "stdout": first + rest}


def startup_report(run_dir, texts: list[str], *, sentence: str = STARTUP_SENTENCE,
                   repeats: int = STARTUP_REPEATS) -> dict:
    """The figures of the module docstring for the trained run in `run_dir`: `sentence`
    times the start-up, `texts` (>= 1) the memory of decoding."""
    if not texts:
        raise ValueError("Expected at least one text to translate. Received: texts=[]")
    if repeats < 1:
        raise ValueError(f"Expected repeats >= 1. Received: repeats={repeats}")
    one = (sentence + "\n").encode("utf-8")
    with tempfile.TemporaryDirectory(prefix="seq2seq-startup-") as work:
        copy = Path(work) / "run"
        shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("decode_cache", "checkpoints", "best", "logs"))
        translate = TRANSLATE + ["--model", str(copy)]
        first = timed_process(translate, one)
        cached = [timed_process(translate, one) for _ in range(repeats)]
        floor = [timed_process(IMPORT_FLOOR) for _ in range(repeats)]
        everything = timed_process(translate, "".join(text + "\n" for text in texts).encode("utf-8"))
    return {
        "first_translate_seconds": round(first["first_line_seconds"], 2),
        "first_translate_cpu_seconds": round(first["cpu_seconds"], 2),
        "first_translate_peak_rss_mb": round(first["peak_rss_mb"]),
        "startup_seconds": round(statistics.median(r["first_line_seconds"] for r in cached), 2),
        "startup_cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in cached), 2),
        "startup_peak_rss_mb": round(max(r["peak_rss_mb"] for r in cached)),
        "tensorflow_import_seconds": round(statistics.median(r["first_line_seconds"] for r in floor), 2),
        "tensorflow_import_cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in floor), 2),
        "tensorflow_import_peak_rss_mb": round(max(r["peak_rss_mb"] for r in floor)),
        "decode_peak_rss_mb": round(everything["peak_rss_mb"]),
        "decode_sentences": len(texts),
        "decode_seconds": round(everything["seconds"], 2),
        "startup_repeats": repeats,
        "startup_sentence": sentence,
    }
