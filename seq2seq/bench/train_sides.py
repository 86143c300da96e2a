"""The two sides of `seq2seq bench train`, each run in its own process.

A `Side` builds its data and model, reports "ready", then trains inside one
`fit` call: a callback pauses between batches whenever its slice of
wall-clock time is used up and waits for the parent's next command
("train" for another slice, "finish" to stop, score the validation pairs and
report). See `seq2seq.bench.train` for what is compared.
"""

import dataclasses
import json
import resource
import sys
import time

import keras
import numpy as np

from seq2seq.bench.train import BASELINE_BATCH, BASELINE_LEARNING_RATE, DIM, MAX_LEN, gettext_split
from seq2seq.tokens import PAD_ID

# The validation pairs are scored in batches of this many, in split order.
VALID_BATCH = 64
BASELINE = ("Keras functional Embedding(mask_zero)+LSTM encoder, Embedding(mask_zero)+LSTM decoder, "
            "AdditiveAttention, Concatenate, Dense(vocab); SparseCategoricalCrossentropy(ignore_class=0), "
            "Adam 1e-3, 64 pairs per batch in corpus order padded to the batch maximum, model.fit")


class Side:
    def __init__(self, options: dict):
        from seq2seq.tokenizer import SentencePieceTokenizer

        self.options = options
        keras.utils.set_random_seed(options["seed"])
        split = gettext_split(options["target"], options["locale_dir"])
        self.split = dataclasses.replace(split, train=split.train[: options["train_pairs"] or None])
        self.tokenizer = SentencePieceTokenizer.from_file(options["tokenizer"])
        valid = self.split.valid[: options["valid_pairs"] or None]
        self.valid_batches = list(padded_batches(self._encode(valid), VALID_BATCH))
        self.flops_per_token = self._flops_per_target_token()
        self.steps = 0
        self.tokens = 0.0
        self.train_seconds = 0.0
        self.timed_seconds = 0.0

    # --- the protocol ------------------------------------------------------------

    def serve(self) -> None:
        _send({"real_token_fraction": self.real_token_fraction()})
        command = _receive()
        if command["command"] == "train":
            self.slice_seconds = command["seconds"]
            self.slice_start = self.last_end = time.perf_counter()
            self.fit(_Pauser(self))
        _send(self.finish())

    def pause(self, logs) -> None:
        """Called after every batch: accounts for it; at the end of a slice, waits for the parent."""
        now = time.perf_counter()
        self.steps += 1
        if self.steps > 1:  # the first step holds fit's start-up and the first trace
            self.tokens += self.batch_tokens(self.steps - 1, logs)
            self.timed_seconds += now - self.last_end
        self.last_end = now
        if now - self.slice_start < self.slice_seconds:
            return
        self.train_seconds += now - self.slice_start
        _send({"steps": self.steps})
        command = _receive()
        if command["command"] == "train":
            self.slice_seconds = command["seconds"]
            self.slice_start = self.last_end = time.perf_counter()
        else:
            self.model.stop_training = True

    def finish(self) -> dict:
        import tensorflow as tf

        forward = tf.function(self.logits, reduce_retracing=True, autograph=False)
        total = count = 0.0
        for source, target_in, target_out in self.valid_batches:
            logits = forward(tf.constant(source), tf.constant(target_in))
            real = target_out != PAD_ID
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target_out, logits=logits).numpy()
            total += float(losses[real].sum())
            count += float(real.sum())
        tokens_per_s = self.tokens / self.timed_seconds if self.timed_seconds else 0.0
        return {
            "tokens_per_s": tokens_per_s,
            "flops_per_s": tokens_per_s * self.flops_per_token,
            "val_loss": total / count,
            "val_tokens": int(count),
            "steps": self.steps,
            "target_tokens": int(self.tokens),
            "train_seconds": round(self.train_seconds, 1),
            "timed_seconds": round(self.timed_seconds, 1),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "description": self.description,
        }

    # --- shared helpers ----------------------------------------------------------

    def _encode(self, pairs) -> list:
        return encode_pairs(pairs, self.tokenizer, MAX_LEN)

    def _flops_per_target_token(self) -> float:
        """Training FLOPs (3x forward, real positions only) per target token, over the training split."""
        rows = self._encode(self.split.train[:5000])
        source = np.array([len(r[0]) for r in rows], np.float64)
        target = np.array([len(r[2]) for r in rows], np.float64)
        lstm = 2 * 4 * DIM * (DIM + DIM)  # per step: [embed + units] x [4 units]
        forward = (lstm * (source + target) + self.attention_flops(source, target)
                   + target * self.output_flops_per_token())
        return 3.0 * forward.sum() / target.sum()


def encode_pairs(pairs, tokenizer, max_len: int) -> list:
    """[(source_ids, target_in, target_out)] int32 arrays of `pairs`, cut to `max_len` as the kit cuts."""
    import tensorflow as tf

    from seq2seq.data.pipeline import encode_sources, encode_targets

    rows = []
    for i in range(0, len(pairs), 4096):
        chunk = pairs[i: i + 4096]
        sources = encode_sources(tf.constant([p.source for p in chunk]), tokenizer, max_len)
        target_in, target_out = encode_targets(tf.constant([p.target for p in chunk]), tokenizer, max_len)
        rows += zip(*(_rows(r) for r in (sources, target_in, target_out)))
    return rows


def padded_batches(rows, batch_size: int):
    """Consecutive batches of `batch_size` rows, each padded with PAD_ID to its longest row."""
    for i in range(0, len(rows), batch_size):
        chunk = rows[i: i + batch_size]
        yield tuple(_pad([row[k] for row in chunk]) for k in range(3))


def _pad(sequences) -> np.ndarray:
    out = np.full([len(sequences), max(map(len, sequences))], PAD_ID, np.int32)
    for i, sequence in enumerate(sequences):
        out[i, : len(sequence)] = sequence
    return out


def _rows(ragged) -> list:
    values, splits = ragged.flat_values.numpy(), ragged.row_splits.numpy()
    return [values[a:b] for a, b in zip(splits[:-1], splits[1:])]


class KitSide(Side):
    """The kit's `seq2seq train` path: run defaults (lengths 40), its pipeline, its driver."""

    def __init__(self, options: dict):
        from seq2seq.runs import config_io
        from seq2seq.runs.config import RunConfig

        overrides = config_io.parse_overrides(
            [f"batching.max_source_len={MAX_LEN}", f"batching.max_target_len={MAX_LEN}", *options["kit_set"]])
        self.config = config_io.build(RunConfig, {}, overrides)
        super().__init__(options)
        self.description = f"kit Translator, pipeline and loss, compiled as seq2seq.training.train; {self.config}"

    def real_token_fraction(self) -> float:
        from seq2seq.data.pipeline import expected_real_token_fraction

        train = self.split.train
        return expected_real_token_fraction([p.source for p in train], [p.target for p in train],
                                            self.tokenizer, self.config.batching)

    def attention_flops(self, source, target):
        # Luong "general": keys = memory W, scores and context [tgt, src, units].
        return 2 * DIM * DIM * source + 2 * 2 * DIM * source * target

    def output_flops_per_token(self):
        return 2 * (2 * DIM) * DIM + 2 * DIM * self.tokenizer.vocab_size  # combine + projection

    def fit(self, pauser) -> None:
        """Compiles as `seq2seq.training.train` does (Adam, global clipping) and fits."""
        from seq2seq.data.pipeline import make_translation_dataset
        from seq2seq.runs.translation import build_translator, make_loss

        train_pairs, config = self.split.train, self.config
        dataset = make_translation_dataset([p.source for p in train_pairs], [p.target for p in train_pairs],
                                           self.tokenizer, config.batching, training=True, seed=config.train.seed)
        self.model = build_translator(config, self.tokenizer.vocab_size)
        self.model.compile(
            optimizer=keras.optimizers.Adam(config.train.learning_rate, global_clipnorm=config.train.clipnorm),
            loss=make_loss(config, self.tokenizer, train_pairs, log=_log))
        self.model.fit(dataset.repeat(), epochs=1, steps_per_epoch=10**9, callbacks=[pauser],
                       shuffle=False, verbose=0)  # the pipeline shuffles

    def batch_tokens(self, step, logs) -> float:
        """The model's own `tokens` metric is the epoch's running sum of real target tokens."""
        total = float(logs["tokens"])
        tokens, self._seen = total - getattr(self, "_seen", 0.0), total
        return tokens

    def logits(self, source, target_in):
        return self.model((source, target_in), training=False)["logits"]


class BaselineSide(Side):
    """A plain Keras functional model and `model.fit`, as the tutorials write it."""

    description = BASELINE

    def __init__(self, options: dict):
        super().__init__(options)
        rows = self._encode(self.split.train)
        self.train_batches = list(padded_batches(rows, BASELINE_BATCH))
        self.batch_token_counts = [int((b[2] != PAD_ID).sum()) for b in self.train_batches]

    def real_token_fraction(self) -> float:
        real = sum(int((b[k] != PAD_ID).sum()) for b in self.train_batches for k in (0, 2))
        slots = sum(b[k].size for b in self.train_batches for k in (0, 2))
        return real / slots

    def attention_flops(self, source, target):
        return 2 * 2 * DIM * source * target  # additive scores (counted as a dot) and context

    def output_flops_per_token(self):
        return 2 * (2 * DIM) * self.tokenizer.vocab_size

    def fit(self, pauser) -> None:
        self.model = baseline_model(self.tokenizer.vocab_size)
        self.model.fit(repeated_batches(self.train_batches), epochs=1, steps_per_epoch=10**9,
                       callbacks=[pauser], verbose=0)

    def batch_tokens(self, step, logs) -> float:
        return float(self.batch_token_counts[step % len(self.batch_token_counts)])

    def logits(self, source, target_in):
        return self.model([source, target_in], training=False)


def baseline_model(vocab_size: int) -> keras.Model:
    """The tutorials' model (`BASELINE`), compiled: `([source, target_in]) -> logits`.

    source, target_in: int32 [batch, time] padded with PAD_ID; logits: float32 [batch, tgt_time, vocab_size].
    """
    source = keras.Input((None,), dtype="int32")
    target_in = keras.Input((None,), dtype="int32")
    memory, h, c = keras.layers.LSTM(DIM, return_sequences=True, return_state=True)(
        keras.layers.Embedding(vocab_size, DIM, mask_zero=True)(source))
    decoded = keras.layers.LSTM(DIM, return_sequences=True)(
        keras.layers.Embedding(vocab_size, DIM, mask_zero=True)(target_in), initial_state=[h, c])
    context = keras.layers.AdditiveAttention()([decoded, memory])
    logits = keras.layers.Dense(vocab_size)(keras.layers.Concatenate()([decoded, context]))
    model = keras.Model([source, target_in], logits)
    model.compile(optimizer=keras.optimizers.Adam(BASELINE_LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    return model


def repeated_batches(batches):
    """An endless tf.data.Dataset of `((source, target_in), target_out)` cycling through `padded_batches` output."""
    import tensorflow as tf

    def generate():
        while True:
            for s, t_in, t_out in batches:
                yield (s, t_in), t_out

    spec = tf.TensorSpec([None, None], tf.int32)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=((spec, spec), spec))
    return dataset.prefetch(tf.data.AUTOTUNE)


class _Pauser(keras.callbacks.Callback):
    """Hands control to the side after every training batch (see `Side.pause`)."""

    def __init__(self, side):
        super().__init__()
        self.side = side

    def on_train_batch_end(self, batch, logs=None):
        self.side.pause(logs or {})


def _send(message: dict) -> None:
    sys.stdout.write("@@" + json.dumps(message) + "\n")
    sys.stdout.flush()


def _receive() -> dict:
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("the benchmark's parent process went away")
    return json.loads(line)


def _log(message: str) -> None:
    print(message, file=sys.stderr)


SIDES = {"kit": KitSide, "baseline": BaselineSide}
