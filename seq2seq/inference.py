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
                   protect_placeholders: bool = False):
    """Yields `(indices, DecodeResult)` for length-sorted batches covering every text once.

    `indices` [batch] are the positions in `texts` of the result's rows. With
    `protect_placeholders`, the reserved tokens of `seq2seq.placeholders` that a
    text holds (the texts are protected already) are each emitted once.
    """
    reserved_ids = placeholders.reserved_ids(tokenizer) if protect_placeholders else ()
    texts = list(texts)
    batches = list(length_sorted_batches(texts, batch_size))
    for indices in tqdm(batches, desc="translating", unit="batch", disable=not progress):
        ids = source_ids(tokenizer, [texts[i] for i in indices], max_source_len)
        yield indices, translate_ids(translator, ids, beam_size=beam_size, max_length=max_length,
                                     length_penalty=length_penalty, reserved_ids=reserved_ids)


def translate_batches(translator, tokenizer, texts, *, casing=None, protect_placeholders=True,
                      **options) -> list[str]:
    """Translations of `texts`, in input order; `options` as in `decode_batches`.

    `casing`: a `seq2seq.casing.FirstWordCasing` applied around the translation, or None.
    `protect_placeholders`: carry placeholders through (`seq2seq.placeholders`);
    off anyway with a tokenizer that lacks the reserved tokens.
    """
    texts = list(texts)
    lowered = np.zeros(len(texts), bool)
    if casing is not None and texts:
        cased, lowered = casing.lower_first_words(texts)
        texts, lowered = [text.decode("utf-8") for text in cased.numpy()], lowered.numpy()
    protect = bool(protect_placeholders and placeholders.reserved_ids(tokenizer))
    protected = [placeholders.protect(text) if protect else placeholders.Protected(text, ()) for text in texts]
    outputs = [""] * len(texts)
    for indices, result in decode_batches(translator, tokenizer, [p.text for p in protected],
                                          protect_placeholders=protect, **options):
        for index, text in zip(indices, tokenizer.detokenize(result.token_ids).numpy()):
            text = text.decode("utf-8")
            outputs[index] = placeholders.restore(text, protected[index].placeholders) if protect else text
    if lowered.any():
        outputs = [text.decode("utf-8") for text in casing.raise_first_letters(outputs, lowered).numpy()]
    return outputs
