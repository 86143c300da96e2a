"""Start TensorFlow without its start-up lines on the user's terminal.

TensorFlow 2.21 writes oneDNN, CUDA-driver and cuInit messages to file
descriptor 2 before its logger is configured, so `TF_CPP_MIN_LOG_LEVEL` alone
does not silence them. The CLI imports TensorFlow (and tensorflow-text) and
initialises the devices with descriptor 2 pointed at a temporary file; if that
fails, the captured text is replayed so the error is not lost.

One more line would come later: the first time oneDNN's graph pass meets an
integer or boolean op it leaves to Eigen (TensorFlow's ragged concat, Keras'
LSTM mask transposes), it logs "oneDNN supports DT_INT64 only on platforms
with AVX-512 ..." at ERROR level, once per process whatever the dtype. The
start-up here runs one such op, so that line goes to the temporary file too.
"""

import os
import sys
import tempfile


def import_tensorflow_quietly() -> None:
    """Imports tensorflow and tensorflow_text and lists the devices, hiding their start-up output."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf
            import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

            tf.config.list_logical_devices()
            # oneDNN's fallback line (once per process; a 1 x 1 transpose is skipped).
            tf.function(tf.transpose)(tf.zeros([2, 2], tf.int32))
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
