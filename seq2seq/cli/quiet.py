"""Start TensorFlow without its start-up lines on the user's terminal.

TensorFlow 2.21 writes oneDNN, CUDA-driver and cuInit messages to file
descriptor 2 before its logger is configured, so `TF_CPP_MIN_LOG_LEVEL` alone
does not silence them; importing tensorflow-text writes the oneDNN line again.
The CLI imports TensorFlow (and, to export, tensorflow-text) and initialises the devices
with descriptor 2 pointed at a temporary file; if that fails, the captured text
is replayed so the error is not lost.

One more line would come later: the first time oneDNN's graph pass meets an
integer or boolean op it leaves to Eigen (TensorFlow's ragged concat, Keras'
LSTM mask transposes), it logs "oneDNN supports DT_INT64 only on platforms
with AVX-512 ...", at ERROR level, once per process whatever the dtype. The
start-up here runs one such op, so that line goes to the temporary file too.

`import tensorflow` also imports all of Keras (for its optimizers' SavedModel
registrations) and, when it is installed, JAX (TensorFlow Lite's converter
takes `jax.jit` if it can): about 0.9 s of CPU and 150 MB that a command
decoding with a cached graph (`seq2seq.runs.decode_cache`) never uses. Both imports
are guarded by `except ImportError` in TensorFlow, so they are kept out of it
here (`DEFERRED_IMPORTS`); Keras loads on its first real use (`import keras`,
`tf.keras`), JAX too. Measured: docs/performance.md.
"""

import contextlib
import os
import sys
import tempfile

# Packages `import tensorflow` imports inside `try: ... except ImportError`, for code the CLI
# reaches through its own imports (Keras) or never (JAX, for TensorFlow Lite).
DEFERRED_IMPORTS = ("keras", "jax")


def import_tensorflow_quietly(*, text: bool = False) -> None:
    """Imports tensorflow (without Keras and JAX) and, if `text`, tensorflow_text, hiding their start-up output.

    Idempotent: what is imported already is not imported again. Only exports
    need tensorflow-text (`seq2seq.tokenizer` imports it when a graph first
    tokenizes, if no one has).
    """
    need_tensorflow = "tensorflow" not in sys.modules
    need_text = text and "tensorflow_text" not in sys.modules
    if not (need_tensorflow or need_text):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_captured():
        if need_tensorflow:
            _import_tensorflow_deferring()
        if need_text:
            import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)


def _import_tensorflow_deferring() -> None:
    hidden = [name for name in DEFERRED_IMPORTS if name not in sys.modules]
    for name in hidden:  # `import name` then raises ImportError, which TensorFlow skips
        sys.modules[name] = None
    try:
        import tensorflow as tf
    finally:
        for name in hidden:
            del sys.modules[name]
    tf.config.list_logical_devices()
    # oneDNN's fallback line (once per process; a 1 x 1 transpose is skipped).
    tf.function(tf.transpose)(tf.zeros([2, 2], tf.int32))


@contextlib.contextmanager
def _stderr_captured():
    """File descriptor 2 goes to a temporary file; its text is replayed on stderr if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
