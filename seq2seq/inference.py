"""Batched inference on strings: source encoding shared with training, length-sorted batches.

Calling a model once per sentence costs ~100 ms each; here sentences are sorted
by length, batched, encoded exactly as the training pipeline encodes sources,
and decoded in one graph per batch (`seq2seq.decoding.translate_ids`).
With `protect_placeholders` (and a tokenizer that holds the reserved tokens),
placeholders such as `%s` are replaced by reserved tokens before encoding, the
decoder must emit each of a source's reserved tokens once, and the output's
reserved tokens are replaced by the source's placeholders again
(`seq2seq.placeholders`).
"""

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from seq2seq import placeholders
from seq2seq.data.pipeline import encode_sources
from seq2seq.decoding import translate_ids


def source_ids(tokenizer, texts, max_source_len: int) -> tf.Tensor:
    """int32 [batch, src_time]: pieces + END, cut to `max_source_len`, padded with 0."""
    return encode_sources(tf.constant(list(texts), tf.string), tokenizer, max_source_len).to_tensor()


def length_sorted_batches(texts, batch_size: int):
    """Yields index arrays of batches of similar length (longest first), covering every text."""
    order = np.argsort([-len(text) for text in texts], kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def decode_batches(translator, tokenizer, texts, *, max_source_len: int, beam_size: int,
                   max_length: int, length_penalty: float, batch_size: int = 64, progress: bool = False,
                   protect_placeholders: bool = False, n_best=None, sampling=None, coverage_penalty: float = 0.0):
    """Yields `(indices, DecodeResult)` for length-sorted batches covering every text once.

    `indices` [batch] are the positions in `texts` of the result's rows. With
    `protect_placeholders`, the reserved tokens of `seq2seq.placeholders` that a
    text holds (the texts are protected already) are each emitted once. With
    `n_best`, the results are `NBestResult`s of that many hypotheses per text.
    `sampling`: a `seq2seq.decoding.Sampling` to draw translations instead
    (`beam_size` 1); batch k draws from the seed `(sampling.seed, k)`.
    `coverage_penalty`: GNMT's coverage penalty weight of beam search.
    """
    reserved_ids = placeholders.reserved_ids(tokenizer) if protect_placeholders else ()
    texts = list(texts)
    batches = list(length_sorted_batches(texts, batch_size))
    for stream, indices in enumerate(tqdm(batches, desc="translating", unit="batch", disable=not progress)):
        ids = source_ids(tokenizer, [texts[i] for i in indices], max_source_len)
        yield indices, translate_ids(translator, ids, beam_size=beam_size, max_length=max_length,
                                     length_penalty=length_penalty, reserved_ids=reserved_ids, n_best=n_best,
                                     sampling=sampling, sample_stream=stream, coverage_penalty=coverage_penalty)


def translate_batches(translator, tokenizer, texts, *, casing=None, protect_placeholders=True,
                      **options) -> list[str]:
    """Translations of `texts`, in input order; `options` as in `decode_batches`.

    `casing`: a `seq2seq.casing.FirstWordCasing` applied around the translation, or None.
    `protect_placeholders`: carry placeholders through (`seq2seq.placeholders`);
    off anyway with a tokenizer that lacks the reserved tokens.
    """
    read = _Reading(tokenizer, texts, casing, protect_placeholders)
    outputs = [""] * len(read.protected)
    for indices, result in decode_batches(translator, tokenizer, read.sources, protect_placeholders=read.protect,
                                          **options):
        for index, text in zip(indices, tokenizer.detokenize(result.token_ids).numpy()):
            outputs[index] = read.restore(text.decode("utf-8"), index)
    return read.raise_first_letters(outputs, read.lowered)


def translate_n_best(translator, tokenizer, texts, *, n_best: int = 1, with_scores: bool = False,
                     alignments=None, casing=None, protect_placeholders=True, **options) -> list[dict]:
    """The `n_best` best translations of each text with their scores and alignments, in input order.

    Returns one `{"source": text, "hypotheses": [...]}` per text, its
    hypotheses best first, each `{"text": translation}` plus, with
    `with_scores`, `"log_prob"` (the model's log-probability of its pieces,
    end token included) and `"score"` (what beam search ranks by: log_prob
    over the length penalty), and with `alignments`, `"alignment"`: "hard" =
    for each output piece (end token included) the index of the source piece
    it attended to most; "soft" = the attention matrix [output pieces][source
    pieces + end token]. A slot beam search left empty is left out, so a
    text may get fewer than `n_best` hypotheses. `casing`,
    `protect_placeholders` and `options` as in `translate_batches`.
    """
    if alignments not in (None, "hard", "soft"):
        raise ValueError(f"`alignments` must be None, 'hard' or 'soft'. Received: alignments={alignments!r}")
    read = _Reading(tokenizer, texts, casing, protect_placeholders)
    outputs = [None] * len(read.protected)
    for indices, result in decode_batches(translator, tokenizer, read.sources, protect_placeholders=read.protect,
                                          n_best=n_best, **options):
        batch = len(indices)
        ids = tf.reshape(result.token_ids, [batch * n_best, -1])
        texts_out = [text.decode("utf-8") for text in tokenizer.detokenize(ids).numpy()]
        texts_out = [read.restore(text, indices[i // n_best]) for i, text in enumerate(texts_out)]
        texts_out = read.raise_first_letters(texts_out, np.repeat(read.lowered[indices], n_best))
        source_lengths = _source_lengths(tokenizer, [read.sources[i] for i in indices], options["max_source_len"])
        arrays = {field: getattr(result, field).numpy() for field in ("lengths", "log_probs", "scores", "attention")}
        for row, index in enumerate(indices):
            hypotheses = [_hypothesis(texts_out[row * n_best + k], arrays, row, k, source_lengths[row], with_scores,
                                      alignments) for k in range(n_best) if arrays["lengths"][row, k]]
            outputs[index] = {"source": read.texts[index], "hypotheses": hypotheses}
    return outputs


def _hypothesis(text, arrays, row, k, source_length, with_scores, alignments) -> dict:
    """Hypothesis k of `row` as `translate_n_best` writes it; `arrays`: the NBestResult's fields as NumPy."""
    hypothesis = {"text": text}
    if with_scores:
        hypothesis["log_prob"] = float(arrays["log_probs"][row, k])
        hypothesis["score"] = float(arrays["scores"][row, k])
    if alignments:
        weights = arrays["attention"][row, k, : arrays["lengths"][row, k], :source_length]
        hypothesis["alignment"] = (weights.argmax(axis=-1).tolist() if alignments == "hard"
                                   else np.round(weights, 4).tolist())
    return hypothesis


def _source_lengths(tokenizer, texts, max_source_len: int) -> list[int]:
    """Source ids (pieces + END) of each text as the decoder reads it."""
    return [int(n) for n in encode_sources(tf.constant(texts, tf.string), tokenizer, max_source_len).row_lengths()]


class _Reading:
    """Texts as the model reads them: first words lowered by `casing`, placeholders protected.

    `sources` are the texts to decode; `restore` puts a text's placeholders back into
    an output of it, `raise_first_letters` the casing.
    """

    def __init__(self, tokenizer, texts, casing, protect_placeholders):
        self.texts, self.casing = list(texts), casing
        texts = self.texts
        self.lowered = np.zeros(len(texts), bool)
        if casing is not None and texts:
            cased, lowered = casing.lower_first_words(texts)
            texts, self.lowered = [text.decode("utf-8") for text in cased.numpy()], lowered.numpy()
        self.protect = bool(protect_placeholders and placeholders.reserved_ids(tokenizer))
        self.protected = [placeholders.protect(text) if self.protect else placeholders.Protected(text, ())
                          for text in texts]
        self.sources = [p.text for p in self.protected]

    def restore(self, output: str, index: int) -> str:
        return placeholders.restore(output, self.protected[index].placeholders) if self.protect else output

    def raise_first_letters(self, outputs: list[str], lowered) -> list[str]:
        if not np.any(lowered):
            return outputs
        return [text.decode("utf-8") for text in self.casing.raise_first_letters(outputs, lowered).numpy()]
