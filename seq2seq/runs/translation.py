"""Translator runs: corpus to trained model, and a run directory back to translations.

A run directory holds everything a run needs to be resumed, used or exported:

    config.toml      the resolved RunConfig (rebuilds the run)
    tokenizer.model  the SentencePiece model shared by source and target
    casing.json      first words read lowercased (`seq2seq.casing`), learned from the training sources
    model.keras      the trained Translator (best by train.best_metric: validation loss, BLEU or chrF)
    metrics.json     test-split BLEU / chrF / exact match, training summary
    checkpoints/     the last train.keep_checkpoints step checkpoints (resume; `seq2seq average`)
    best/            the best epoch's weights
    logs/            TensorBoard scalars (and, selecting by BLEU/chrF, sample translations)
    decode_cache/    decoding graphs `seq2seq translate` saved and reloads (`seq2seq.runs.decode_cache`)

`train_run` writes it; `load_run` reads it back for `translate_texts`,
`evaluate_run` and export.
"""

import dataclasses
import functools
import json
import time
from pathlib import Path

from seq2seq.runs import config_io
from seq2seq.atomic import atomic_write_text
from seq2seq.data.reader import Pair, read_corpus
from seq2seq.data.split import Split, split_pairs
from seq2seq.errors import UserError
from seq2seq.runs.config import RESUMABLE_TRAIN_FIELDS, RunConfig, driver_config
from seq2seq.runs.directory import CONFIG_FILE, prepare_any_run_dir

TOKENIZER_FILE = "tokenizer.model"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
CASING_FILE = "casing.json"
# How to make a new run, for the messages about a damaged one.
RETRAIN = "seq2seq train --config FILE --out DIR"
# Translation reads sources up to this many times the longest training source (`decode_options`).
DECODE_SOURCE_FACTOR = 2
# Validation sentences decoded after each epoch to watch for end-token collapse.
PROBE_SIZE = 32


@dataclasses.dataclass
class TranslationRun:
    """A loaded run: the resolved config, the tokenizer and the trained translator."""

    config: RunConfig
    tokenizer: object  # seq2seq.tokenizer.SentencePieceTokenizer
    translator: object  # seq2seq.models.translator.Translator
    directory: Path
    casing: object = None  # seq2seq.casing.FirstWordCasing, or None (also when decode.first_word_casing is off)


# ----------------------------------------------------------------------------- data


def load_splits(config: RunConfig, log=print) -> Split:
    """Reads the configured corpus and splits it into train/valid/test pairs.

    Logs what the read left out: for gettext catalogs one line by kind of
    entry (plural, with context, ...: left out on purpose); for TSV and
    aligned files the count of bad lines, which `seq2seq data check` details.
    """
    data = config.data
    if data.corpus == "gettext":
        from seq2seq.data.gettext import read_gettext

        pairs, report = read_gettext(data.target_lang, locale_dir=data.locale_dir)
        log(report.headline())
    elif data.corpus == "generated":
        from seq2seq.data.generated import generate_pairs

        pairs = generate_pairs(data.task, data.generated_pairs, data.seed)
    else:
        target = data.target_path if data.corpus == "aligned" else None
        pairs, report = read_corpus(data.path, fmt="aligned" if target else "tsv", target_path=target)
        if report.total_skipped:
            log(f"skipped {report.total_skipped} bad lines (run `seq2seq data check` for details)")
    split = split_pairs(pairs, seed=data.seed, valid_fraction=data.valid_fraction,
                        test_fraction=data.test_fraction)
    if data.max_train_words:
        short = [pair for pair in split.train if len(pair.source.split()) <= data.max_train_words]
        split = Split(short, split.valid, split.test)
    if data.max_train_pairs and len(split.train) > data.max_train_pairs:
        split = Split(split.train[: data.max_train_pairs], split.valid, split.test)
    log(f"data: {len(split.train)} train, {len(split.valid)} valid, {len(split.test)} test pairs")
    return split


def protect_pairs(config: RunConfig, pairs: list[Pair]) -> list[Pair]:
    """`pairs` with their placeholders replaced by reserved tokens (`seq2seq.placeholders.protect_pair`),
    unless `decode.protect_placeholders` is off."""
    from seq2seq.placeholders import protect_pair

    if not config.decode.protect_placeholders:
        return pairs
    return [Pair(*protect_pair(pair.source, pair.target)) for pair in pairs]


def prepare_tokenizer(config: RunConfig, train_pairs: list[Pair], run_dir: Path) -> Path:
    """The run's SentencePiece model: kept, copied from `[tokenizer] model`, or trained on both sides.

    `vocab_size` is an upper bound (as for classifiers): a corpus with fewer
    distinct pieces (number words, a small catalog) gets a smaller vocabulary
    instead of an error.
    """
    from seq2seq.tokenizer import prepare_run_tokenizer

    sentences = [pair.source for pair in train_pairs] + [pair.target for pair in train_pairs]
    return prepare_run_tokenizer(run_dir, config.tokenizer, sentences, hard_vocab_limit=False)


def resolve_data_defaults(config: RunConfig, train_pairs: list[Pair], run_dir: Path, log=print):
    """Chooses the settings left at 0 from the training pairs (`seq2seq.runs.data_defaults`).

    Trains (or keeps) the run's tokenizer on all of `train_pairs`, since the
    length cuts count its pieces; with `data.long_pairs="drop"` the pairs
    longer than the cuts are then left out, and the epochs are chosen from the
    pairs kept. Returns `(resolved RunConfig, SentencePieceTokenizer, the
    training pairs)` and writes the resolved config to `run_dir/config.toml`,
    which is what `load_run` reads back.
    """
    from seq2seq.runs import data_defaults as auto
    from seq2seq.data.batching import model_lengths
    from seq2seq.data.pipeline import count_pieces
    from seq2seq.tokenizer import SentencePieceTokenizer

    resolved = config
    if auto.is_auto(config, "tokenizer", "vocab_size") and not config.tokenizer.model:
        characters = auto.count_characters(text for pair in train_pairs for text in (pair.source, pair.target))
        size, reason = auto.choose_vocab_size(len(train_pairs), characters)
        resolved = auto.with_value(resolved, "tokenizer", "vocab_size", size)
        log(reason)
    tokenizer = SentencePieceTokenizer.from_file(prepare_tokenizer(resolved, train_pairs, run_dir))
    if auto.is_auto(resolved, "tokenizer", "vocab_size"):
        resolved = auto.with_value(resolved, "tokenizer", "vocab_size", tokenizer.vocab_size)
    drop = resolved.data.long_pairs == "drop"
    source_counts, target_counts = None, None  # pieces per text, counted once for the cuts, drop and epochs
    if auto.is_auto(resolved, "batching", "max_source_len") or drop:
        source_counts = count_pieces([p.source for p in train_pairs], tokenizer)
    if auto.is_auto(resolved, "batching", "max_target_len") or auto.is_auto(resolved, "train", "epochs") or drop:
        target_counts = count_pieces([p.target for p in train_pairs], tokenizer)
    if auto.is_auto(resolved, "batching", "max_source_len"):
        cut, reason = auto.choose_length_cut(source_counts, "source")
        resolved = auto.with_value(resolved, "batching", "max_source_len", cut)
        log(reason)
    if auto.is_auto(resolved, "batching", "max_target_len"):
        cut, reason = auto.choose_length_cut(target_counts, "target")
        resolved = auto.with_value(resolved, "batching", "max_target_len", cut)
        log(reason)
    if drop:
        keep = pairs_within_cuts(source_counts, target_counts, resolved.batching, log)
        train_pairs, target_counts = [pair for pair, kept in zip(train_pairs, keep) if kept], target_counts[keep]
    if auto.is_auto(resolved, "train", "epochs"):
        tokens = int(model_lengths(target_counts, resolved.batching.max_target_len).sum())
        epochs, reason = auto.choose_epochs(tokens)
        resolved = auto.with_value(resolved, "train", "epochs", epochs)
        log(reason)
    if resolved != config:
        atomic_write_text(Path(run_dir) / CONFIG_FILE, config_io.to_toml(resolved))
    return resolved, tokenizer, train_pairs


def pairs_within_cuts(source_counts, target_counts, batching, log=print):
    """[pairs] bool: which pairs fit both length cuts, from their pieces per source and target ([pairs] ints).

    A text fits when its pieces plus END number at most `max_source_len`
    (sources) or `max_target_len` (targets), so nothing of a kept pair is cut.
    Logs how many do not; raises ValueError when none fits.
    """
    keep = (source_counts + 1 <= batching.max_source_len) & (target_counts + 1 <= batching.max_target_len)
    if len(keep) and not keep.any():
        raise ValueError(
            f"Every training pair is longer than the length cuts (batching.max_source_len="
            f"{batching.max_source_len}, max_target_len={batching.max_target_len}), so "
            f"data.long_pairs='drop' leaves none. Raise the cuts, leave them at 0 (chosen from the data) "
            f"or set data.long_pairs=cut.")
    log(f"long pairs: {int((~keep).sum()):,} of {len(keep):,} training pairs longer than the cuts "
        f"({batching.max_source_len}/{batching.max_target_len}) left out")
    return keep


# ----------------------------------------------------------------------------- training


def build_translator(config: RunConfig, vocab_size: int):
    """A `Translator` with the configured sizes."""
    from seq2seq.models.translator import Translator

    model = config.model
    return Translator(
        vocab_size=vocab_size, embed_dim=model.embed_dim, units=model.units,
        encoder_layers=model.encoder_layers, bidirectional=model.bidirectional,
        attention=model.attention, scaled_attention=model.scaled_attention, input_feeding=model.input_feeding,
        memory_embeddings=model.memory_embeddings, dropout=model.dropout, saliency_weight=model.saliency_weight,
        dtype=model.precision,
    )


def make_loss(config: RunConfig, tokenizer, train_pairs: list[Pair], log=print):
    """The configured task loss; the end-token weight is computed from the targets when asked (0)."""
    from seq2seq.losses import BoundaryAwareLoss, MaskedSparseCrossentropy, end_token_class_weights
    from seq2seq.tokens import END_ID

    train = config.train
    if train.loss == "boundary":
        return BoundaryAwareLoss()
    class_weights = None
    if train.end_token_weight != 1.0:
        class_weights = [1.0] * tokenizer.vocab_size
        if train.end_token_weight > 0:
            class_weights[END_ID] = train.end_token_weight
        else:
            targets = _target_ids(tokenizer, [pair.target for pair in train_pairs])
            class_weights = [float(w) for w in end_token_class_weights(targets, tokenizer.vocab_size)]
        log(f"end-token weight: {class_weights[END_ID]:.4f}")
    return MaskedSparseCrossentropy(label_smoothing=train.label_smoothing, class_weights=class_weights)


def train_run(config: RunConfig, run_dir, *, progress: bool = True, log=print, decode_cache: bool = False) -> dict:
    """Trains (or resumes) the run in `run_dir`, evaluates it on the test split, saves it.

    With `decode_cache` (single-device runs; ignored with a distribution
    strategy), the decoding graph for the run's decode settings is traced
    once, saved in the run directory (a copy of the weights per variant) and used for the test split
    (`seq2seq.runs.decode_cache.write_cache`), so that the first `seq2seq
    translate` of the run starts as fast as later ones.
    Returns the metrics also written to `run_dir/metrics.json`.
    """
    import keras

    import tensorflow as tf

    from seq2seq.data.pipeline import make_translation_dataset
    from seq2seq.distribution import distribution_strategy
    from seq2seq.training import train

    strategy = distribution_strategy(config.train.strategy)  # multiworker: before other TF work
    config = with_saved_choices(config, run_dir)
    run_dir = prepare_run_dir(config, Path(run_dir), log)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.train.seed)
    split = load_splits(config, log)
    train_pairs, valid_pairs = protect_pairs(config, split.train), protect_pairs(config, split.valid)
    config, tokenizer, train_pairs = resolve_data_defaults(config, train_pairs, run_dir, log)
    log("config:\n" + config_io.to_toml(config))
    casing = _used_casing(config, learn_casing(split.train, run_dir))
    datasets = [
        make_translation_dataset([p.source for p in pairs], [p.target for p in pairs], tokenizer,
                                 config.batching, training=training, seed=config.train.seed)
        for pairs, training in ((train_pairs, True), (valid_pairs, False))
    ]
    if strategy.num_replicas_in_sync > 1:
        log(f"training on {strategy.num_replicas_in_sync} replicas ({config.train.strategy}); "
            "each batch is split between them")
    with strategy.scope():
        translator = build_translator(config, tokenizer.vocab_size)
    train_config = driver_config(config.train, run_dir, progress=progress, **_monitor(config))
    started = time.perf_counter()
    summary = train(translator, *datasets, loss=make_loss(config, tokenizer, split.train, log),
                    config=train_config,
                    callbacks=_training_callbacks(config, translator, tokenizer, split, casing, run_dir))
    translator.save(run_dir / MODEL_FILE)
    run = TranslationRun(config, tokenizer, translator, run_dir, casing)
    translate = None
    if decode_cache and strategy.num_replicas_in_sync == 1 and config.train.strategy == "none":
        from seq2seq.runs.decode_cache import write_cache

        try:
            translate = functools.partial(write_cache(run, log=log).translate, progress=progress)
        except Exception as error:  # the graph is a convenience: never lose the test scores to it
            log(f"note: the decoding graph was not saved ({error}); the first translate of this run traces it")
    metrics = {
        "test": evaluate_pairs(run, split.test, progress=progress, translate=translate),
        "training": {key: summary[key] for key in ("epochs", "best_epoch", "best_metric", "best_value",
                                                   "best_val_loss", "stopped_early")},
        "training_seconds": round(time.perf_counter() - started, 1),
    }
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _monitor(config: RunConfig) -> dict:
    """The driver's `monitor` and `monitor_mode` for `train.best_metric`."""
    if config.train.best_metric == "loss":
        return dict(monitor="val_loss", monitor_mode="min")
    return dict(monitor=f"val_{config.train.best_metric}", monitor_mode="max")


def _training_callbacks(config: RunConfig, translator, tokenizer, split: Split, casing, run_dir: Path) -> list:
    """The end-token collapse monitor on a small validation probe, the BLEU/chrF scorer of the
    validation sample when `train.best_metric` asks for it, and the time budget.

    The collapse monitor stays first and the scorer comes after it: the checkpoints name the
    callbacks' `resume_state` by position.
    """
    from seq2seq.callbacks import CollapseMonitor, SelectionScorer, TimeBudget
    from seq2seq.training import LOG_DIR

    probes = split.valid[:PROBE_SIZE]

    def greedy(sources):
        run = TranslationRun(config, tokenizer, translator, Path("."), casing)
        return translate_texts(run, sources, beam_size=1)

    def attention_picture(sources):
        run = TranslationRun(config, tokenizer, translator, Path("."), casing)
        return attention_png(attention_alignments(run, sources, beam_size=1))

    callbacks = [CollapseMonitor(greedy, [p.source for p in probes], [p.target for p in probes],
                                 padding_masked=True)]
    if config.train.best_metric != "loss":
        if not split.valid:
            raise UserError(f"train.best_metric = {config.train.best_metric!r} decodes validation pairs, and the "
                            "validation split is empty; raise data.valid_fraction or set train.best_metric = 'loss'")
        sample = split.valid[: config.train.selection_sentences]
        callbacks.append(SelectionScorer(greedy, [p.source for p in sample], [p.target for p in sample],
                                         log_dir=str(run_dir / LOG_DIR), picture_fn=attention_picture))
    if config.train.max_minutes:
        callbacks.append(TimeBudget(config.train.max_minutes * 60))
    return callbacks


def prepare_run_dir(config: RunConfig, run_dir: Path, log=print) -> Path:
    """Creates the run directory and checks that it takes writes and has room (before any data is read).

    Refuses to resume a run that had another config, except for the
    `RESUMABLE_TRAIN_FIELDS` (for example a lower learning rate after a NaN).
    """
    return prepare_any_run_dir(with_saved_choices(config, run_dir), run_dir, RESUMABLE_TRAIN_FIELDS, log)


def with_saved_choices(config: RunConfig, run_dir) -> RunConfig:
    """`config` with the settings a saved run in `run_dir` chose from its data, for those left at 0."""
    from seq2seq.runs.data_defaults import fill_from

    saved = Path(run_dir) / CONFIG_FILE
    if not saved.is_file():
        return config
    return fill_from(config, config_io.build(RunConfig, config_io.load_toml(saved)))


# ----------------------------------------------------------------------------- using a run


def load_run(run_dir) -> TranslationRun:
    """Loads the config, tokenizer, trained translator and casing of a run directory.

    A file that is missing, empty, cut short or from another run (a tokenizer
    whose vocabulary is not the model's, a config whose sizes are not the
    model's) is a one-line `UserError` naming it and the fix (`seq2seq.runs.files`).
    """
    from seq2seq.models.translator import Translator
    from seq2seq.runs.files import RunFiles

    files = RunFiles(Path(run_dir), "a trained run directory", RETRAIN)
    files.require((CONFIG_FILE, TOKENIZER_FILE, MODEL_FILE))
    config = files.config(CONFIG_FILE, RunConfig)
    tokenizer = files.tokenizer(TOKENIZER_FILE)
    translator = files.model(MODEL_FILE, Translator)
    files.check_vocab(MODEL_FILE, translator.vocab_size, TOKENIZER_FILE, tokenizer.vocab_size)
    files.check_model_config(MODEL_FILE, translator, CONFIG_FILE, "model", config.model)
    casing = _load_casing(files) if config.decode.first_word_casing else None
    return TranslationRun(config, tokenizer, translator, files.directory, casing)


def learn_casing(train_pairs: list[Pair], run_dir: Path):
    """Learns the first-word casing of the training sources and writes it to `run_dir/casing.json`."""
    from seq2seq.casing import FirstWordCasing

    casing = FirstWordCasing.learn(pair.source for pair in train_pairs)
    words = json.dumps({"lower_first_words": casing.words}, ensure_ascii=False)
    atomic_write_text(run_dir / CASING_FILE, words + "\n")
    return casing


def _load_casing(files):
    """The run's `FirstWordCasing` from casing.json (`files`: the run's `seq2seq.runs.files.RunFiles`)."""
    from seq2seq.casing import FirstWordCasing

    if not (files.directory / CASING_FILE).is_file():
        raise files.error(CASING_FILE, "is missing, and config.toml has decode.first_word_casing = true",
                          f"retrain the run (`{RETRAIN}`), or set first_word_casing = false under [decode] "
                          "in config.toml to decode without it")
    words = files.json(CASING_FILE)
    words = words.get("lower_first_words") if isinstance(words, dict) else None
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise files.error(CASING_FILE, 'does not hold {"lower_first_words": [words]}')
    try:
        return FirstWordCasing(words)
    except ValueError as error:
        raise files.error(CASING_FILE, str(error)) from None


def _used_casing(config: RunConfig, casing):
    """`casing`, or None when the run's `decode.first_word_casing` is off."""
    return casing if config.decode.first_word_casing else None


def translate_texts(run: TranslationRun, texts: list[str], *, beam_size=None, max_length=None,
                    batch_size=None, progress: bool = False) -> list[str]:
    """Translates `texts` in length-sorted batches; returns strings in input order."""
    from seq2seq.inference import translate_batches

    return translate_batches(
        run.translator, run.tokenizer, texts, batch_size=batch_size or run.config.decode.batch_size,
        progress=progress, casing=run.casing, protect_placeholders=run.config.decode.protect_placeholders,
        **decode_options(run, beam_size=beam_size, max_length=max_length),
    )


def decode_options(run: TranslationRun, *, beam_size=None, max_length=None) -> dict:
    """The run's decoding settings (source cut, beam, max length, length and coverage penalty) as keyword
    arguments; `beam_size` and `max_length` override the run's when given.

    Sources are cut at DECODE_SOURCE_FACTOR times the training cut, not at it:
    the few longer than every training source lose less by being read whole
    than by being cut (a cut source also drops its placeholders and names).
    """
    decode = run.config.decode
    max_source_len = DECODE_SOURCE_FACTOR * run.config.batching.max_source_len
    return dict(max_source_len=max_source_len, beam_size=beam_size or decode.beam_size,
                max_length=max_length or decode.max_length, length_penalty=decode.length_penalty,
                coverage_penalty=decode.coverage_penalty)


def export_run(run: TranslationRun, out_dir, *, beam_size=None, max_length=None):
    """`export_translator` with the run's decoding settings; returns the export's path."""
    from seq2seq.export import export_translator

    return export_translator(run.translator, run.tokenizer, out_dir, casing=run.casing,
                             protect_placeholders=run.config.decode.protect_placeholders,
                             **decode_options(run, beam_size=beam_size, max_length=max_length))


def evaluate_pairs(run: TranslationRun, pairs: list[Pair], *, beam_size=None, progress=False,
                   translate=None) -> dict:
    """BLEU, chrF, exact match and placeholder rate of the run's translations of `pairs`' sources.

    `translate`: texts -> translations to use instead of `translate_texts` with the run's settings
    (a `CachedTranslator.translate`, which gives the same strings); `beam_size` and `progress` then
    do not apply.
    """
    from seq2seq.evaluation import evaluate_translations

    sources = [pair.source for pair in pairs]
    if translate is not None:
        hypotheses = translate(sources)
    else:
        hypotheses = translate_texts(run, sources, beam_size=beam_size, progress=progress)
    return evaluate_translations(hypotheses, [pair.target for pair in pairs], sources=sources)


def _target_ids(tokenizer, texts: list[str]) -> list:
    """Target-out id arrays (pieces + END) of `texts`, for class counting."""
    import numpy as np
    import tensorflow as tf

    from seq2seq.tokens import END_ID

    ids = []
    for start in range(0, len(texts), 4096):
        ragged = tokenizer.tokenize(tf.constant(texts[start : start + 4096]))
        ids.extend(np.append(row, END_ID) for row in ragged.numpy())
    return ids


def attention_alignments(run: TranslationRun, texts: list[str], *, beam_size=None, max_length=None) -> list:
    """`translate_texts`' translations of `texts` with the attention that produced them.

    Decodes as `translate_texts` does, from the same batches: the run's
    first-word casing, beam size, length penalty and maximum length
    (`beam_size` and `max_length` override them as there), so each
    alignment's `output` is the string `translate_texts` returns.

    Returns:
        One `seq2seq.attention_plot.Alignment` per text, in input order:
        source and output text, the source pieces the model read (after
        casing) and the output pieces it wrote, each with its end token, and
        weights [output_len, source_len].
    """
    import numpy as np

    from seq2seq.attention_plot import Alignment
    from seq2seq.inference import decode_batches, source_ids

    texts = list(texts)
    read, lowered = _cased_sources(run, texts)
    options = decode_options(run, beam_size=beam_size, max_length=max_length)
    alignments = [None] * len(texts)
    batches = decode_batches(run.translator, run.tokenizer, read, batch_size=run.config.decode.batch_size, **options)
    for indices, result in batches:
        ids = source_ids(run.tokenizer, [read[i] for i in indices], options["max_source_len"])
        outputs = run.tokenizer.detokenize(result.token_ids)
        if run.casing is not None:
            outputs = run.casing.raise_first_letters(outputs, lowered[indices])
        for row, index in enumerate(indices):
            source = _pieces(run.tokenizer, ids[row])
            output = _pieces(run.tokenizer, result.token_ids[row], until_end=True)
            weights = np.asarray(result.attention[row])[: len(output), : len(source)]
            alignments[index] = Alignment(texts[index], outputs[row].numpy().decode("utf-8"), source, output, weights)
    return alignments


def attention_png(alignments) -> tuple[bytes, int, int]:
    """`seq2seq.attention_plot.draw_attention_heatmaps(alignments)` as PNG bytes, with its width and height
    in pixels."""
    import io
    import struct

    from seq2seq.attention_plot import draw_attention_heatmaps

    buffer = io.BytesIO()
    draw_attention_heatmaps(alignments).savefig(buffer, format="png")
    png = buffer.getvalue()
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk, right after the 8-byte signature
    return png, width, height


def _cased_sources(run: TranslationRun, texts: list[str]):
    """The texts as the model reads them (first word lowered by the run's casing) and [texts] bool lowered."""
    import numpy as np

    if run.casing is None or not texts:
        return texts, np.zeros(len(texts), bool)
    cased, lowered = run.casing.lower_first_words(texts)
    return [text.decode("utf-8") for text in cased.numpy()], lowered.numpy()


def _pieces(tokenizer, ids, until_end: bool = False) -> list[str]:
    """The pieces of one row of ids, padding dropped; cut after the first end token if `until_end`."""
    from seq2seq.tokens import END_ID, PAD_ID

    ids = [int(i) for i in ids.numpy() if i != PAD_ID]
    if until_end and END_ID in ids:
        ids = ids[: ids.index(END_ID) + 1]
    return [piece.decode("utf-8") for piece in tokenizer.id_to_piece(ids).numpy()]
