"""Classifier runs: labeled texts to a trained attention classifier, and a run directory back to predictions.

A run directory mirrors a translator run's (`seq2seq.runs.translation`):

    config.toml      the resolved ClassifierRunConfig
    labels.json      the label names, sorted; a label's index is its class id
    tokenizer.model  the SentencePiece model
    model.keras      the trained Classifier (best validation loss)
    metrics.json     validation accuracy and the training summary
    checkpoints/     per-epoch checkpoints (resume after an interruption)
    logs/            TensorBoard scalars

Masks (one 0/1 per whitespace word, 1 = the model may rely on the word) are
projected onto the word's pieces by the data pipeline and become the
annotation Z of the saliency penalty. When a run's data carries masks and no
weight is given, `DEFAULT_SALIENCY_WEIGHT` applies (`resolve_saliency_weight`).
"""

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seq2seq.runs import config_io
from seq2seq.atomic import atomic_write_text
from seq2seq.data.batching import BatchingConfig
from seq2seq.data.reader import LabeledText
from seq2seq.errors import UserError
from seq2seq.runs.config import (
    RESUMABLE_TRAIN_FIELDS, TRANSLATOR_ONLY, TokenizerConfig, TrainingConfig, check_train_fields, driver_config,
)
from seq2seq.runs.directory import CONFIG_FILE, prepare_any_run_dir

LABELS_FILE = "labels.json"
TOKENIZER_FILE = "tokenizer.model"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
# How to make a new run, for the messages about a damaged one.
RETRAIN = "seq2seq classifier train --data TRAIN.tsv --valid VALID.tsv --out DIR"

# lambda when the training data has masks and none is given, with this module's default
# penalty (the gradient x input reduction of d log p_max / d embedding, "share" normalisation:
# the fraction of an example's saliency on Z = 0 tokens), model and training (BiLSTM 64 units,
# embeddings 64, Adam 1e-3, 20 epochs): `seq2seq.saliency.RECOMMENDED_WEIGHTS["grad_times_input"]`,
# chosen on three real-text decoy tasks over three seeds and checked on the generated decoy
# recipe (docs/saliency-real-text.md). Written out rather than imported, because
# `seq2seq.saliency` starts TensorFlow and the CLI's parser reads this module;
# tests/test_runs_classification.py checks that the two are equal.
DEFAULT_SALIENCY_WEIGHT = 100.0
# Texts per call of the fast predict path (bounds memory on big inputs).
PREDICT_CHUNK = 16384


@dataclass(frozen=True)
class ClassifierModelConfig:
    """Arguments of `seq2seq.models.classifier.Classifier` (saliency options beyond the weight: its defaults)."""

    embed_dim: int = 64
    units: int = 64
    encoder_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0
    # lambda of the saliency penalty; 0 = off (resolved from the data by `resolve_saliency_weight`).
    saliency_weight: float = 0.0
    # What is differentiated and how a token's gradient becomes one number (see `seq2seq.saliency`).
    # The classifier CLI's reduction is gradient x input (the models' own default is "squared_l2",
    # which on real text stopped the model learning at the weights that hold the decoy off).
    saliency_target: str = "log_max_prob"
    saliency_reduction: str = "grad_times_input"


# The classifier's training where it differs from `TrainingConfig`'s (the translator's) defaults:
# 20 epochs at a constant Adam 1e-3, the setting under which DEFAULT_SALIENCY_WEIGHT was
# measured (at 1e-2 the BiLSTM evades the penalty within two epochs); with masks, early stopping
# and the best checkpoint follow the swapped validation texts (`seq2seq.shortcut_validation`).
CLASSIFIER_TRAINING = TrainingConfig(epochs=20, learning_rate=1e-3, lr_schedule="constant", select_on_swapped=True)


def _classifier_tokenizer() -> TokenizerConfig:
    """The translator's tokenizer section; 4,000 pieces at most (on little text SentencePiece keeps fewer)."""
    return TokenizerConfig(vocab_size=4000)


def _classifier_batching() -> BatchingConfig:
    # Texts only (no target side); about 64 short texts per batch.
    return BatchingConfig(max_source_len=128, max_target_len=2, tokens_per_batch=1024)


@dataclass(frozen=True)
class ClassifierRunConfig:
    """Everything that defines a classifier run; sections map to TOML tables."""

    tokenizer: TokenizerConfig = field(default_factory=_classifier_tokenizer)
    batching: BatchingConfig = field(default_factory=_classifier_batching)
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)
    train: TrainingConfig = field(default_factory=lambda: CLASSIFIER_TRAINING)

    def __post_init__(self):
        if self.train.epochs < 1:
            raise ValueError("train.epochs = 0 (chosen from the data) is for translator runs; "
                             f"set train.epochs >= 1 for a classifier (default {CLASSIFIER_TRAINING.epochs})")
        check_train_fields(self.train, TRANSLATOR_ONLY, "classifier")


@dataclass
class ClassifierRun:
    """A loaded run: config, label names, tokenizer and the trained classifier."""

    config: ClassifierRunConfig
    labels: list[str]
    tokenizer: object  # seq2seq.tokenizer.SentencePieceTokenizer
    classifier: object  # seq2seq.models.classifier.Classifier
    directory: Path


# ----------------------------------------------------------------------------- data


def has_masks(examples: list[LabeledText]) -> bool:
    return any(example.mask is not None for example in examples)


def resolve_saliency_weight(weight: float | None, examples: list[LabeledText]) -> float:
    """The weight given, else `DEFAULT_SALIENCY_WEIGHT` when the examples carry masks, else 0."""
    if weight is not None:
        if weight < 0:
            raise UserError(f"the saliency weight must be >= 0; received {weight}")
        return float(weight)
    return DEFAULT_SALIENCY_WEIGHT if has_masks(examples) else 0.0


def label_vocabulary(examples: list[LabeledText]) -> list[str]:
    """The sorted distinct labels; refuses fewer than two."""
    labels = sorted({example.label for example in examples})
    if len(labels) < 2:
        raise UserError(f"a classifier needs at least 2 labels in the training data; found {labels}")
    return labels


def label_ids(labels: list[str], examples: list[LabeledText], what: str = "data") -> np.ndarray:
    """[examples] int32 class ids; a label unknown to the run is a `UserError`."""
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({e.label for e in examples} - index.keys())
    if unknown:
        raise UserError(f"{what} has labels the model was not trained on: {unknown[:5]}; known: {labels}")
    return np.array([index[e.label] for e in examples], np.int32)


def _masks_or_none(examples: list[LabeledText]):
    """Per-word masks, a missing one counting as all 1 (no constraint); None if no example has one."""
    if not has_masks(examples):
        return None
    return [e.mask if e.mask is not None else (1,) * len(e.text.split()) for e in examples]


def make_dataset(examples, labels, tokenizer, config: ClassifierRunConfig, *, training: bool):
    """Batches of (token_ids[, annotation]) and class ids (see `make_classification_dataset`)."""
    from seq2seq.data.pipeline import make_classification_dataset

    return make_classification_dataset(
        [e.text for e in examples], label_ids(labels, examples), tokenizer, config.batching,
        masks=_masks_or_none(examples), training=training, seed=config.train.seed,
    )


def prepare_tokenizer(config: ClassifierRunConfig, texts: list[str], run_dir: Path) -> Path:
    """The run's SentencePiece model: kept, copied from `[tokenizer] model`, or trained on `texts`.

    The vocabulary size is a soft limit here: small labelled corpora often hold fewer pieces.
    """
    from seq2seq.tokenizer import prepare_run_tokenizer

    return prepare_run_tokenizer(run_dir, config.tokenizer, texts, hard_vocab_limit=False)


# ----------------------------------------------------------------------------- training


def build_classifier(config: ClassifierRunConfig, vocab_size: int, num_classes: int):
    from seq2seq.models.classifier import Classifier

    model = config.model
    return Classifier(
        vocab_size=vocab_size, num_classes=num_classes, embed_dim=model.embed_dim, units=model.units,
        encoder_layers=model.encoder_layers, bidirectional=model.bidirectional, dropout=model.dropout,
        saliency_weight=model.saliency_weight, saliency_target=model.saliency_target,
        saliency_reduction=model.saliency_reduction,
    )


def train_run(config: ClassifierRunConfig, train_examples: list[LabeledText],
              valid_examples: list[LabeledText], run_dir, *, progress: bool = True, log=print) -> dict:
    """Trains (or resumes) the run in `run_dir`, evaluates it on `valid_examples`, saves it.

    Returns the metrics also written to `run_dir/metrics.json`.
    """
    import keras

    from seq2seq.tokenizer import SentencePieceTokenizer
    from seq2seq.callbacks import TimeBudget
    from seq2seq.training import train

    run_dir = prepare_any_run_dir(config, Path(run_dir), RESUMABLE_TRAIN_FIELDS, log)
    log("config:\n" + config_io.to_toml(config))
    labels = _write_labels(run_dir, label_vocabulary(train_examples))
    if config.train.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.train.seed)
    tokenizer = SentencePieceTokenizer.from_file(
        prepare_tokenizer(config, [e.text for e in train_examples], run_dir))
    log(f"data: {len(train_examples)} train, {len(valid_examples)} valid texts; labels {labels}; "
        f"masks: {'yes' if has_masks(train_examples) else 'no'}; "
        f"chance accuracy {1 / len(labels):.3f}, initial loss ~ log({len(labels)}) = {np.log(len(labels)):.3f}")
    datasets = [make_dataset(examples, labels, tokenizer, config, training=training)
                for examples, training in ((train_examples, True), (valid_examples, False))]
    classifier = build_classifier(config, tokenizer.vocab_size, len(labels))
    # With masks, select on validation texts whose forbidden words are swapped (`seq2seq.shortcut_validation`).
    selection_callbacks, monitor = swapped_selection(config, train_examples, valid_examples, labels, tokenizer, log)
    if config.train.max_minutes:
        selection_callbacks = [*selection_callbacks, TimeBudget(config.train.max_minutes * 60)]
    train_config = driver_config(config.train, run_dir, progress=progress, monitor=monitor)
    started = time.perf_counter()
    summary = train(classifier, *datasets, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    config=train_config, callbacks=selection_callbacks)
    classifier.save(run_dir / MODEL_FILE)
    run = ClassifierRun(config, labels, tokenizer, classifier, run_dir)
    metrics = {
        "valid": evaluate_examples(run, valid_examples),
        "training": {key: summary[key] for key in ("epochs", "best_epoch", "best_val_loss", "best_metric",
                                                    "stopped_early")},
        "training_seconds": round(time.perf_counter() - started, 1),
    }
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def swapped_selection(config, train_examples, valid_examples, labels, tokenizer, log=print) -> tuple[list, str]:
    """A classifier run's selection: `([SwappedValidation], "val_swapped_loss")` or `([], "val_loss")`.

    The swapped validation (`seq2seq.shortcut_validation`) runs when the training examples carry
    masks and the validation examples have mask-0 words to swap, and is the selection figure when
    `config.train.select_on_swapped` is on; the swap is seeded by `config.train.seed`. `config` is a
    `ClassifierRunConfig`; `labels` and `tokenizer` those of the run.
    """
    from seq2seq.shortcut_validation import (
        SWAPPED_MONITOR, SwappedValidation, has_masked_words, masked_words, swap_masked_words,
    )

    if not (has_masks(train_examples) and has_masked_words(valid_examples)):
        return [], "val_loss"
    swapped = swap_masked_words(valid_examples, masked_words(train_examples), config.train.seed)
    monitor = SWAPPED_MONITOR if config.train.select_on_swapped else "val_loss"
    log(f"selection: {monitor}; {SWAPPED_MONITOR} is the loss on the validation texts with their mask-0 words "
        "swapped for other mask-0 words of the training set (train.select_on_swapped chooses between them)")
    dataset = make_dataset(swapped, labels, tokenizer, config, training=False)
    return [SwappedValidation(dataset)], monitor


def _write_labels(run_dir: Path, labels: list[str]) -> list[str]:
    """Writes labels.json; a resumed run must have the same labels."""
    path = run_dir / LABELS_FILE
    if path.exists() and json.loads(path.read_text()) != labels:
        raise UserError(f"{run_dir} was trained with other labels ({path}); pass a new --out directory")
    atomic_write_text(path, json.dumps(labels) + "\n")
    return labels


def load_config(path) -> ClassifierRunConfig:
    return config_io.build(ClassifierRunConfig, config_io.load_toml(path))


# ----------------------------------------------------------------------------- using a run


def load_run(run_dir) -> ClassifierRun:
    """Loads the config, labels, tokenizer and trained classifier of a run directory.

    A file that is missing, empty, cut short or from another run is a one-line
    `UserError` naming it and the fix (`seq2seq.runs.files`).
    """
    from seq2seq.models.classifier import Classifier
    from seq2seq.runs.files import RunFiles

    files = RunFiles(Path(run_dir), "a trained classifier run", RETRAIN)
    files.require((CONFIG_FILE, LABELS_FILE, TOKENIZER_FILE, MODEL_FILE))
    config = files.config(CONFIG_FILE, ClassifierRunConfig)
    labels = files.json(LABELS_FILE)
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(label, str) for label in labels):
        raise files.error(LABELS_FILE, f"does not hold a list of 2 or more label names (received {labels!r:.80})")
    tokenizer = files.tokenizer(TOKENIZER_FILE)
    classifier = files.model(MODEL_FILE, Classifier)
    files.check_vocab(MODEL_FILE, classifier.vocab_size, TOKENIZER_FILE, tokenizer.vocab_size)
    if classifier.num_classes != len(labels):
        raise files.error(LABELS_FILE, f"names {len(labels)} labels but {MODEL_FILE} has {classifier.num_classes} "
                                       "classes: the two files come from different runs")
    files.check_model_config(MODEL_FILE, classifier, CONFIG_FILE, "model", config.model)
    return ClassifierRun(config, labels, tokenizer, classifier, files.directory)


def classify_texts(run: ClassifierRun, texts: list[str]) -> dict:
    """Class ids, probabilities and per-word attention of `texts`, from one forward pass each.

    Returns:
        {"labels": int [texts], "probabilities": [texts, classes],
        "word_attention": list of [words] arrays (the attention of a word's
        pieces summed; words cut off by `max_source_len` get 0),
        "end_attention": [texts], the weight on the end token}.
    """
    out = {"labels": [], "probabilities": [], "word_attention": [], "end_attention": []}
    for start in range(0, len(texts), PREDICT_CHUNK):
        chunk = texts[start:start + PREDICT_CHUNK]
        ids, piece_words = _encode_with_words(run, chunk)
        result = run.classifier.predict_with_attention(ids)
        out["labels"].append(result["labels"])
        out["probabilities"].append(result["probabilities"])
        for text, words, attention in zip(chunk, piece_words, result["attention"]):
            per_word = np.zeros(len(text.split()), np.float32)
            np.add.at(per_word, words, attention[:len(words)])
            out["word_attention"].append(per_word)
            out["end_attention"].append(float(attention[len(words)]))
    for key in ("labels", "probabilities"):
        out[key] = np.concatenate(out[key]) if out[key] else np.zeros([0], np.float32)
    return out


def _encode_with_words(run: ClassifierRun, texts: list[str]):
    """(ids int32 [texts, time] = pieces + END, padded; per text, the word index of each kept piece)."""
    import tensorflow as tf

    from seq2seq.data.pipeline import encode_sources_with_offsets, word_end_bytes

    max_len = run.config.batching.max_source_len
    ids, starts = encode_sources_with_offsets(tf.constant(texts, tf.string), run.tokenizer, max_len)
    ids = ids.to_tensor().numpy()
    piece_words = []
    for text, piece_starts in zip(texts, starts.numpy()):
        word_ends = np.array(word_end_bytes(text), np.int64)
        # A piece belongs to the first word ending after it starts (its start is the space before the word).
        words = np.searchsorted(word_ends, piece_starts[: max_len - 1], side="right")
        piece_words.append(np.minimum(words, max(len(word_ends) - 1, 0)))
    return ids, piece_words


def predictions(run: ClassifierRun, texts: list[str]) -> list[dict]:
    """One JSON-ready dict per text: label, probabilities by label, attention per word."""
    result = classify_texts(run, texts)
    rows = []
    for i, text in enumerate(texts):
        rows.append({
            "label": run.labels[int(result["labels"][i])],
            "probabilities": {label: round(float(p), 6) for label, p in zip(run.labels, result["probabilities"][i])},
            "attention": [[word, round(float(w), 6)] for word, w in zip(text.split(), result["word_attention"][i])],
            "end_attention": round(result["end_attention"][i], 6),
        })
    return rows


def evaluate_examples(run: ClassifierRun, examples: list[LabeledText], what: str = "data") -> dict:
    """Accuracy, example count and per-label accuracy of the run on labeled `examples`."""
    truth = label_ids(run.labels, examples, what)
    predicted = classify_texts(run, [e.text for e in examples])["labels"]
    correct = predicted == truth
    per_label = {label: round(float(correct[truth == i].mean()), 4)
                 for i, label in enumerate(run.labels) if np.any(truth == i)}
    return {"accuracy": round(float(correct.mean()), 4), "examples": len(examples), "per_label_accuracy": per_label}


def export_run(run: ClassifierRun, out_dir) -> Path:
    """`export_classifier` with the run's labels and text length; returns the export's path."""
    from seq2seq.export import export_classifier

    return export_classifier(run.classifier, run.tokenizer, out_dir, max_len=run.config.batching.max_source_len,
                             labels=run.labels)


def with_overrides(config: ClassifierRunConfig, **sections) -> ClassifierRunConfig:
    """`config` with some fields replaced: `with_overrides(c, model={"units": 32})`."""
    return dataclasses.replace(config, **{
        name: dataclasses.replace(getattr(config, name), **values) for name, values in sections.items() if values
    })
