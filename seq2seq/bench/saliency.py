"""`seq2seq bench saliency`: the cost of the saliency-regularized train step against a plain step.

For the classifier and for the translator, three copies of the same model
(same weights, same optimizer, same batch) train side by side:

- plain: the model with Keras' own TensorFlow `train_step` (`keras.Model.train_step`);
- zero_weight: the kit's step with `saliency_weight=0` (must trace the plain step: target <= 1.05);
- penalized: the kit's step with the default weight, i.e. double backpropagation
  through the LSTM (target <= 2.0 times the plain step).

Each model is compiled (`tf.function`, no XLA) and warmed up, then the three are
timed in interleaved rounds of `--steps` `train_on_batch` calls (each round
starting with the next model), so a load spike from another process hits all of
them alike; the reported step times are medians
over rounds. The penalized LSTMs run without cuDNN (no second derivative); on a
CPU the plain ones do too, so the comparison is like for like.
"""

import argparse
import statistics
import time

RATIO_PENALIZED_TARGET = 2.0
RATIO_ZERO_WEIGHT_TARGET = 1.05


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default: 7)")
    parser.add_argument("--steps", type=int, default=5, help="train steps per model per round (default: 5)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model first (default: 3)")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per batch (default: 64)")
    parser.add_argument("--length", type=int, default=40, help="source (and target) tokens (default: 40)")
    parser.add_argument("--vocab-size", type=int, default=8000, help="vocabulary (default: 8000)")
    parser.add_argument("--units", type=int, default=64, help="LSTM units (default: 64)")
    parser.add_argument("--models", default="classifier,translator", help="comma-separated (default: both)")
    parser.add_argument("--seed", type=int, default=0, help="weights and data")


def run(args) -> dict:
    import os

    import tensorflow as tf

    from seq2seq.errors import UserError

    for flag, value in (("--rounds", args.rounds), ("--steps", args.steps), ("--batch-size", args.batch_size),
                        ("--length", args.length), ("--units", args.units)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1; received {value}")
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(names) - {"classifier", "translator"})
    if unknown or not names:
        raise UserError(f"--models takes classifier and/or translator; received {args.models!r}")
    result = {}
    for name in names:
        models, batch = (_classifier_setup if name == "classifier" else _translator_setup)(args)
        result[name] = _measure(models, batch, args)
    first = result[names[0]]
    return {
        "ratio_penalized": first["ratio_penalized"],
        "ratio_zero_weight": first["ratio_zero_weight"],
        **result,
        "targets": {"ratio_penalized": RATIO_PENALIZED_TARGET, "ratio_zero_weight": RATIO_ZERO_WEIGHT_TARGET},
        "setup": {"batch_size": args.batch_size, "length": args.length, "vocab_size": args.vocab_size,
                  "units": args.units, "rounds": args.rounds, "steps_per_round": args.steps,
                  "cpus": os.cpu_count(), "tensorflow": tf.__version__},
    }


def _three(cls, args, loss, **kwargs):
    """plain / zero_weight / penalized copies of `cls(**kwargs)` with the same initial weights."""
    import keras

    from seq2seq.runs.classification import DEFAULT_SALIENCY_WEIGHT

    class PlainStep(cls):
        train_step = keras.Model.train_step  # Keras' own TensorFlow train step

    models = {}
    for name, model_cls, weight in (("plain", PlainStep, 0.0), ("zero_weight", cls, 0.0),
                                    ("penalized", cls, DEFAULT_SALIENCY_WEIGHT)):
        keras.utils.set_random_seed(args.seed)
        model = model_cls(saliency_weight=weight, **kwargs)
        model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=1.0), loss=loss)
        models[name] = model
    return models


def _classifier_setup(args):
    import keras
    import numpy as np

    from seq2seq.models.classifier import Classifier
    from seq2seq.runs.classification import ClassifierModelConfig

    rng = np.random.default_rng(args.seed)
    ids = _padded_ids(rng, args.batch_size, args.length, args.vocab_size)
    annotation = (rng.random(ids.shape) > 0.1).astype(np.float32)
    labels = rng.integers(0, 2, args.batch_size).astype(np.int32)
    models = _three(Classifier, args, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    vocab_size=args.vocab_size, num_classes=2, embed_dim=args.units, units=args.units,
                    bidirectional=True, saliency_reduction=ClassifierModelConfig().saliency_reduction)
    return models, ((ids, annotation), labels)


def _translator_setup(args):
    import numpy as np

    from seq2seq.losses import MaskedSparseCrossentropy
    from seq2seq.models.translator import Translator
    from seq2seq.tokens import END_ID, START_ID

    rng = np.random.default_rng(args.seed)
    source = _padded_ids(rng, args.batch_size, args.length, args.vocab_size)
    target_out = _padded_ids(rng, args.batch_size, args.length, args.vocab_size)
    target_out[np.arange(args.batch_size), (target_out != 0).sum(axis=1) - 1] = END_ID
    target_in = np.concatenate([np.full((args.batch_size, 1), START_ID, np.int32), target_out[:, :-1]], axis=1)
    target_in[target_out == 0] = 0
    annotation = (rng.random(source.shape) > 0.1).astype(np.float32)
    models = _three(Translator, args, MaskedSparseCrossentropy(), vocab_size=args.vocab_size,
                    embed_dim=args.units, units=args.units)
    return models, ((source, target_in, annotation), target_out)


def _padded_ids(rng, batch, length, vocab_size):
    """int32 [batch, length] ids in [4, vocab), each row's tail (up to a quarter) padded with 0."""
    import numpy as np

    ids = rng.integers(4, vocab_size, (batch, length)).astype(np.int32)
    lengths = rng.integers(max(1, length - length // 4), length + 1, batch)
    ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return ids


def _measure(models: dict, batch, args) -> dict:
    x, y = batch
    for model in models.values():
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
    times = {name: [] for name in models}
    names = list(models)
    for round_index in range(args.rounds):
        # Each round starts with the next model, so none always runs first or after the same one.
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            model = models[name]
            start = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(x, y)
            times[name].append((time.perf_counter() - start) / args.steps)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "ratio_penalized": round(median["penalized"] / median["plain"], 3),
        "ratio_zero_weight": round(median["zero_weight"] / median["plain"], 3),
        "step_ms": {name: round(1000 * value, 2) for name, value in median.items()},
    }
