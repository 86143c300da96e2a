"""Forced decoding: the model's log-probability of given translations (OpenNMT-tf's `score`).

Reranking n-best lists, filtering noisy pairs out of a corpus and comparing two
models on the same references all need the probability the model gives a
*given* target, not the one it would write. Each pair runs teacher-forced:

    log_prob = sum over t of log softmax(logits[t])[target_out[t]]

over the target's pieces and its end token (`target_out` = pieces + END, fed
`target_in` = START + pieces), the same quantity beam search sums into
`DecodeResult.log_probs` for the hypotheses it writes: scoring a hypothesis of
`seq2seq translate --with-scores` gives its `log_prob` again (to float error).

Pairs are read as `seq2seq translate` reads sources: the run's first-word
casing (a lowered source word lowers the target's first letter, the inverse of
the translation's raised one), placeholders protected as in training
(`seq2seq.placeholders.protect_pair`), sources cut at `max_source_len`.
Targets are never cut. Batches are length-sorted and scored in one graph call
each, by one `tf.function` per translator with a [None, None] input
signature, so that no batch shape retraces it.
"""

import weakref

import numpy as np
import tensorflow as tf

from seq2seq import placeholders
from seq2seq.data.pipeline import encode_sources, encode_targets
from seq2seq.inference import length_sorted_batches
from seq2seq.tokens import PAD_ID

_SCORE_FUNCTIONS = weakref.WeakKeyDictionary()  # translator -> tf.function
_NO_CUT = 2**31 - 1  # `encode_targets`' cut, for targets that are never cut


def score_ids(translator, source_ids, target_in, target_out):
    """Teacher-forced log-probabilities of padded targets, in one graph call.

    Args:
        translator: a `seq2seq.models.translator.Translator`.
        source_ids: int32 [batch, src_time], pieces + END, padded with PAD_ID.
        target_in: int32 [batch, tgt_time], START + pieces, padded with PAD_ID.
        target_out: int32 [batch, tgt_time], pieces + END, padded with PAD_ID.
    Returns:
        `(log_probs [batch], token_log_probs [batch, tgt_time])`, float32:
        each target token's log-probability (0 at padding) and their sum.
    """
    function = _SCORE_FUNCTIONS.get(translator)
    if function is None:
        function = _SCORE_FUNCTIONS[translator] = _score_function(weakref.ref(translator))
    return function(*(tf.cast(ids, tf.int32) for ids in (source_ids, target_in, target_out)))


def _score_function(translator_ref):
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec, spec])
    def score(source_ids, target_in, target_out):
        logits = translator_ref()((source_ids, target_in), training=False)["logits"]
        log_softmax = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)  # [batch, tgt_time, vocab]
        token_log_probs = tf.gather(log_softmax, target_out, batch_dims=2)
        token_log_probs = tf.where(target_out == PAD_ID, 0.0, token_log_probs)
        return tf.reduce_sum(token_log_probs, axis=1), token_log_probs

    return score


def score_pairs(translator, tokenizer, sources, targets, *, max_source_len: int, casing=None,
                protect_placeholders: bool = True, batch_size: int = 64, per_token: bool = False) -> list[dict]:
    """The log-probability of each target given its source, in input order.

    Args:
        translator: a `seq2seq.models.translator.Translator`.
        tokenizer: its `SentencePieceTokenizer`.
        sources, targets: equally long lists of strings.
        max_source_len: sources are cut to this many ids, END included (as translate cuts them).
        casing: the run's `seq2seq.casing.FirstWordCasing`, or None.
        protect_placeholders: protect placeholders as in training (off anyway
            with a tokenizer that lacks the reserved tokens).
        batch_size: pairs per graph call; bounds memory, not the results.
        per_token: add `"token_log_probs"`, one per target piece and the end token.
    Returns:
        One `{"source", "target", "log_prob", "tokens"}` per pair (`tokens`:
        target pieces + the end token, the count the log-probability sums over).
    """
    sources, targets = list(sources), list(targets)
    if len(sources) != len(targets):
        raise ValueError(f"`sources` and `targets` must be equally long. Received: {len(sources)} sources "
                         f"and {len(targets)} targets")
    read_sources, read_targets = _as_read(tokenizer, sources, targets, casing, protect_placeholders)
    results = [None] * len(sources)
    for indices in length_sorted_batches(read_sources, batch_size):
        source_ids = encode_sources(tf.constant([read_sources[i] for i in indices]), tokenizer, max_source_len)
        target_in, target_out = encode_targets(tf.constant([read_targets[i] for i in indices]), tokenizer, _NO_CUT)
        log_probs, token_log_probs = score_ids(translator, source_ids.to_tensor(), target_in.to_tensor(),
                                               target_out.to_tensor())
        lengths = target_out.row_lengths().numpy()
        for row, index in enumerate(indices):
            result = {"source": sources[index], "target": targets[index], "log_prob": float(log_probs[row]),
                      "tokens": int(lengths[row])}
            if per_token:
                result["token_log_probs"] = token_log_probs[row, : lengths[row]].numpy().tolist()
            results[index] = result
    return results


def _as_read(tokenizer, sources, targets, casing, protect_placeholders):
    """The sources and targets as the model reads and writes them: casing, then placeholders."""
    if casing is not None and sources:
        cased, lowered = casing.lower_first_words(sources)
        sources = [text.decode("utf-8") for text in cased.numpy()]
        targets = [_lower_first(t) if low else t for t, low in zip(targets, np.asarray(lowered))]
    if protect_placeholders and sources and placeholders.reserved_ids(tokenizer):
        sources, targets = map(list, zip(*(placeholders.protect_pair(s, t) for s, t in zip(sources, targets))))
    return sources, targets


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
