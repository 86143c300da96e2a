"""`seq2seq bench decode`: the kit's graph decoders against re-running the model over the prefix.

On the gettext English -> French test split (seed 0, the run defaults' split
fractions), measured side by side in one run on the same length-sorted batches
of source ids (tokenization and detokenization are not timed):

- kit greedy and kit beam-4: `seq2seq.decoding.translate_ids`, one graph per
  batch that encodes once and carries the LSTM state step by step;
- the tutorial baseline, greedy decoding as the Keras tutorials write it (the
  keras.io sequence-to-sequence examples' `decode_sequence`): one sentence at a
  time, each step calls the whole teacher-forced model `translator((source_ids,
  prefix))` eagerly over the growing prefix and keeps the last position's
  argmax. It is slow, so it decodes the first `--tutorial-sentences` sentences
  and its time per sentence is extrapolated (`greedy_speedup` compares times
  per sentence).
- the compiled prefix baseline, the same re-computation done as well as it can
  be: batched like the kit, the forward pass one compiled `tf.function` (it pays
  for the re-computation, not for eager execution), stopping once every row has
  emitted the end token (`greedy_speedup_vs_compiled_prefix`).
  Both baselines forbid the same tokens as the kit (pad, start), so their
  outputs should equal kit greedy's (`baseline_agreement`).

Without `--model` it decodes with the run the README's first command trains
(`runs/en-fr`, relative to the working directory) when there is one: the
outputs end where a trained model ends them, as in real use. With `--fresh`,
or without that run, the translator is freshly initialised at the training
benchmark's sizes (vocabulary 8,000, embeddings and units 256): decoding speed
does not depend on the weights, only on how many steps run, and an untrained
model rarely emits the end token, so every batch runs to `max_length`. (Its
output layer is scaled up so that greedy choices are not float-rounding ties:
see `_sharpen_outputs`.) A trained run's outputs end where the model says, so
both decoders run fewer steps and the speedup is smaller.

With a trained run, `startup` holds `seq2seq translate`'s start-up seconds
(process start to first output) and peak resident memory, each measured in a
process of its own (`seq2seq.bench.startup`); the sentences/s above are after
start-up, in this process.
"""

import argparse
import tempfile
import time

from seq2seq.bench.startup import STARTUP_REPEATS

GREEDY_SPEEDUP_TARGET = 50.0
BEAM4_OVER_GREEDY_TARGET = 2.5
BEAM_SIZE = 4
# The run directory of the README's first command (`recipes/translate_gettext.py`).
DEFAULT_RUN = "runs/en-fr"
# Sentences the on-the-fly tokenizer trains on (a sample of the training split).
TOKENIZER_SENTENCES = 50_000
# The kit decodes each batch this many times (its runs are short, so one
# load spike from another process would otherwise skew them); the baseline once.
KIT_REPEATS = 3
# Output-layer scale of the fresh translator (see `_sharpen_outputs`).
FRESH_LOGIT_SCALE = 300.0
# Sentences the per-sentence eager tutorial baseline decodes (seconds each).
TUTORIAL_SENTENCES = 8
BASELINE = "greedy; full teacher-forced forward over the growing prefix each step (compiled, batched)"
TUTORIAL_BASELINE = ("greedy, one sentence at a time; an eager call of the full teacher-forced model over the "
                     "growing prefix each step (the keras.io seq2seq examples' decode_sequence)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help=f"trained run directory (default: {DEFAULT_RUN} if it holds a run, "
                                        "else a freshly initialised translator)")
    parser.add_argument("--fresh", action="store_true",
                        help="decode with a freshly initialised translator even if a trained run is there")
    parser.add_argument("--tokenizer", help="SentencePiece .model for the fresh translator "
                                            "(default: train one on the training split)")
    parser.add_argument("--target", default="fr", help="gettext target language (default: fr)")
    parser.add_argument("--locale-dir", default="/usr/share/locale", help="gettext catalog root")
    parser.add_argument("--sentences", type=int, default=200, help="test sentences decoded (default: 200)")
    parser.add_argument("--batch-size", type=int, help="sentences per batch (default: the run's, else 64)")
    parser.add_argument("--max-length", type=int, help="longest output in pieces (default: the run's, else 64)")
    parser.add_argument("--vocab-size", type=int, default=8000, help="fresh translator's vocabulary")
    parser.add_argument("--embed-dim", type=int, default=256, help="fresh translator's embedding size")
    parser.add_argument("--units", type=int, default=256, help="fresh translator's LSTM units")
    parser.add_argument("--seed", type=int, default=0, help="weights of the fresh translator")
    parser.add_argument("--tutorial-sentences", type=int, default=TUTORIAL_SENTENCES,
                        help=f"sentences the per-sentence tutorial baseline decodes (default: {TUTORIAL_SENTENCES})")
    parser.add_argument("--repeats", type=int, default=KIT_REPEATS,
                        help=f"kit decodes of each batch, averaged (default: {KIT_REPEATS})")
    parser.add_argument("--startup-repeats", type=int, default=STARTUP_REPEATS,
                        help="`seq2seq translate` processes timed from start to first output, with a trained "
                             f"run (0 = none; default: {STARTUP_REPEATS}; see seq2seq.bench.startup)")


def run(args) -> dict:
    import keras

    from seq2seq.bench.train import gettext_split
    from seq2seq.decoding import Sampling
    from seq2seq.errors import UserError

    for flag, value in (("--sentences", args.sentences), ("--batch-size", args.batch_size),
                        ("--max-length", args.max_length), ("--repeats", args.repeats),
                        ("--tutorial-sentences", args.tutorial_sentences)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1; received {value}")
    if args.startup_repeats < 0:
        raise UserError(f"--startup-repeats must be at least 0; received {args.startup_repeats}")
    keras.utils.set_random_seed(args.seed)  # first: seeding clears TF's kernel cache (tokenizer resources)
    split = gettext_split(args.target, args.locale_dir)
    texts = [pair.source for pair in split.test[: args.sentences]]
    model = chosen_model(args)
    setup = _load_run(model, args) if model else _fresh_translator(args, split.train)
    hypotheses, seconds = _measure(_source_batches(setup, texts), {
        "greedy": (_kit_decoder(setup, beam_size=1), args.repeats),
        "beam4": (_kit_decoder(setup, beam_size=BEAM_SIZE), args.repeats),
        "nbest4": (_kit_decoder(setup, beam_size=BEAM_SIZE, n_best=BEAM_SIZE), args.repeats),
        "sample": (_kit_decoder(setup, beam_size=1, sampling=Sampling(seed=args.seed)), args.repeats),
        "baseline": (_baseline_decoder(setup), 1),
    })
    tutorial_texts = texts[: args.tutorial_sentences]
    tutorial_hypotheses, tutorial_seconds = _measure_tutorial(setup, tutorial_texts)
    report = _report(setup, hypotheses, seconds, kit_repeats=args.repeats)
    greedy_by_text = dict(zip(_batch_order(setup, texts), hypotheses["greedy"]))
    report = _with_tutorial(report, greedy_by_text, tutorial_texts, tutorial_hypotheses, tutorial_seconds)
    return {**report, "startup": _startup(model, texts, args.startup_repeats)}


def _startup(model: str | None, texts: list[str], repeats: int) -> dict | None:
    """`seq2seq translate`'s start-up seconds and peak RSS (`seq2seq.bench.startup`); None without
    a trained run (the command needs a run directory) or with 0 repeats."""
    from seq2seq.bench.startup import startup_report

    if model is None or repeats == 0:
        return None
    return startup_report(model, texts, repeats=repeats)


def _batch_order(setup: dict, texts: list[str]) -> list[str]:
    """The texts in the order `_source_batches` decodes them."""
    from seq2seq.inference import length_sorted_batches

    return [texts[i] for indices in length_sorted_batches(texts, setup["batch_size"]) for i in indices]


def _with_tutorial(report, greedy_by_text, tutorial_texts, tutorial_hypotheses, tutorial_seconds) -> dict:
    """Puts the tutorial baseline first: `greedy_speedup` is against it, per sentence."""
    kit_per_sentence = report["seconds"]["greedy"] / report["sentences"]
    tutorial_per_sentence = tutorial_seconds / len(tutorial_texts)
    agreement = sum(greedy_by_text[t] == h for t, h in zip(tutorial_texts, tutorial_hypotheses)) / len(tutorial_texts)
    compiled = report.pop("greedy_speedup")
    return {
        "greedy_speedup": round(tutorial_per_sentence / kit_per_sentence, 1),
        "greedy_speedup_vs_compiled_prefix": compiled,
        **report,
        "tutorial_sentences_per_s": round(1.0 / tutorial_per_sentence, 3),
        "tutorial_sentences": len(tutorial_texts),
        "tutorial_agreement": round(agreement, 4),
        "tutorial_baseline": TUTORIAL_BASELINE,
    }


def _report(setup: dict, hypotheses: dict, seconds: dict, *, kit_repeats: int) -> dict:
    greedy, baseline = hypotheses["greedy"], hypotheses["baseline"]
    sentences = len(greedy)
    return {
        "greedy_sentences_per_s": round(sentences / seconds["greedy"], 2),
        "beam4_sentences_per_s": round(sentences / seconds["beam4"], 2),
        "baseline_sentences_per_s": round(sentences / seconds["baseline"], 3),
        "greedy_speedup": round(seconds["baseline"] / seconds["greedy"], 1),
        "beam4_over_greedy_time": round(seconds["beam4"] / seconds["greedy"], 2),
        # n-best 4 (beam 4 returning its 4 best; it searches until the 4th finished one is settled) and
        # random sampling (temperature 1, all tokens), each against beam 4's time on the same batches.
        "nbest4_sentences_per_s": round(sentences / seconds["nbest4"], 2),
        "sample_sentences_per_s": round(sentences / seconds["sample"], 2),
        "nbest4_over_beam4_time": round(seconds["nbest4"] / seconds["beam4"], 2),
        "sample_over_beam4_time": round(seconds["sample"] / seconds["beam4"], 2),
        "nbest4_best_equals_beam4": round(sum(a == b for a, b in zip(hypotheses["nbest4"], hypotheses["beam4"]))
                                          / sentences, 4),
        "targets": {"greedy_speedup": GREEDY_SPEEDUP_TARGET, "beam4_over_greedy_time": BEAM4_OVER_GREEDY_TARGET},
        "sentences": sentences,
        "batch_size": setup["batch_size"],
        "max_length": setup["max_length"],
        "max_source_len": setup["max_source_len"],
        "length_penalty": setup["length_penalty"],
        "mean_greedy_output_len": round(sum(map(len, greedy)) / sentences, 1),
        "baseline_agreement": round(sum(a == b for a, b in zip(greedy, baseline)) / sentences, 4),
        "seconds": {name: round(value, 2) for name, value in seconds.items()},
        "kit_repeats": kit_repeats,
        "model": setup["description"],
        "baseline": BASELINE,
    }


# ----------------------------------------------------------------------------- setup


def chosen_model(args) -> str | None:
    """The run directory to decode with: `--model`, else `DEFAULT_RUN` if it holds a trained
    model and `--fresh` is not given; None = a freshly initialised translator."""
    from pathlib import Path

    if args.model:
        return args.model
    if not args.fresh and (Path(DEFAULT_RUN) / "model.keras").is_file():
        return DEFAULT_RUN
    return None


def _load_run(model: str, args) -> dict:
    from seq2seq.runs.translation import load_run

    run = load_run(model)
    decode = run.config.decode
    return dict(
        translator=run.translator, tokenizer=run.tokenizer,
        max_source_len=run.config.batching.max_source_len,
        max_length=args.max_length or decode.max_length,
        batch_size=args.batch_size or decode.batch_size,
        length_penalty=decode.length_penalty,
        description=f"trained run {model}",
    )


def _fresh_translator(args, train_pairs) -> dict:
    from seq2seq.data.batching import BatchingConfig
    from seq2seq.models.translator import Translator
    from seq2seq.runs.config import DecodeConfig
    from seq2seq.tokenizer import SentencePieceTokenizer, train_sentencepiece_from_sentences

    if args.tokenizer:
        tokenizer = SentencePieceTokenizer.from_file(args.tokenizer)
    else:
        with tempfile.TemporaryDirectory() as directory:
            sentences = [p.source for p in train_pairs] + [p.target for p in train_pairs]
            tokenizer = SentencePieceTokenizer.from_file(train_sentencepiece_from_sentences(
                sentences, directory, vocab_size=args.vocab_size, max_sentences=TOKENIZER_SENTENCES))
    translator = Translator(tokenizer.vocab_size, embed_dim=args.embed_dim, units=args.units)
    if not translator.built:
        translator.build()
    _sharpen_outputs(translator)
    decode = DecodeConfig()
    return dict(
        translator=translator, tokenizer=tokenizer,
        max_source_len=BatchingConfig().max_source_len,
        max_length=args.max_length or decode.max_length,
        batch_size=args.batch_size or decode.batch_size,
        length_penalty=decode.length_penalty,
        description=(f"fresh Translator(vocab_size={tokenizer.vocab_size}, embed_dim={args.embed_dim}, "
                     f"units={args.units})"),
    )


def _sharpen_outputs(translator, factor: float = FRESH_LOGIT_SCALE) -> None:
    """Scales a fresh translator's output layer so its logits are not near-ties.

    Freshly initialised, the top two logits of a step differ by ~1e-6: the
    greedy choice among them is decided by float rounding (the kit's search
    ranks prefix sums), and `baseline_agreement` would measure noise. Scaling
    the output kernel changes no shape or op, so no timing.
    """
    kernel = translator.output_projection.kernel
    kernel.assign(kernel * factor)


def _source_batches(setup: dict, texts: list[str]) -> list:
    """Padded int32 source ids [batch, src_time], batched as `translate_batches` batches."""
    from seq2seq.inference import length_sorted_batches, source_ids

    return [
        source_ids(setup["tokenizer"], [texts[i] for i in indices], setup["max_source_len"])
        for indices in length_sorted_batches(texts, setup["batch_size"])
    ]


# ----------------------------------------------------------------------------- decoders


def _kit_decoder(setup: dict, beam_size: int, n_best: int | None = None, sampling=None):
    """Token ids [batch, time] of `translate_ids` with these options (with `n_best`: the best of each row's)."""
    from seq2seq.decoding import translate_ids

    def decode(source_ids):
        token_ids = translate_ids(setup["translator"], source_ids, beam_size=beam_size, n_best=n_best,
                                  sampling=sampling, max_length=setup["max_length"],
                                  length_penalty=setup["length_penalty"]).token_ids
        return token_ids if n_best is None else token_ids[:, 0]

    return decode


def _baseline_decoder(setup: dict):
    """Greedy decoding that re-runs the teacher-forced model over the whole prefix each step."""
    import tensorflow as tf

    from seq2seq.decoding import forbidden_token_bias
    from seq2seq.tokens import END_ID, PAD_ID, START_ID

    translator, max_length = setup["translator"], setup["max_length"]
    ids = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[ids, ids])
    def next_tokens(source_ids, prefix):
        logits = translator((source_ids, prefix), training=False)["logits"][:, -1, :]  # [batch, vocab]
        logits = tf.cast(logits, tf.float32) + forbidden_token_bias(tf.shape(logits)[-1])
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    def decode(source_ids):
        batch = tf.shape(source_ids)[0]
        prefix = tf.fill([batch, 1], START_ID)
        done = tf.zeros([batch], tf.bool)
        for _ in range(max_length):
            token = tf.where(done, PAD_ID, next_tokens(source_ids, prefix))
            prefix = tf.concat([prefix, token[:, None]], axis=1)
            done |= token == END_ID
            if bool(tf.reduce_all(done)):
                break
        return prefix[:, 1:]

    return decode


def _measure_tutorial(setup: dict, texts: list[str]) -> tuple[list, float]:
    """Decodes `texts` one at a time the tutorials' way; returns hypotheses and total seconds."""
    import tensorflow as tf

    from seq2seq.decoding import forbidden_token_bias
    from seq2seq.inference import source_ids
    from seq2seq.tokens import END_ID, START_ID

    translator, max_length = setup["translator"], setup["max_length"]
    forbidden = forbidden_token_bias(setup["tokenizer"].vocab_size)

    def decode(source):
        prefix = [START_ID]
        for _ in range(max_length):
            logits = translator((source, tf.constant([prefix], tf.int32)), training=False)["logits"]
            token = int(tf.argmax(tf.cast(logits[0, -1], tf.float32) + forbidden))
            prefix.append(token)
            if token == END_ID:
                break
        return tuple(prefix[1:])

    sources = [source_ids(setup["tokenizer"], [text], setup["max_source_len"]) for text in texts]
    decode(sources[0])  # the first eager call builds what it builds
    started = time.perf_counter()
    hypotheses = [decode(source) for source in sources]
    return hypotheses, time.perf_counter() - started


def _measure(batches: list, decoders: dict) -> tuple[dict, dict]:
    """Decodes every batch with every decoder; returns hypotheses and seconds per decoder.

    `decoders` maps a name to `(decode, repeats)`; a decoder's seconds are its
    mean over repeats, summed over batches. Each decoder is first warmed up
    (traced) on the smallest batch; then the decoders take turns batch by
    batch, so that load from other processes falls on all of them alike. A
    hypothesis is its token ids up to and including the first end token.
    """
    for decode, _ in decoders.values():
        decode(batches[-1]).numpy()  # trace; the last batch is the smallest
    outputs = {name: [] for name in decoders}
    seconds = dict.fromkeys(decoders, 0.0)
    for source_ids in batches:
        for name, (decode, repeats) in decoders.items():
            started = time.perf_counter()
            for _ in range(repeats):
                token_ids = decode(source_ids).numpy()
            seconds[name] += (time.perf_counter() - started) / repeats
            outputs[name].append(token_ids)
    return {name: _hypotheses(batches_ids) for name, batches_ids in outputs.items()}, seconds


def _hypotheses(batches_ids: list) -> list[tuple[int, ...]]:
    from seq2seq.tokens import END_ID

    rows = [row for token_ids in batches_ids for row in token_ids.tolist()]
    return [tuple(row[: row.index(END_ID) + 1] if END_ID in row else row) for row in rows]
