"""seq2seq.losses and seq2seq.metrics on every installed Keras backend.

Keras picks its backend once, at import, so each backend runs in its own
subprocess: `run_backend_cases.py` runs the whole case list of
loss_cases.py and metric_cases.py there and writes one JSON report, and each
case is one test here (`test_case[jax-loss_cases.case_...]`). The
subprocesses of all installed backends, and the docs/backends.md example on
JAX, start together at the first test that needs one, so the suite waits for
the slowest, not for their sum. A backend that is not installed is skipped
with the reason; under CI (`CI=true`) a missing TensorFlow or JAX fails
instead, because the `test` extra installs both.
"""

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CASE_MODULES = ("loss_cases", "metric_cases")
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # backend -> module
REQUIRED_IN_CI = ("tensorflow", "jax")
TIMEOUT = 600


def case_names():
    """`module.case_*` names, read from the source without importing Keras."""
    names = []
    for module in CASE_MODULES:
        tree = ast.parse((TESTS / f"{module}.py").read_text(encoding="utf-8"))
        names += [f"{module}.{node.name}" for node in tree.body
                  if isinstance(node, ast.FunctionDef) and node.name.startswith("case_")]
    return names


def example_code():
    """The Python block under docs/backends.md's example heading."""
    page = (ROOT / "docs" / "backends.md").read_text(encoding="utf-8")
    section = page.split("## Example: a Transformer encoder-decoder", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def installed(backend):
    return importlib.util.find_spec(BACKENDS[backend]) is not None


def skip_unless_installed(backend):
    if installed(backend):
        return
    reason = f"KERAS_BACKEND={backend}: {BACKENDS[backend]} is not installed in {sys.prefix}"
    if os.environ.get("CI") == "true" and backend in REQUIRED_IN_CI:
        pytest.fail(f"{reason}, but CI must run it: the 'test' extra installs it", pytrace=False)
    pytest.skip(reason)


class Subprocesses:
    """Starts every run at once, then waits for each on demand."""

    def __init__(self, folder):
        self.folder, self.started, self.finished = folder, {}, {}

    def start_all(self):
        if self.started:
            return
        for backend in BACKENDS:
            if installed(backend):
                report = self.folder / f"{backend}.json"
                self._start(backend, backend,
                            [sys.executable, str(TESTS / "run_backend_cases.py"), str(report)])
        if installed("jax"):
            self._start("example", "jax", [sys.executable, "-c", example_code()])

    def _start(self, name, backend, command):
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.started[name] = subprocess.Popen(
            command, cwd=self.folder, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait(self, name):
        """Returns `(returncode, stdout, stderr)` of a finished run."""
        self.start_all()
        if name not in self.finished:
            process = self.started[name]
            try:
                stdout, stderr = process.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
            self.finished[name] = (process.returncode, stdout, stderr)
        return self.finished[name]

    def report(self, backend):
        returncode, _, stderr = self.wait(backend)
        path = self.folder / f"{backend}.json"
        if returncode != 0 or not path.exists():
            pytest.fail(f"run_backend_cases.py on {backend} exited with {returncode}:\n"
                        f"{stderr[-3000:]}", pytrace=False)
        return json.loads(path.read_text())

    def close(self):
        for process in self.started.values():
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    subprocesses = Subprocesses(tmp_path_factory.mktemp("backends"))
    yield subprocesses
    subprocesses.close()


@pytest.mark.parametrize("case", case_names())
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_case(backend, case, runs):
    skip_unless_installed(backend)
    report = runs.report(backend)
    assert report["backend"] == backend
    failure = report["cases"].get(case, f"{case} did not run (not found in the case modules?)")
    if failure is not None:
        pytest.fail(f"{case} on KERAS_BACKEND={backend}:\n{failure}", pytrace=False)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_importing_losses_and_metrics_does_not_import_tensorflow(backend, runs):
    skip_unless_installed(backend)
    assert runs.report(backend)["tensorflow_imported_by_seq2seq"] is False


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_every_case_ran(backend, runs):
    skip_unless_installed(backend)
    assert sorted(runs.report(backend)["cases"]) == sorted(case_names())


def test_docs_example_trains_a_transformer_on_jax(runs):
    skip_unless_installed("jax")
    returncode, stdout, stderr = runs.wait("example")
    assert returncode == 0, stderr[-3000:]
    phases = re.findall(r"^(\w+): loss ([\d.]+) -> ([\d.]+), accuracy ([\d.]+)$", stdout, flags=re.M)
    assert [name for name, *_ in phases] == ["masked_sparse_crossentropy", "boundary_aware_loss"], stdout
    for name, first, last, _ in phases:
        assert float(last) < 0.8 * float(first), (name, stdout)
    assert float(phases[-1][3]) > 0.5, stdout  # chance is 1 / 8 words


def test_keras_still_has_the_private_mask_accessor():
    """Inside jax.jit Keras keeps masks in a table only its private accessor reads."""
    import seq2seq.losses  # in this process, on conftest's backend (TensorFlow by default)

    assert seq2seq.losses._keras_get_mask is not None, (
        "Keras moved keras.src.backend.get_keras_mask: seq2seq.losses now falls back to the "
        "_keras_mask attribute, which JAX tracers cannot carry, so in a JAX model's fit "
        "and evaluate the losses and metrics ignore Keras masks. Import the accessor from "
        "its new place.")


def test_mask_fallback_reads_the_attribute(monkeypatch):
    import keras

    import seq2seq.losses

    output = keras.layers.Embedding(5, 3, mask_zero=True)(keras.ops.convert_to_tensor([[1, 0]]))
    expected = keras.ops.convert_to_numpy(seq2seq.losses._keras_mask(output))
    monkeypatch.setattr(seq2seq.losses, "_keras_get_mask", None)
    assert (keras.ops.convert_to_numpy(seq2seq.losses._keras_mask(output)) == expected).all()
    assert expected.tolist() == [[True, False]]
