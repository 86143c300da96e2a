"""String-to-string SavedModels: the tokenizer, the model and the decoding loop in one graph.

An exported model is used without the kit, from a process that has only
TensorFlow and TensorFlow Text (whose import registers the SentencePiece ops):

    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    translator = tf.saved_model.load("exported")
    out = translator.signatures["serving_default"](texts=tf.constant(["Open file"]))
    out["translations"]  # [batch] tf.string

A translator's signature returns {"translations": [batch] string, "scores":
[batch] float32, "token_ids": [batch, max_length] int32, "lengths": [batch]
int32}; a classifier's returns {"label": [batch] string, "probabilities":
[batch, classes] float32, "attention": [batch, time] float32, "pieces":
[batch, time] string}. Sources are encoded exactly as the training pipeline
encodes them (`seq2seq.data.pipeline.encode_sources`), after the run's first-word
casing when it has one (`seq2seq.casing`: a listed first word is lowered, and the
translation's first letter raised again); with placeholder protection on, the
source's placeholders are replaced by reserved tokens and put back into the
translation in the graph too (`seq2seq.placeholders`), and the same
`tf.function` is also reachable as `loaded.translate(texts)` /
`loaded.classify(texts)`. A string that is not valid UTF-8 (or holds a NUL)
gets the translation "" (the label "") and leaves the rest of its batch as it
would be without it (`_blank_invalid_utf8`).

Only the models' variables are saved, not the Keras objects: the SavedModel
holds graphs and weights, so loading it needs none of the kit's classes.
"""

import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from seq2seq import placeholders, tokens
from seq2seq.data.pipeline import encode_sources
from seq2seq.decoding import encode_and_decode
from seq2seq.errors import UserError

SIGNATURE_KEY = "serving_default"
_TEXTS = tf.TensorSpec([None], tf.string, name="texts")


class _ExportModule(tf.Module):
    """What a SavedModel tracks: the model's variables and the tokenizer's resource.

    The Keras model itself is kept out of the object graph (a closure holds it),
    so the SavedModel has no Keras objects to revive.
    """

    def __init__(self, model, tokenizer):
        super().__init__(name="exported")
        if not model.built:
            model.build()
        self.model_variables = list(model.variables)
        self.tokenizer = tokenizer


def export_translator(translator, tokenizer, out_dir, *, max_source_len: int, beam_size: int,
                      max_length: int, length_penalty: float, casing=None,
                      protect_placeholders: bool = True) -> Path:
    """Writes a SavedModel translating a batch of strings to a batch of strings.

    Args:
        translator: a `seq2seq.models.translator.Translator`.
        tokenizer: the `SentencePieceTokenizer` it was trained with (source and target).
        out_dir: the SavedModel directory; must not exist, or be empty.
        max_source_len: sources are cut to this many ids, END included (as in training).
        beam_size: 1 = greedy decoding, else beam search.
        max_length: longest output in pieces, END included.
        length_penalty: GNMT length penalty of beam search (ignored when greedy).
        casing: a `seq2seq.casing.FirstWordCasing` applied around the translation, or None.
        protect_placeholders: carry placeholders through as `translate_batches`
            does (off anyway with a tokenizer that lacks the reserved tokens).
    Returns:
        The SavedModel directory.
    """
    _check_out_dir(out_dir)
    _check_vocab(translator.vocab_size, tokenizer, "translator")
    _check_vocab(translator.target_vocab_size, tokenizer, "translator's target")
    _check_at_least(2, max_source_len=max_source_len)
    _check_at_least(1, beam_size=beam_size, max_length=max_length)
    if not length_penalty >= 0:
        raise UserError(f"length_penalty must be >= 0; received {length_penalty!r}")
    module = _ExportModule(translator, tokenizer)
    module.casing = casing
    reserved_ids = placeholders.reserved_ids(tokenizer) if protect_placeholders else ()
    options = dict(beam_size=beam_size, max_length=max_length, length_penalty=float(length_penalty),
                   reserved_ids=reserved_ids)

    @tf.function(input_signature=[_TEXTS])
    def translate(texts):
        """[batch] strings -> translations, scores, token_ids and lengths (see the module)."""
        texts, invalid = _blank_invalid_utf8(texts)
        if casing is not None:
            texts, lowered = casing.lower_first_words(texts)
        if reserved_ids:
            texts, protected = placeholders.protect_in_graph(texts)
        source_ids = encode_sources(texts, tokenizer, max_source_len).to_tensor()
        result = encode_and_decode(translator, source_ids, **options)
        translations = tokenizer.detokenize(result.token_ids)
        if reserved_ids:
            translations = placeholders.restore_in_graph(translations, protected)
        if casing is not None:
            translations = casing.raise_first_letters(translations, lowered)
        return {
            "translations": tf.where(invalid, "", translations),
            "scores": result.scores,
            "token_ids": result.token_ids,
            "lengths": result.lengths,
        }

    module.translate = translate
    return _save(module, translate, out_dir)


def export_classifier(classifier, tokenizer, out_dir, *, max_len: int, labels: list[str]) -> Path:
    """Writes a SavedModel classifying a batch of strings, with attention over their pieces.

    Args:
        classifier: a `seq2seq.models.classifier.Classifier`.
        tokenizer: the `SentencePieceTokenizer` it was trained with.
        out_dir: the SavedModel directory; must not exist, or be empty.
        max_len: texts are cut to this many ids, END included (as in training).
        labels: the name of each class, indexed by class id.
    Returns:
        The SavedModel directory. `pieces` [batch, time] names the token each
        attention weight belongs to ("</s>" for the end token, "" for padding).
    """
    _check_out_dir(out_dir)
    _check_vocab(classifier.vocab_size, tokenizer, "classifier")
    _check_at_least(2, max_len=max_len)
    labels = [str(label) for label in labels]
    if len(labels) != classifier.num_classes:
        raise UserError(
            f"labels must name each of the classifier's {classifier.num_classes} classes; "
            f"received {len(labels)}: {labels!r}"
        )
    module = _ExportModule(classifier, tokenizer)

    @tf.function(input_signature=[_TEXTS])
    def classify(texts):
        """[batch] strings -> label, probabilities, attention and pieces (see the module)."""
        texts, invalid = _blank_invalid_utf8(texts)
        token_ids = encode_sources(texts, tokenizer, max_len).to_tensor()
        outputs = classifier(token_ids, training=False)
        probabilities = tf.cast(outputs["probabilities"], tf.float32)
        pieces = tf.where(token_ids == tokens.PAD_ID, "", tokenizer.id_to_piece(token_ids))
        return {
            "label": tf.where(invalid, "", tf.gather(tf.constant(labels), tf.argmax(probabilities, axis=-1))),
            "probabilities": probabilities,
            "attention": tf.cast(outputs["attention"], tf.float32),
            "pieces": pieces,
        }

    module.classify = classify
    return _save(module, classify, out_dir)


def _blank_invalid_utf8(texts):
    """`(texts, invalid)`: [batch] strings with each one that is not valid UTF-8 or holds a NUL
    replaced by "", and [batch] bool True at those.

    SentencePiece would turn such bytes into pieces of nonsense; emptied, the
    string is tokenized as "" (END alone) and its output is then blanked, as
    `seq2seq translate` writes an empty line for an unreadable input line.
    """
    # Each invalid byte decodes to code point 0 here, as a NUL does.
    codepoints = tf.strings.unicode_decode(texts, "UTF-8", errors="replace", replacement_char=0)
    invalid = tf.reduce_any(tf.equal(codepoints, 0), axis=1)
    return tf.where(invalid, "", texts), invalid


def _save(module: tf.Module, function, out_dir) -> Path:
    """Saves into a sibling temporary directory, then renames: no half-written export."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        signatures = {SIGNATURE_KEY: function.get_concrete_function()}
        tf.saved_model.save(module, str(staging), signatures=signatures)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _check_out_dir(out_dir) -> None:
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(
            f"export directory {str(out_dir)!r} already exists and is not empty; "
            "choose a new --out directory or remove the old export"
        )


def _check_vocab(vocab_size: int, tokenizer, what: str) -> None:
    if vocab_size != tokenizer.vocab_size:
        raise UserError(
            f"the {what}'s vocabulary ({vocab_size}) does not match the tokenizer's "
            f"({tokenizer.vocab_size}); export the tokenizer the model was trained with"
        )


def _check_at_least(minimum: int, **values) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < minimum:
            raise UserError(f"{name} must be an integer >= {minimum}; received {value!r}")
