"""`seq2seq bench classifier`: 10,000 predictions with attention, batched, from one forward pass.

The model is the mission's: a BiLSTM (64 units per direction, embeddings 64)
with feed-forward attention pooling, freshly initialised (speed does not depend
on the weights), on 10,000 sequences of 100 token ids each. Measured:

- `seconds_10k`: `Classifier.predict_with_attention` on all of them (length-sorted
  batches, one compiled graph per batch, probabilities and attention together),
  the median of `--repeats` runs after one warm-up run; `first_call_seconds`
  is the warm-up run, which pays tracing and XLA compilation once per process;
- the naive way for contrast: `model.predict` one example at a time, timed on
  `--naive-examples` examples and extrapolated to 10,000 (the user's two-pass
  version took about 20 minutes for 10,000).

Token-id inputs: tokenizing is not timed.
"""

import argparse
import statistics
import time

SECONDS_10K_TARGET = 2.0
ORIGINAL_TWO_PASS_SECONDS = 20 * 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--examples", type=int, default=10_000, help="sequences predicted (default: 10,000)")
    parser.add_argument("--length", type=int, default=100, help="tokens per sequence (default: 100)")
    parser.add_argument("--units", type=int, default=64, help="LSTM units per direction (default: 64)")
    parser.add_argument("--vocab-size", type=int, default=8000, help="vocabulary (default: 8000)")
    parser.add_argument("--batch-size", type=int, default=1024, help="sequences per graph call (default: 1024)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up (default: 3)")
    parser.add_argument("--naive-examples", type=int, default=20,
                        help="examples timed one by one with model.predict (default: 20; 0 = skip)")
    parser.add_argument("--seed", type=int, default=0, help="weights and data")


def run(args) -> dict:
    import os

    import keras
    import numpy as np
    import tensorflow as tf

    from seq2seq.errors import UserError
    from seq2seq.models.classifier import Classifier

    for flag, value in (("--examples", args.examples), ("--length", args.length), ("--units", args.units),
                        ("--batch-size", args.batch_size), ("--repeats", args.repeats)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1; received {value}")
    keras.utils.set_random_seed(args.seed)
    model = Classifier(args.vocab_size, 2, embed_dim=args.units, units=args.units, bidirectional=True)
    ids = np.random.default_rng(args.seed).integers(4, args.vocab_size, (args.examples, args.length)).astype(np.int32)

    first_call, result = _timed(lambda: model.predict_with_attention(ids, batch_size=args.batch_size))
    seconds = [_timed(lambda: model.predict_with_attention(ids, batch_size=args.batch_size))[0]
               for _ in range(args.repeats)]
    seconds_10k = statistics.median(seconds) * 10_000 / args.examples
    report = {
        "seconds_10k": round(seconds_10k, 3),
        "target_seconds_10k": SECONDS_10K_TARGET,
        "first_call_seconds": round(first_call, 3),
        "runs_seconds": [round(s, 3) for s in seconds],
        "speedup_over_original_two_pass": round(ORIGINAL_TWO_PASS_SECONDS / seconds_10k, 1),
        "attention_rows_sum_to_one": bool(np.allclose(result["attention"].sum(axis=1), 1.0, atol=1e-4)),
    }
    if args.naive_examples > 0:
        naive = _naive_seconds_per_example(model, ids[: args.naive_examples])
        report["naive_predict_seconds_10k_extrapolated"] = round(naive * 10_000, 1)
        report["naive_examples_timed"] = min(args.naive_examples, args.examples)
    report["setup"] = {"examples": args.examples, "length": args.length, "units": args.units,
                       "bidirectional": True, "embed_dim": args.units, "vocab_size": args.vocab_size,
                       "batch_size": args.batch_size, "cpus": os.cpu_count(), "tensorflow": tf.__version__}
    return report


def _timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def _naive_seconds_per_example(model, ids) -> float:
    """Mean seconds of `model.predict` on one example at a time (after one warm-up call)."""
    model.predict(ids[:1], verbose=0)
    start = time.perf_counter()
    for row in ids:
        model.predict(row[None, :], verbose=0)
    return (time.perf_counter() - start) / len(ids)
