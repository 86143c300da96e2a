"""Decoding a translator for diagnosis: the token ids `seq2seq diagnose --model DIR --data FILE` measures.

`decode_run` decodes a run directory's model (`seq2seq.runs.translation.load_run`)
with the run's decode settings and returns the outputs' and the references'
token ids; `diagnose_translator` decodes with explicit settings and returns the
`Diagnosis` and the detokenized outputs. Ids rather than text, so that END at
the first step and outputs that never end are measured, not inferred.
Lists of ids hold pieces + END (no START, no padding): `[[12, 7, END], ...]`.
TensorFlow is imported inside the functions: `seq2seq.diagnostics` stays NumPy.
"""


def decode_ids(translator, tokenizer, texts, *, max_source_len: int, max_length: int,
               beam_size: int = 1, length_penalty: float = 0.0, batch_size: int = 64,
               coverage_penalty: float = 0.0) -> list[list[int]]:
    """Decoded token ids of `texts` in input order, each ending with END (unless cut at `max_length`)."""
    from seq2seq.inference import decode_batches

    texts = list(texts)
    outputs: list[list[int]] = [[] for _ in texts]
    for indices, result in decode_batches(translator, tokenizer, texts, max_source_len=max_source_len,
                                          beam_size=beam_size, max_length=max_length,
                                          length_penalty=length_penalty, batch_size=batch_size,
                                          coverage_penalty=coverage_penalty):
        for index, row, length in zip(indices, result.token_ids.numpy(), result.lengths.numpy()):
            outputs[index] = row[:length].tolist()
    return outputs


def decode_run(run, pairs, beam_size=None) -> tuple[list[list[int]], list[list[int]]]:
    """A run's token ids for the pairs' sources and the references' ids, with its decode settings.

    `run` is a `seq2seq.runs.translation.TranslationRun` (`load_run(directory)`);
    `beam_size` None uses the run's.
    """
    from seq2seq.runs.translation import decode_options

    config = run.config
    predictions = decode_ids(run.translator, run.tokenizer, [pair.source for pair in pairs],
                             batch_size=config.decode.batch_size, **decode_options(run, beam_size=beam_size))
    references = reference_ids(run.tokenizer, [pair.target for pair in pairs], config.batching.max_target_len)
    return predictions, references


def reference_ids(tokenizer, texts, max_length: int) -> list[list[int]]:
    """References as the model is trained to emit them: pieces + END, cut to `max_length`."""
    import tensorflow as tf

    from seq2seq.data.pipeline import encode_targets

    _, target_out = encode_targets(tf.constant(list(texts), tf.string), tokenizer, max_length)
    return [row.tolist() for row in target_out.numpy()]


def ids_to_texts(tokenizer, rows: list[list[int]]) -> list[str]:
    """Detokenized strings of id rows (stops at END, drops PAD and START)."""
    import tensorflow as tf

    ragged = tf.ragged.constant(rows, dtype=tf.int32) if rows else tf.zeros([0, 1], tf.int32)
    return [text.decode("utf-8") for text in tokenizer.detokenize(ragged).numpy()]


def diagnose_translator(translator, tokenizer, sources, references, *, max_source_len: int,
                        max_length: int, beam_size: int = 1, length_penalty: float = 0.0,
                        batch_size: int = 64, targets=None, padding_masked=None):
    """Decodes `sources` and diagnoses the token ids against the references' ids.

    Returns `(diagnosis, hypotheses)`: the `Diagnosis` (token-id level, so the
    first-step END and never-ended outputs are measured, not inferred from
    text) and the detokenized outputs, for BLEU and exact match.
    """
    from seq2seq.diagnostics import diagnose

    predicted = decode_ids(translator, tokenizer, sources, max_source_len=max_source_len,
                           max_length=max_length, beam_size=beam_size,
                           length_penalty=length_penalty, batch_size=batch_size)
    expected = reference_ids(tokenizer, references, max_length)
    diagnosis = diagnose(predicted, expected, targets, padding_masked=padding_masked)
    return diagnosis, ids_to_texts(tokenizer, predicted)
