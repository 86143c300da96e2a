"""Runs every numeric case of loss_cases.py and metric_cases.py on one Keras backend.

Usage: `KERAS_BACKEND=jax python tests/run_backend_cases.py RESULTS.json`

Keras reads `KERAS_BACKEND` once, at import, so tests/test_backends.py starts
this script once per backend (not once per case: start-up costs seconds).
RESULTS.json gets `{"backend": ..., "keras": ...,
"tensorflow_imported_by_seq2seq": bool, "cases": {"module.case_name":
null (passed) or "traceback"}}`. Exit code 0 even when cases fail: the
caller reports each case as its own test.
"""

import json
import os
import sys
import time
import traceback
from pathlib import Path


def main(results_path):
    # Import the library first, before anything of the tests' own, so that
    # the TensorFlow check below sees only what seq2seq itself pulls in.
    import seq2seq.losses  # noqa: F401
    import seq2seq.metrics  # noqa: F401

    tensorflow_imported = "tensorflow" in sys.modules
    import keras

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import loss_cases
    import metric_cases

    cases, seconds = {}, {}
    for module in (loss_cases, metric_cases):
        for name, case in vars(module).items():
            if not name.startswith("case_"):
                continue
            start = time.perf_counter()
            try:
                case()
                cases[f"{module.__name__}.{name}"] = None
            except Exception:  # noqa: BLE001 - every failure is reported, none stops the run
                cases[f"{module.__name__}.{name}"] = traceback.format_exc()
            seconds[f"{module.__name__}.{name}"] = round(time.perf_counter() - start, 2)
    Path(results_path).write_text(json.dumps({
        "backend": keras.backend.backend(),
        "requested_backend": os.environ.get("KERAS_BACKEND"),
        "keras": keras.__version__,
        "tensorflow_imported_by_seq2seq": tensorflow_imported,
        "cases": cases,
        "seconds": seconds,
    }, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
