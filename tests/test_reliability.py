"""What happens when things go wrong, end to end: each test drives `seq2seq train` in a subprocess.

Unusable run directory, NaN, Ctrl-C, SIGKILL and resume, determinism, and
data-parallel training over 2 logical CPUs. The model and corpus are tiny
(10 steps an epoch); what is checked is the behaviour, not the quality.
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from helpers import (
    GENERATED_TOKENIZER, STEPS, TINY, TWO_CPUS, assert_same_arrays, checkpoint_step, checkpoint_tensors,
    keras_weights, kill_and_rerun, latest_checkpoint, seq2seq, start, timed_run, train_args, wait_for_checkpoint,
)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


# ----------------------------------------------------------------------------- 6. unusable run directory


def mount_tmpfs(path, options):
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN) for the {options} case")
    return path


@pytest.fixture
def unusable(request, tmp_path):
    """A run directory that cannot be used, of the kind named by the test's parameter."""
    kind = request.param
    if kind == "under a file":
        (tmp_path / "file").write_text("x")
        yield tmp_path / "file" / "run", "cannot write to run directory"
        return
    if kind == "read-only" and os.geteuid() != 0:  # chmod does not stop root: a read-only mount does
        (tmp_path / "ro").mkdir(mode=0o555)
        yield tmp_path / "ro" / "run", "cannot write to run directory"
        return
    options = {"read-only": "ro,size=64k", "disk full": "size=64k", "too small": "size=64k"}[kind]
    mount = mount_tmpfs(tmp_path / "mnt", options)
    try:
        if kind == "disk full":
            with open(mount / "filler", "wb") as f, pytest.raises(OSError):
                f.write(b"\0" * (1 << 20))
                f.flush()
        expected = "not enough space" if kind == "too small" else "cannot write to run directory"
        yield mount / "run", expected
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("unusable", ["under a file", "read-only", "disk full", "too small"], indirect=True)
def test_an_unusable_run_directory_fails_before_training(unusable, config):
    out, expected = unusable
    result = seq2seq(*train_args(config, out))
    assert result.returncode == 2, result.stderr
    assert f"error: {expected}" in result.stderr
    assert "epoch" not in result.stderr.lower() and "Resuming" not in result.stdout


# ----------------------------------------------------------------------------- 3. NaN


def test_a_diverging_run_stops_naming_the_step_and_keeps_a_loadable_checkpoint(config, tmp_path):
    out = tmp_path / "run"
    assert seq2seq(*train_args(config, out, "--set", "train.epochs=1")).returncode == 0
    last_good = latest_checkpoint(out)

    # Epoch 2 with an infinite learning rate: the first update makes the weights NaN.
    result = seq2seq(*train_args(config, out, "--set", "train.learning_rate=inf"))
    assert result.returncode == 2, result.stderr
    match = re.search(r"error: (?:loss became nan|the weights became NaN or Inf) .*optimizer step (\d+)", result.stderr)
    assert match and int(match.group(1)) > STEPS, result.stderr
    assert latest_checkpoint(out) == last_good
    reader = tf.train.load_checkpoint(last_good)
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.isfinite(value).all(), name

    # The usual learning rate resumes from that checkpoint and finishes.
    result = seq2seq(*train_args(config, out))
    assert result.returncode == 0, result.stderr
    assert f"Resuming from {last_good}" in result.stdout
    assert checkpoint_step(latest_checkpoint(out)) == 2 * STEPS


# ----------------------------------------------------------------------------- 2. Ctrl-C


def test_ctrl_c_saves_a_checkpoint_and_prints_the_command_that_resumes(config, tmp_path):
    out = tmp_path / "run"
    process = start(*train_args(config, out, "--set", "train.checkpoint_every_steps=2"))
    wait_for_checkpoint(out, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    saved = re.search(r"interrupted at optimizer step (\d+); checkpoint saved to (\S+)", stderr)
    assert saved, stderr
    assert saved.group(2) == latest_checkpoint(out) and checkpoint_step(saved.group(2)) == int(saved.group(1))
    command = re.search(r"resume with: (.*)", stderr).group(1)

    words = shlex.split(command)
    assert words[:2] == ["seq2seq", "train"]
    result = seq2seq(*words[1:])
    assert result.returncode == 0, result.stderr
    assert f"optimizer step {saved.group(1)}." in result.stdout  # "Resuming from ...: ..., optimizer step N."
    assert checkpoint_step(latest_checkpoint(out)) == 2 * STEPS


# ----------------------------------------------------------------------------- 1. SIGKILL and resume


def test_a_killed_run_resumes_from_its_last_step_checkpoint(config, tmp_path):
    out = tmp_path / "run"
    args = train_args(config, out, "--set", "train.checkpoint_every_steps=3")
    process = start(*args)
    wait_for_checkpoint(out, process)
    process.kill()
    process.communicate()
    # Whatever the kill interrupted, the latest checkpoint loads.
    last = latest_checkpoint(out)
    step = checkpoint_step(last)
    assert 0 < step < 2 * STEPS

    result = seq2seq(*args)
    assert result.returncode == 0, result.stderr
    resumed = re.search(r"Resuming from (\S+): (\d+) epoch\(s\) and (\d+) step\(s\) .* optimizer step (\d+)\.",
                        result.stdout)
    assert resumed and resumed.group(1) == last and int(resumed.group(4)) == step
    assert int(resumed.group(2)) * STEPS + int(resumed.group(3)) == step  # the position in the epoch
    assert f"Skipping the {step} batch(es) already trained on." in result.stdout
    # The step count and the optimizer continue: two epochs are 2 * STEPS optimizer steps in all.
    assert checkpoint_step(latest_checkpoint(out)) == 2 * STEPS
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 2


def test_a_torn_latest_checkpoint_falls_back_to_the_one_before(config, tmp_path):
    out = tmp_path / "run"
    args = train_args(config, out, "--set", "train.checkpoint_every_steps=4", "--set", "train.epochs=1")
    assert seq2seq(*args).returncode == 0
    newest = latest_checkpoint(out)
    with open(newest + ".index", "r+b") as f:  # as if the disk lost the end of the write
        f.truncate(10)
    result = seq2seq(*train_args(config, out, "--set", "train.checkpoint_every_steps=4"))
    assert result.returncode == 0, result.stderr
    assert f"checkpoint {newest} does not load" in result.stderr
    assert "Resuming from" in result.stdout and checkpoint_step(latest_checkpoint(out)) == 2 * STEPS


# A run killed at random moments: each start is killed a random delay after it saves its first
# checkpoint, the delays drawn from a seeded RNG over the time the uninterrupted run took from its first
# checkpoint to its last, so kills land in steps, checkpoint writes, validation, between epochs and in
# the final evaluation (start-up, where a kill leaves nothing to resume, takes most of a tiny run).
# Dropout is on (its seed-generator state is checkpointed), a pass over the data is a few batches
# (reshuffled each pass), and an epoch (50 steps) is not a multiple of the checkpoint interval (7):
# a kill inside an epoch, or in its validation, resumes from a step inside it.
KILLED_RUN = f"""
[data]
corpus = "generated"
task = "copy"
generated_pairs = 300

[tokenizer]
model = "{GENERATED_TOKENIZER}"

[batching]
tokens_per_batch = 512

[model]
embed_dim = 8
units = 8
dropout = 0.1

[train]
epochs = 2
steps_per_epoch = 50
checkpoint_every_steps = 7
patience = 5

[decode]
beam_size = 1
max_length = 8
"""


def kill_delays(duration: float, kills: int, seed: int) -> list[float]:
    return list(np.random.default_rng(seed).uniform(0.0, 1.0, kills) * duration)


def assert_same_run(expected, actual):
    """The same final weights (model.keras), last checkpoint and history.json, bit for bit."""
    assert_same_arrays(keras_weights(expected / "model.keras"), keras_weights(actual / "model.keras"), "model.keras")
    assert_same_arrays(checkpoint_tensors(latest_checkpoint(expected)), checkpoint_tensors(latest_checkpoint(actual)),
                       "last checkpoint")
    assert json.loads((actual / "history.json").read_text()) == json.loads((expected / "history.json").read_text())


def test_a_run_killed_at_random_moments_ends_as_if_never_killed(tmp_path):
    config = tmp_path / "killed.toml"
    config.write_text(KILLED_RUN)
    logs = tmp_path / "logs"
    logs.mkdir()
    reference, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    duration = timed_run(train_args(config, reference, "--seed", "3"), reference, logs, "uninterrupted")
    delays = kill_delays(duration, kills=2, seed=0)
    outcomes = kill_and_rerun(train_args(config, killed, "--seed", "3"), killed, logs, delays)
    assert "killed" in outcomes, outcomes
    assert_same_run(reference, killed)
    assert len(json.loads((killed / "history.json").read_text())["loss"]) == 2


def test_a_classifier_run_killed_at_random_moments_ends_as_if_never_killed(tmp_path):
    from seq2seq.data.generated import generate_labeled

    for name, count, seed in (("train", 160, 1), ("valid", 40, 2)):
        lines = [f"{e.label}\t{e.text}\t{' '.join(map(str, e.mask))}" for e in generate_labeled(count, seed=seed)]
        (tmp_path / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    logs = tmp_path / "logs"
    logs.mkdir()

    def args(out):
        return ["classifier", "train", "--data", str(tmp_path / "train.tsv"), "--valid", str(tmp_path / "valid.tsv"),
                "--out", str(out), "--epochs", "5", "--patience", "5", "--units", "4", "--embed-dim", "4",
                "--unidirectional", "--tokenizer", GENERATED_TOKENIZER, "--seed", "3", "--no-progress"]

    reference, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    duration = timed_run(args(reference), reference, logs, "uninterrupted")
    outcomes = kill_and_rerun(args(killed), killed, logs, kill_delays(duration, kills=2, seed=1))
    assert "killed" in outcomes, outcomes
    assert_same_run(reference, killed)
    assert len(json.loads((killed / "history.json").read_text())["loss"]) == 5


# ----------------------------------------------------------------------------- 4. determinism


def test_the_same_seed_gives_the_same_loss_curve_bit_for_bit(config, tmp_path):
    runs = [start(*train_args(config, tmp_path / f"run{i}", "--seed", "7")) for i in range(2)]
    for process in runs:
        _, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr
    first, second = (json.loads((tmp_path / f"run{i}" / "history.json").read_text()) for i in range(2))
    assert first["loss"] == second["loss"] and first["val_loss"] == second["val_loss"]
    assert len(first["loss"]) == 2


# ----------------------------------------------------------------------------- 5. distributed

# |first-epoch loss, 2 replicas - 1 replica| / loss. Measured: 0.23% (seed 3). The two runs differ
# by design in two small ways: the masked loss averages over each replica's real tokens, and the
# 2-replica run drops batches of a single example (they cannot be split). The exact agreement of
# one replica and two at an equal split, saliency penalty included, is pinned at 1e-4 by
# tests/test_train_step.py.
REPLICA_TOLERANCE = 1e-2


def test_mirrored_over_two_cpus_matches_one_replica_at_the_same_global_batch(config, tmp_path):
    common = ("--seed", "3", "--set", "train.epochs=1")
    runs = [start(*train_args(config, tmp_path / "one", *common)),
            start(*train_args(config, tmp_path / "two", *common, "--strategy", "mirrored"),
                  prefix=[sys.executable, "-c", TWO_CPUS])]
    outputs = [process.communicate(timeout=240) for process in runs]
    for process, (_, stderr) in zip(runs, outputs):
        assert process.returncode == 0, stderr
    assert "training on 2 replicas (mirrored)" in outputs[1][1]
    one, two = (json.loads((tmp_path / name / "history.json").read_text()) for name in ("one", "two"))
    assert abs(two["loss"][0] - one["loss"][0]) <= REPLICA_TOLERANCE * one["loss"][0], (one["loss"], two["loss"])
