"""String-to-string SavedModels: the tokenizer, the model and the decoding loop in one graph.

An exported model is used without the kit, from a process that has only
TensorFlow and TensorFlow Text (whose import registers the SentencePiece ops):

    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    translator = tf.saved_model.load("exported")
    out = translator.signatures["serving_default"](texts=tf.constant(["Open file"]))
    out["translations"]  # [batch] tf.string

A translator's `serving_default` returns {"translations": [batch] string,
"scores": [batch] float32, "token_ids": [batch, max_length] int32, "lengths":
[batch] int32}; a classifier's returns {"label": [batch] string,
"probabilities": [batch, classes] float32, "attention": [batch, time] float32,
"pieces": [batch, time] string}. Sources are encoded exactly as the training pipeline
encodes them (`seq2seq.data.pipeline.encode_sources`), after the run's first-word
casing when it has one (`seq2seq.casing`: a listed first word is lowered, and the
translation's first letter raised again); with placeholder protection on, the
source's placeholders are replaced by reserved tokens and put back into the
translation in the graph too (`seq2seq.placeholders`), and the same
`tf.function` is also reachable as `loaded.translate(texts)` /
`loaded.classify(texts)`. A string that is not valid UTF-8 (or holds a NUL)
gets the translation "" (the label "") and leaves the rest of its batch as it
would be without it (`_blank_invalid_utf8`).

A translator also takes decoding options per call, each a scalar defaulting
to the export's value: `loaded.translate(texts, beam_size=1, length_penalty=1.0,
max_length=32, temperature=0.8, seed=3)`. The beam size is clipped to 1 .. the
export's (each width is its own graph: export with the widest beam you will
ask for); a temperature > 0 samples instead of searching
(`seq2seq.decoding.SamplingSearch`), 0 (the default) searches. The
`translate_n_best` signature (and `loaded.translate_n_best(texts, ...,
n_best=N)`, N defaulting to the export's beam size) returns {"translations":
[batch, n] string, "log_probs", "scores": [batch, n] float32, "lengths":
[batch, n] int32, "token_ids": [batch, n, max_length] int32}, best first; a
slot the search left empty has "" and -inf.
TensorFlow Serving's signatures take every input, so there the options are
required; `serving_default` takes only the texts.

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
from seq2seq.decoding import NBestResult, Sampling, encode_and_decode
from seq2seq.errors import UserError

SIGNATURE_KEY = "serving_default"
N_BEST_SIGNATURE_KEY = "translate_n_best"
_TEXTS = tf.TensorSpec([None], tf.string, name="texts")
# A translator's call-time options (`loaded.translate(texts, beam_size=...)`), after `texts`.
_OPTIONS = (tf.TensorSpec([], tf.int32, name="beam_size"), tf.TensorSpec([], tf.float32, name="length_penalty"),
            tf.TensorSpec([], tf.int32, name="max_length"), tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int32, name="seed"))


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
                      protect_placeholders: bool = True, coverage_penalty: float = 0.0) -> Path:
    """Writes a SavedModel translating a batch of strings to a batch of strings.

    Args:
        translator: a `seq2seq.models.translator.Translator`.
        tokenizer: the `SentencePieceTokenizer` it was trained with (source and target).
        out_dir: the SavedModel directory; must not exist, or be empty.
        max_source_len: sources are cut to this many ids, END included (as in training).
        beam_size: 1 = greedy decoding, else beam search; also the widest beam a call may ask for.
        max_length: longest output in pieces, END included.
        length_penalty: GNMT length penalty of beam search (ignored when greedy).
        casing: a `seq2seq.casing.FirstWordCasing` applied around the translation, or None.
        protect_placeholders: carry placeholders through as `translate_batches`
            does (off anyway with a tokenizer that lacks the reserved tokens).
        coverage_penalty: GNMT coverage penalty weight of beam search (0 = none).
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
    if not coverage_penalty >= 0:
        raise UserError(f"coverage_penalty must be >= 0; received {coverage_penalty!r}")
    module = _ExportModule(translator, tokenizer)
    module.casing = casing
    reserved_ids = placeholders.reserved_ids(tokenizer) if protect_placeholders else ()
    decode = _decoder(translator, reserved_ids, beam_size, float(coverage_penalty))

    def hypotheses(texts, options):
        """[batch] strings -> the `NBestResult` of `options` and its [batch, n] translations."""
        texts, invalid = _blank_invalid_utf8(texts)
        if casing is not None:
            texts, lowered = casing.lower_first_words(texts)
        if reserved_ids:
            texts, protected = placeholders.protect_in_graph(texts)
        source_ids = encode_sources(texts, tokenizer, max_source_len).to_tensor()
        result = decode(source_ids, *options)
        batch, n = tf.shape(result.token_ids)[0], tf.shape(result.token_ids)[1]
        of_text = tf.repeat(tf.range(batch), n)  # [batch * n]: the text of each hypothesis
        translations = tokenizer.detokenize(tf.reshape(result.token_ids, [batch * n, -1]))
        if reserved_ids:
            translations = placeholders.restore_in_graph(translations, tf.gather(protected, of_text))
        if casing is not None:
            translations = casing.raise_first_letters(translations, tf.gather(lowered, of_text))
        translations = tf.where(tf.gather(invalid, of_text) | (tf.reshape(result.lengths, [-1]) == 0), "",
                                translations)
        return result, tf.reshape(translations, [batch, n])

    @tf.function(input_signature=[_TEXTS, *_OPTIONS, tf.TensorSpec([], tf.int32, name="n_best")])
    def translate_n_best(texts, beam_size=beam_size, length_penalty=float(length_penalty), max_length=max_length,
                         temperature=0.0, seed=0, n_best=beam_size):
        """[batch] strings -> the `n_best` best translations of each with their scores (see the module)."""
        result, translations = hypotheses(texts, (beam_size, length_penalty, max_length, n_best, temperature, seed))
        return {
            "translations": translations,
            "log_probs": result.log_probs,
            "scores": result.scores,
            "lengths": result.lengths,
            "token_ids": result.token_ids,
        }

    # The best hypothesis is the first of one: both functions call one graph, saved once.
    @tf.function(input_signature=[_TEXTS, *_OPTIONS])
    def translate(texts, beam_size=beam_size, length_penalty=float(length_penalty), max_length=max_length,
                  temperature=0.0, seed=0):
        """[batch] strings -> translations, scores, token_ids and lengths of the best hypothesis (see the module)."""
        best = translate_n_best(texts, beam_size, length_penalty, max_length, temperature, seed, 1)
        return {key: best[key][:, 0] for key in ("translations", "scores", "token_ids", "lengths")}

    @tf.function(input_signature=[_TEXTS])
    def serve(texts):
        return translate(texts)

    module.translate, module.translate_n_best = translate, translate_n_best
    return _save(module, {SIGNATURE_KEY: serve, N_BEST_SIGNATURE_KEY: translate_n_best}, out_dir)


def _decoder(translator, reserved_ids, max_beam: int, coverage_penalty: float = 0.0):
    """`decode(source_ids, beam_size, length_penalty, max_length, n_best, temperature, seed) -> NBestResult`
    in the graph, every option a scalar tensor.

    The width of a search is static: one graph of width 1 (greedy, or
    sampling when temperature > 0, chosen per step) and one beam search graph
    per beam size 2 .. `max_beam`, picked per call by a `tf.switch_case`. The
    beam size is clipped to 1 .. `max_beam` (a temperature > 0 samples, beam
    size 1), and `n_best` to 1 .. the width.
    """
    def decode(source_ids, beam_size, length_penalty, max_length, n_best, temperature, seed):
        options = dict(max_length=tf.maximum(max_length, 1), reserved_ids=reserved_ids)

        def greedy_or_sample():
            return tuple(encode_and_decode(translator, source_ids, beam_size=1, n_best=tf.constant(1),
                                           sampling=Sampling(temperature=temperature), seed=tf.stack([seed, 0]),
                                           **options))

        def search(width):
            return lambda: tuple(encode_and_decode(
                translator, source_ids, beam_size=width, length_penalty=tf.maximum(length_penalty, 0.0),
                n_best=tf.clip_by_value(n_best, 1, width), coverage_penalty=coverage_penalty, **options))

        branch = tf.where(temperature > 0, 0, tf.clip_by_value(beam_size, 1, max_beam) - 1)
        branches = [greedy_or_sample] + [search(width) for width in range(2, max_beam + 1)]
        return NBestResult(*tf.switch_case(branch, branches))

    return decode


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
    return _save(module, {SIGNATURE_KEY: classify}, out_dir)


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


def _save(module: tf.Module, functions: dict, out_dir) -> Path:
    """Saves with `functions` {signature key: tf.function} into a sibling temporary directory,
    then renames: no half-written export."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        signatures = {key: function.get_concrete_function() for key, function in functions.items()}
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
