"""`seq2seq bench train`: the kit's training path against a plain Keras `model.fit`.

English -> French gettext pairs (the run defaults' split, seed 0), one shared
SentencePiece vocabulary of 8,000, sources and targets cut to 40 pieces
(special token included), embeddings and LSTM units 256 on both sides.

- baseline: what the Keras tutorials write. Embedding(mask_zero) -> LSTM
  encoder (sequences + state); Embedding(mask_zero) -> LSTM decoder from the
  encoder state; `AdditiveAttention()([decoder, encoder])`; Concatenate;
  Dense(vocab). `SparseCategoricalCrossentropy(from_logits=True,
  ignore_class=0)`, Adam 1e-3, batches of 64 pairs in corpus order padded to
  the batch maximum, `model.fit`.
- kit: `Translator` and `MaskedSparseCrossentropy` built from the `seq2seq
  train` defaults (`RunConfig`, lengths 40), batches from
  `make_translation_dataset` (token-budget length buckets), compiled as
  `seq2seq.training.train` compiles (Adam with global clipping) and fitted.

Each side runs in its own subprocess (so peak resident memory is its own),
and the two take turns: the parent lets one train for a slice of wall-clock
time while the other waits inside its `fit` (a callback blocks between
batches), so load from other processes hits both alike. After `--minutes` of
training each (slices summed, start-up and tracing included), both report the
same masked mean-over-real-target-tokens cross-entropy on the same validation
pairs, batched and padded identically.

Throughput counts target tokens (non-padding tokens of `target_out`) over
steady-state steps: each slice's first step (iterator start, tracing) is left
out. Model FLOPs are counted analytically at real positions only (matmuls of
the LSTMs, attention, combine and output layers; 3x forward for a training
step) and divided by a large float32 matmul's measured FLOP/s.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

MAX_LEN = 40
VOCAB_SIZE = 8000
DIM = 256
BASELINE_BATCH = 64
BASELINE_LEARNING_RATE = 1e-3
# Sentences the tokenizer trains on (a sample of the training split, both sides).
TOKENIZER_SENTENCES = 50_000
SPEEDUP_TARGET = 3.0
MEMORY_LIMIT_MB = 2048


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="training wall-clock budget of each side (default: 10)")
    parser.add_argument("--slices", type=int, default=0,
                        help="turns each side takes (default: one per 30 s of budget, at least 1)")
    parser.add_argument("--tokenizer", help="SentencePiece .model (default: train one on the training split)")
    parser.add_argument("--target", default="fr", help="gettext target language (default: fr)")
    parser.add_argument("--locale-dir", default="/usr/share/locale", help="gettext catalog root")
    parser.add_argument("--train-pairs", type=int, default=0, help="training pairs used (default: all)")
    parser.add_argument("--valid-pairs", type=int, default=0, help="validation pairs scored (default: all)")
    parser.add_argument("--vocab-size", type=int, default=VOCAB_SIZE,
                        help=f"vocabulary of the trained tokenizer (default: {VOCAB_SIZE})")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation and batch shuffling")
    parser.add_argument("--kit-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a kit RunConfig field, e.g. batching.tokens_per_batch=8192 (repeatable)")
    parser.add_argument("--skip-baseline", action="store_true", help="run the kit side only")


def run(args) -> dict:
    from seq2seq.errors import UserError

    if not args.minutes > 0:
        raise UserError(f"--minutes must be positive; received {args.minutes}")
    for flag, value in (("--train-pairs", args.train_pairs), ("--valid-pairs", args.valid_pairs),
                        ("--slices", args.slices)):
        if value < 0:
            raise UserError(f"{flag} must be 0 (the default) or positive; received {value}")
    slices = args.slices or max(1, round(args.minutes * 2))
    with tempfile.TemporaryDirectory() as directory:
        tokenizer = args.tokenizer or _train_tokenizer(args, directory)
        peak = measure_matmul_peak()
        common = dict(tokenizer=tokenizer, target=args.target, locale_dir=args.locale_dir,
                      train_pairs=args.train_pairs, valid_pairs=args.valid_pairs, seed=args.seed, kit_set=args.kit_set)
        sides = ["kit"] if args.skip_baseline else ["kit", "baseline"]
        workers = {side: _Worker(side, common) for side in sides}
        try:
            for side in sides:
                workers[side].ready = workers[side].receive()
            budget = args.minutes * 60.0
            for _ in range(slices):
                for side in sides:
                    workers[side].call("train", seconds=budget / slices)
            results = {side: workers[side].call("finish") for side in sides}
        finally:
            for worker in workers.values():
                worker.close()
    return _report(args, results, {s: w.ready for s, w in workers.items()}, peak, slices)


def _report(args, results: dict, ready: dict, peak: float, slices: int) -> dict:
    kit = results["kit"]
    report = {"kit_tokens_per_s": round(kit["tokens_per_s"], 1)}
    baseline = results.get("baseline")
    if baseline:
        report["baseline_tokens_per_s"] = round(baseline["tokens_per_s"], 1)
        report["speedup"] = (round(kit["tokens_per_s"] / baseline["tokens_per_s"], 2)
                             if baseline["tokens_per_s"] else None)  # None: the budget ended before a baseline step
    report["kit_val_loss"] = round(kit["val_loss"], 4)
    if baseline:
        report["baseline_val_loss"] = round(baseline["val_loss"], 4)
    report["minutes_each"] = args.minutes
    report["slices"] = slices
    report["real_token_fraction"] = round(ready["kit"]["real_token_fraction"], 4)
    if baseline:
        report["baseline_real_token_fraction"] = round(ready["baseline"]["real_token_fraction"], 4)
    report["matmul_peak_gflops"] = round(peak / 1e9, 1)
    report["kit_mfu"] = round(kit["flops_per_s"] / peak, 4)
    if baseline:
        report["baseline_mfu"] = round(baseline["flops_per_s"] / peak, 4)
    report["kit_peak_rss_mb"] = round(kit["peak_rss_mb"], 1)
    if baseline:
        report["baseline_peak_rss_mb"] = round(baseline["peak_rss_mb"], 1)
    report["targets"] = {"speedup": SPEEDUP_TARGET, "peak_rss_mb": MEMORY_LIMIT_MB}
    for side, result in results.items():
        report[side] = {k: result[k] for k in ("steps", "target_tokens", "train_seconds", "timed_seconds",
                                               "val_tokens", "description")}
    return report


def _train_tokenizer(args, directory: str) -> str:
    from seq2seq.tokenizer import train_sentencepiece_from_sentences

    train = gettext_split(args.target, args.locale_dir).train[: args.train_pairs or None]
    sentences = [p.source for p in train] + [p.target for p in train]
    return str(train_sentencepiece_from_sentences(sentences, directory, vocab_size=args.vocab_size,
                                                  max_sentences=TOKENIZER_SENTENCES))


def gettext_split(target: str, locale_dir: str):
    """The train/valid/test split `seq2seq train` uses on the gettext corpus."""
    from seq2seq.data.gettext import read_gettext
    from seq2seq.data.split import split_pairs
    from seq2seq.runs.config import DataConfig

    defaults = DataConfig()
    pairs, _ = read_gettext(target, locale_dir=locale_dir)
    return split_pairs(pairs, seed=defaults.seed, valid_fraction=defaults.valid_fraction,
                       test_fraction=defaults.test_fraction)


def measure_matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Float32 FLOP/s of a [n, n] x [n, n] matmul on this machine (best of `repeats`)."""
    import tensorflow as tf

    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


# ----------------------------------------------------------------------------- the parent's side


class _Worker:
    """One side in its own Python process, driven by JSON lines on stdin/stdout."""

    def __init__(self, side: str, common: dict):
        self.side = side
        command = [sys.executable, "-c", "from seq2seq.bench.train import worker_main; worker_main()",
                   json.dumps(dict(common, side=side))]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        self.ready = None

    def call(self, command: str, **fields) -> dict:
        self.process.stdin.write(json.dumps(dict(fields, command=command)) + "\n")
        self.process.stdin.flush()
        return self.receive()

    def receive(self) -> dict:
        for line in self.process.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        raise RuntimeError(f"the {self.side} benchmark process exited with code {self.process.wait()}")

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


# ----------------------------------------------------------------------------- a worker's side


def worker_main() -> None:
    """Entry point of a side's process: builds its data and model, then obeys the parent."""
    options = json.loads(sys.argv[1])
    if options["side"] == "kit":
        from seq2seq.memory import limit_malloc_arenas

        limit_malloc_arenas()  # as the `seq2seq` command does
    from seq2seq.bench import train_sides

    train_sides.SIDES[options["side"]](options).serve()
