"""Helpers shared by the test modules that drive `seq2seq` in subprocesses (imported, never collected).

A tiny translator run config, the command line and environment of a
subprocess, checkpoint readers, `kill_and_rerun` (SIGKILLs a run at given
delays and reruns it until it finishes), and the tiny batches the train-step
tests feed models in-process and in subprocesses.
"""

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

TINY = """
[data]
corpus = "generated"
task = "copy"
generated_pairs = 600

[tokenizer]
vocab_size = 40

[model]
embed_dim = 16
units = 16
dropout = 0.0

[train]
epochs = 2
steps_per_epoch = 10
patience = 5

[decode]
beam_size = 1
max_length = 12
"""
STEPS = 10  # steps_per_epoch above
# The SentencePiece model of the generated tasks, shipped with the repository: no tokenizer training.
GENERATED_TOKENIZER = str(Path(__file__).resolve().parents[1] / "tokenizers" / "generated.model")
CLI = [sys.executable, "-m", "seq2seq.cli.main"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow", "PYTHONUNBUFFERED": "1"}
# Runs the CLI with 2 logical CPU devices, configured before TensorFlow starts its devices.
TWO_CPUS = (
    "import sys, tensorflow as tf; cpu = tf.config.list_physical_devices('CPU')[0]; "
    "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2); "
    "from seq2seq.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def train_in_process(root: Path, toml_text: str) -> Path:
    """Trains the run of `toml_text` with `seq2seq train` in this process; returns `root / "run"`."""
    from seq2seq.cli.main import main

    (root / "tiny.toml").write_text(toml_text)
    assert main(["train", "--config", str(root / "tiny.toml"), "--out", str(root / "run"), "--no-progress"]) == 0
    return root / "run"


def train_args(config, out, *extra):
    return ["train", "--config", str(config), "--out", str(out), "--no-progress", *extra]


def seq2seq(*args, prefix=CLI, timeout=240):
    return subprocess.run([*prefix, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def start(*args, prefix=CLI):
    return subprocess.Popen([*prefix, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def latest_checkpoint(run_dir):
    return tf.train.latest_checkpoint(str(Path(run_dir) / "checkpoints"))


def checkpoint_tensors(path) -> dict:
    """Every tensor of a checkpoint by name (reading each: the checkpoint loads)."""
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def checkpoint_step(path) -> int:
    """The optimizer step stored in a checkpoint."""
    return int(checkpoint_tensors(path)["optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"])


def keras_weights(path) -> dict:
    """The weight arrays of a `.keras` file by their path in its `model.weights.h5`."""
    import h5py

    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
        weights = {}
        h5.visititems(lambda name, item: weights.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return weights


def assert_same_arrays(expected: dict, actual: dict, what: str):
    """Equal names and bit-identical arrays."""
    assert sorted(actual) == sorted(expected), what
    for name, value in expected.items():
        assert np.array_equal(np.asarray(actual[name]), np.asarray(value)), f"{what}: {name} differs"


def wait_for_checkpoint(run_dir, process, timeout=180):
    """Polls until the run has written its first checkpoint; returns its path."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        path = latest_checkpoint(run_dir)
        if path:
            return path
        time.sleep(0.05)
    process.kill()
    pytest.fail("no checkpoint was written in time")


def timed_run(args, run_dir, log_dir, name, timeout=240) -> float:
    """Runs `seq2seq *args` to the end (output in `log_dir/name.{out,err}`); returns the seconds from
    its first checkpoint in `run_dir` to its last (the part of a run where a kill tests resuming)."""
    process = _start_logged(args, log_dir, name)
    saves, pointer, deadline = [], None, time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        now = _checkpoint_pointer(run_dir)
        if now != pointer:
            saves.append(time.monotonic())
            pointer = now
        time.sleep(0.01)
    if process.poll() is None:
        process.kill()
    assert process.wait() == 0, (log_dir / f"{name}.err").read_text()[-3000:]
    return saves[-1] - saves[0] if saves else 0.0


def kill_and_rerun(args, run_dir, log_dir, delays, timeout=240) -> list[str]:
    """Starts `seq2seq *args` (training into `run_dir`) once per delay and SIGKILLs it that many
    seconds after it saved its first checkpoint, unless it finished first; then reruns it until it
    exits 0.

    Returns what happened to each start: "killed", "finished" or "failed: CODE".
    Output goes to `log_dir/attempt<i>.{out,err}` and `log_dir/final.{out,err}`.
    """
    outcomes = []
    for index, delay in enumerate(delays):
        process = _start_logged(args, log_dir, f"attempt{index}")
        _wait_for_new_checkpoint(process, run_dir, timeout)
        try:
            code = process.wait(timeout=delay)
            outcomes.append("finished" if code == 0 else f"failed: {code}")
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            outcomes.append("killed")
    timed_run(args, run_dir, log_dir, "final", timeout)
    return outcomes


def _wait_for_new_checkpoint(process, run_dir, timeout):
    """Polls until `process` has saved a checkpoint in `run_dir`, or exited."""
    before, deadline = _checkpoint_pointer(run_dir), time.monotonic() + timeout
    while process.poll() is None and _checkpoint_pointer(run_dir) == before:
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no checkpoint was saved in {run_dir} in {timeout} s")
        time.sleep(0.01)


def _checkpoint_pointer(run_dir):
    """The text of the run's `checkpoints/checkpoint` file (which names the latest), or None."""
    try:
        return (Path(run_dir) / "checkpoints" / "checkpoint").read_text()
    except FileNotFoundError:
        return None


def _start_logged(args, log_dir, name):
    with open(log_dir / f"{name}.out", "w") as out, open(log_dir / f"{name}.err", "w") as err:
        return subprocess.Popen([*CLI, *args], stdout=out, stderr=err, env=ENV)


def classifier_data(n=16, time=6, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, 20, (n, time)).astype(np.int32)
    tokens[: n // 2, time - 2:] = 0  # some padding
    annotation = (rng.random((n, time)) > 0.3).astype(np.float32)
    labels = rng.integers(0, 3, n).astype(np.int32)
    return tokens, annotation, labels


def translator_data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    source = rng.integers(4, 16, (n, 5)).astype(np.int32)
    source[: n // 2, 3:] = 0
    target_out = rng.integers(4, 16, (n, 4)).astype(np.int32)
    target_out[:, -1] = 3
    target_out[: n // 2, 2:] = 0
    target_in = np.concatenate([np.full((n, 1), 2, np.int32), target_out[:, :-1]], axis=1)
    target_in[target_out == 0] = 0
    annotation = (rng.random(source.shape) > 0.3).astype(np.float32)
    return source, target_in, target_out, annotation
