"""A real `seq2seq train` shows users the kit's own lines and its progress bars, nothing else.

One tiny run (a generated corpus written as a gettext catalog, one epoch, a
tiny model, `--seed` so that op determinism is on) in a subprocess, whose
standard error is checked line by line for what TensorFlow, Keras and Python
warnings would add.
"""

import re
import subprocess
import sys

import pytest
from helpers_gettext import write_catalog

from seq2seq.data.generated import generate_pairs

# What must never reach a user's terminal from a training run.
FOREIGN = {
    "a TensorFlow C++ log line": re.compile(r"^[IWEF]\d{4} "),
    "absl's log preamble": re.compile(r"WARNING: All log messages before absl"),
    "a Python warning": re.compile(r"\b[A-Z]\w*Warning\b"),
    "a source line of a warning": re.compile(r"site-packages"),
    "a traceback": re.compile(r"Traceback"),
    "the 'bad lines' wording for gettext entries left out on purpose": re.compile(r"bad lines"),
}
# TODO(lead): remove once the training.py fixes of issue 15 are merged: Keras'
# "Your input ran out of data" UserWarning (and the source line Python prints
# under it) and the `saliency_penalty=0.0000` progress column of a run
# without a saliency penalty are fixed by another branch, not this one.
KNOWN_PENDING = ("Your input ran out of data", "self._interrupted_warning()", "saliency_penalty=0.0000")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Runs a tiny `seq2seq train` on a gettext catalog; returns (returncode, stdout, stderr, pairs written)."""
    root = tmp_path_factory.mktemp("quiet")
    messages = {pair.source: pair.target for pair in generate_pairs("translate", 240, seed=0)}
    messages.update({"%d file\x00%d files": "%d fichier\x00%d fichiers", "menu\x04Close": "Fermer"})
    write_catalog(root / "locale", "xx", "app", messages)
    overrides = [
        "data.corpus=gettext", "data.target_lang=xx", f"data.locale_dir={root / 'locale'}",
        "data.valid_fraction=0.1", "data.test_fraction=0.05", "tokenizer.vocab_size=60",
        "model.embed_dim=8", "model.units=8", "train.epochs=1", "decode.beam_size=1", "decode.max_length=12",
    ]
    argv = [sys.executable, "-m", "seq2seq.cli.main", "train", "--seed", "1", "--out", str(root / "run")]
    for override in overrides:
        argv += ["--set", override]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout, result.stderr, len(messages) - 2


def stderr_lines(stderr: str) -> list[str]:
    """The lines of standard error, each progress-bar refresh (ended by \\r) counted as one."""
    return [line for line in re.split(r"[\r\n]", stderr) if line.strip()]


def test_the_run_succeeds_and_shows_progress(trained):
    code, stdout, stderr, _ = trained
    assert code == 0, stderr[-2000:]
    assert '"bleu"' in stdout
    assert re.search(r"epoch 1/1: +100%", stderr)


def test_stderr_holds_no_tensorflow_keras_or_python_noise(trained):
    _, _, stderr, _ = trained
    lines = [line for line in stderr_lines(stderr) if not any(known in line for known in KNOWN_PENDING)]
    found = [(what, line[:160]) for line in lines for what, pattern in FOREIGN.items() if pattern.search(line)]
    assert found == []


def test_gettext_entries_left_out_are_named_by_kind(trained):
    _, _, stderr, pairs = trained
    headline = next(line for line in stderr_lines(stderr) if line.startswith("gettext: "))
    assert headline.startswith(f"gettext: {pairs} pairs from 1 catalog in ")
    assert headline.endswith("; left out 1 with context, 1 plural")
