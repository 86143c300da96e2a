"""The tf.data input pipeline: tokenize once, add special tokens, bucket, pad.

    dataset = make_translation_dataset(sources, targets, tokenizer, BatchingConfig())
    for (source_ids, target_in), target_out in dataset: ...

- source_ids [batch, S] = pieces + [END], target_in [batch, T] = [START] + pieces,
  target_out [batch, T] = pieces + [END]; over-long sequences are cut keeping
  the start/end token; everything is right-padded with PAD_ID (0), never with END.
- An optional annotation [batch, S] float32 (saliency mask Z) is given per
  whitespace word (`str.split()`) and projected onto each word's pieces; END gets 1.
- Batches are bucketed by length as `seq2seq.data.batching` describes, so
  `batching.real_token_fraction` predicts their padding exactly.
"""

import re
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from seq2seq import tokens
from seq2seq.data.batching import BatchingConfig, real_token_fraction
from seq2seq.errors import UserError

# Texts tokenized per call of the tokenizer when building a dataset (bounds the transient Python lists).
TOKENIZE_CHUNK = 2048
# Examples read together from the encoded columns (one gather per column).
READ_BATCH = 256
# Batches shuffled together after bucketing when training, so lengths mix.
BATCH_SHUFFLE_BUFFER = 32
_WORD = re.compile(r"\S+")  # A whitespace word, as str.split() finds it.
_NO_WORD_END = np.iinfo(np.int64).max


def make_translation_dataset(
    sources: Sequence[str], targets: Sequence[str], tokenizer, config: BatchingConfig,
    *, annotations: Sequence[Sequence[float]] | None = None, training: bool = True, seed: int = 0,
) -> tf.data.Dataset:
    """Batches of ((source_ids, target_in[, annotation]), target_out).

    Args:
        sources, targets: [examples] aligned sentences.
        tokenizer: a `seq2seq.tokenizer.SentencePieceTokenizer`.
        config: truncation and bucketing.
        annotations: optional [examples][words] 0/1 per whitespace word of the source.
        training: shuffle (seeded) before bucketing and shuffle batches after it.
        seed: the shuffle seed.
    Returns:
        A dataset of int32 [batch, S], [batch, T], (float32 [batch, S]) and int32 [batch, T].
    """
    _check_aligned(sources=sources, targets=targets)
    config.check_resolved()
    columns = _source_columns(sources, annotations, tokenizer)
    columns["target_pieces"] = _tokenize_all(targets, tokenizer)

    def encode(columns):
        encoded = _encode_source(columns, config.max_source_len)
        encoded["target_in"], encoded["target_out"] = _targets_from_pieces(columns["target_pieces"],
                                                                           config.max_target_len)
        return encoded

    def to_tuple(batch):
        inputs = (batch["source_ids"], batch["target_in"])
        if "annotation" in batch:
            inputs += (batch["annotation"],)
        return inputs, batch["target_out"]

    dataset = _encoded_dataset(columns, encode, training, seed)
    return _bucket(dataset, config, training, seed).map(to_tuple).prefetch(tf.data.AUTOTUNE)


def make_classification_dataset(
    texts: Sequence[str], labels: Sequence[int], tokenizer, config: BatchingConfig,
    *, masks: Sequence[Sequence[float]] | None = None, training: bool = True, seed: int = 0,
) -> tf.data.Dataset:
    """Batches of (token_ids, label), or ((token_ids, annotation), label) with masks.

    token_ids [batch, S] int32 = pieces + [END] (as a translation source),
    label [batch] int32, annotation [batch, S] float32 projected from `masks`
    (0/1 per whitespace word of the text). Bucketing as in
    `make_translation_dataset`, by the token_ids length alone.
    """
    _check_aligned(texts=texts, labels=labels)
    columns = _source_columns(texts, masks, tokenizer)
    columns["label"] = np.asarray(labels, dtype=np.int32)

    def encode(columns):
        encoded = _encode_source(columns, config.max_source_len)
        encoded["label"] = columns["label"]
        return encoded

    def to_tuple(batch):
        if "annotation" in batch:
            return (batch["source_ids"], batch["annotation"]), batch["label"]
        return batch["source_ids"], batch["label"]

    dataset = _encoded_dataset(columns, encode, training, seed)
    return _bucket(dataset, config, training, seed).map(to_tuple).prefetch(tf.data.AUTOTUNE)


def encode_sources(strings, tokenizer, max_source_len: int) -> tf.RaggedTensor:
    """Source ids: pieces + [END], cut to `max_source_len` keeping END.

    Args:
        strings: [batch] tf.string.
    Returns:
        tf.RaggedTensor int32 [batch, None]; `.to_tensor()` pads with PAD_ID.
    """
    return _with_end(tokenizer.tokenize(strings), max_source_len)


def encode_sources_with_offsets(strings, tokenizer, max_source_len: int):
    """`encode_sources` and each piece's start byte, from one tokenization.

    Returns:
        (ids tf.RaggedTensor int32 [batch, None] as `encode_sources` gives,
        starts tf.RaggedTensor int64 [batch, None]: the UTF-8 byte offset
        where each piece of the uncut text starts).
    """
    pieces, starts, _ = tokenizer.tokenize_with_offsets(strings)
    return _with_end(pieces, max_source_len), starts


def encode_targets(strings, tokenizer, max_target_len: int) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    """Decoder input [START] + pieces and output pieces + [END], each at most `max_target_len`.

    Args:
        strings: [batch] tf.string.
    Returns:
        (target_in, target_out): tf.RaggedTensor int32 [batch, None], equal row lengths.
    """
    return _targets_from_pieces(tokenizer.tokenize(strings), max_target_len)


def _targets_from_pieces(pieces: tf.RaggedTensor, max_target_len: int) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    """`encode_targets` from the pieces of the strings."""
    pieces = pieces[:, : max_target_len - 1]
    return _concat(_column(pieces, tokens.START_ID), pieces), _concat(pieces, _column(pieces, tokens.END_ID))


# --------------------------------------------------------------------------- measuring


def count_pieces(texts: Sequence[str], tokenizer) -> np.ndarray:
    """[examples] number of pieces of each text, without special tokens."""
    counts = [
        tokenizer.tokenize(tf.constant(list(texts[i : i + 4096]), tf.string)).row_lengths().numpy()
        for i in range(0, len(texts), 4096)
    ]
    return np.concatenate(counts) if counts else np.zeros([0], np.int64)


def expected_real_token_fraction(sources, targets, tokenizer, config: BatchingConfig) -> float:
    """`batching.real_token_fraction` of these texts; `targets` may be None (classification)."""
    target_counts = None if targets is None else count_pieces(targets, tokenizer)
    return real_token_fraction(count_pieces(sources, tokenizer), target_counts, config)


def measure_real_token_fraction(dataset: tf.data.Dataset) -> float:
    """Real (non-pad) tokens / padded slots over a dataset made by this module.

    Counts the source (or classification token_ids) and, for translation,
    target_out; the annotation and target_in are not counted (target_in pads
    exactly like target_out).
    """
    real = slots = 0
    for inputs, outputs in dataset.as_numpy_iterator():
        sequences = [inputs[0] if isinstance(inputs, tuple) else inputs]
        if outputs.ndim == 2:
            sequences.append(outputs)
        for ids in sequences:
            real += int(np.count_nonzero(ids != tokens.PAD_ID))
            slots += ids.size
    return real / slots if slots else 1.0


# --------------------------------------------------------------------------- encoding


def _check_aligned(**columns) -> None:
    (first, first_values), *others = columns.items()
    for name, values in others:
        if len(values) != len(first_values):
            raise UserError(
                f"{first} and {name} must be aligned, one per example; got {len(first_values)} "
                f"{first} and {len(values)} {name}"
            )


def _annotation_columns(texts, annotations) -> dict:
    """Per-word values and word end byte offsets, as ragged [examples, words] columns."""
    if annotations is None:
        return {}
    _check_aligned(texts=texts, annotations=annotations)
    ends, values = [], []
    for index, (text, annotation) in enumerate(zip(texts, annotations)):
        word_ends = word_end_bytes(text)
        if len(word_ends) != len(annotation):
            raise UserError(
                f"annotation {index} has {len(annotation)} values but its text has {len(word_ends)} "
                f"whitespace words ({text[:60]!r}); give one 0/1 value per word of text.split()"
            )
        ends.append(word_ends)
        values.append(annotation)
    lengths = [len(e) for e in ends]
    return {
        "word_ends": tf.RaggedTensor.from_row_lengths(np.fromiter(_flat(ends), np.int64), lengths),
        "word_values": tf.RaggedTensor.from_row_lengths(np.fromiter(_flat(values), np.float32), lengths),
    }


def _flat(rows):
    return (value for row in rows for value in row)


def word_end_bytes(text: str) -> list[int]:
    """UTF-8 byte offset just past each whitespace word of `text`."""
    return [len(text[: match.end()].encode("utf-8")) for match in _WORD.finditer(text)]


def _encoded_dataset(columns: dict, encode, training: bool, seed: int) -> tf.data.Dataset:
    """Encodes every example once, eagerly, and reads them in a (seeded, when training) shuffled order.

    `encode` maps the columns to ragged [examples, None] (or dense [examples])
    values; the dataset yields their rows. What is shuffled is the row
    numbers, so the buffer holds one integer per example, and the order
    depends only on `seed` and the pass (epoch), as when whole examples were
    shuffled. Rows are gathered READ_BATCH at a time (one gather per column)
    and then unbatched: ~2x cheaper per epoch than indexing one row at a time.
    """
    examples = int(columns["source_pieces"].nrows())
    if not examples:
        raise UserError("no examples to build a dataset from; check that the corpus is not empty")
    encoded = encode(columns)
    rows = tf.data.Dataset.range(examples)
    if training:
        rows = rows.shuffle(examples, seed=seed)
    # Unbatched ragged rows are 1-D RaggedTensorSpecs; padded_batch wants plain tensors.
    gathered = rows.batch(READ_BATCH).map(lambda batch: {key: tf.gather(value, batch) for key, value in encoded.items()})
    return gathered.unbatch().map(lambda example: {key: tf.identity(value) for key, value in example.items()})


def _with_end(pieces: tf.RaggedTensor, max_len: int, end=tokens.END_ID) -> tf.RaggedTensor:
    """Cuts ragged rows to `max_len - 1` values and appends `end`."""
    pieces = pieces[:, : max_len - 1]
    return _concat(pieces, _column(pieces, end))


def _source_columns(texts: Sequence[str], annotations, tokenizer) -> dict:
    """The texts' pieces (ragged [examples, None]), with their start bytes and the word columns if annotated."""
    if annotations is None:
        return {"source_pieces": _tokenize_all(texts, tokenizer)}
    columns = _annotation_columns(texts, annotations)
    pieces, starts = [], []
    for i in range(0, len(texts), TOKENIZE_CHUNK):
        chunk_pieces, chunk_starts, _ = tokenizer.tokenize_with_offsets(list(texts[i : i + TOKENIZE_CHUNK]))
        pieces.append(chunk_pieces)
        starts.append(chunk_starts)
    columns["source_pieces"], columns["source_starts"] = _concat_rows(pieces, tf.int32), _concat_rows(starts, tf.int64)
    return columns


def _tokenize_all(texts: Sequence[str], tokenizer) -> tf.RaggedTensor:
    """[examples, None] int32 pieces of every text, tokenized eagerly in chunks."""
    chunks = [tokenizer.tokenize(list(texts[i : i + TOKENIZE_CHUNK])) for i in range(0, len(texts), TOKENIZE_CHUNK)]
    return _concat_rows(chunks, tf.int32)


def _concat_rows(chunks: list, dtype) -> tf.RaggedTensor:
    if not chunks:
        return tf.RaggedTensor.from_row_lengths(tf.zeros([0], dtype), tf.zeros([0], tf.int64))
    return tf.concat(chunks, axis=0)


def _encode_source(columns: dict, max_source_len: int) -> dict:
    """source_ids (and annotation) of the tokenized texts, as ragged [examples, None]."""
    if "word_ends" not in columns:
        return {"source_ids": _with_end(columns["source_pieces"], max_source_len)}
    annotation = _project_onto_pieces(columns["word_ends"], columns["word_values"], columns["source_starts"])
    return {
        "source_ids": _with_end(columns["source_pieces"], max_source_len),
        "annotation": _with_end(annotation, max_source_len, end=1.0),
    }


def _project_onto_pieces(word_ends, word_values, piece_starts):
    """Each piece takes the value of its word: the first word ending after the piece starts.

    Args:
        word_ends: ragged int64 [batch, words], byte offset past each word.
        word_values: ragged float32 [batch, words].
        piece_starts: ragged int64 [batch, pieces], byte offset where each piece starts
            (a word's first piece starts at the whitespace before the word).
    Returns:
        ragged float32 [batch, pieces].
    """
    ends = word_ends.to_tensor(default_value=_NO_WORD_END)
    starts = piece_starts.to_tensor(default_value=0)
    word = tf.searchsorted(ends, starts, side="right", out_type=tf.int64)
    # Pieces past the last word (none in practice) take the value 1 of the extra column.
    word = tf.minimum(word, word_ends.row_lengths()[:, None])
    values = tf.pad(word_values.to_tensor(default_value=1.0), [[0, 0], [0, 1]], constant_values=1.0)
    projected = tf.gather(values, word, batch_dims=1)
    return tf.RaggedTensor.from_tensor(projected, lengths=piece_starts.row_lengths())


def _column(like: tf.RaggedTensor, value) -> tf.RaggedTensor:
    """A ragged [batch, 1] column of `value`, with the rows and dtype of `like`."""
    column = tf.fill(tf.stack([like.nrows(), 1]), tf.constant(value, like.dtype))
    return tf.RaggedTensor.from_tensor(column)


def _concat(left: tf.RaggedTensor, right: tf.RaggedTensor) -> tf.RaggedTensor:
    return tf.concat([left, right], axis=1)


# --------------------------------------------------------------------------- bucketing


_SOURCE_KEYS = ("source_ids", "annotation")
_TARGET_KEYS = ("target_in", "target_out")


def _bucket(dataset: tf.data.Dataset, config: BatchingConfig, training: bool, seed: int) -> tf.data.Dataset:
    """Groups examples by bucket and pads each batch to the bucket's fixed shape."""
    boundaries = tf.constant(config.boundaries, tf.int64)
    source_lengths = tf.constant([s for s, _ in config.padded_shapes()], tf.int64)
    target_lengths = tf.constant([t for _, t in config.padded_shapes()], tf.int64)
    batch_sizes = tf.constant([config.batch_size(b) for b in config.boundaries], tf.int64)

    def bucket_of(example):
        length = tf.reduce_max(
            [tf.shape(example[k], out_type=tf.int64)[0] for k in _SOURCE_KEYS + _TARGET_KEYS if k in example]
        )
        return tf.reduce_sum(tf.cast(boundaries < length, tf.int64))

    def pad_batch(bucket, window):
        shapes = {}
        for key in window.element_spec:
            if key in _SOURCE_KEYS:
                shapes[key] = tf.reshape(source_lengths[bucket], [1])
            elif key in _TARGET_KEYS:
                shapes[key] = tf.reshape(target_lengths[bucket], [1])
            else:
                shapes[key] = tf.constant([], tf.int64)
        return window.padded_batch(batch_sizes[bucket], padded_shapes=shapes)

    dataset = dataset.group_by_window(bucket_of, pad_batch, window_size_func=lambda bucket: batch_sizes[bucket])
    if training:
        dataset = dataset.shuffle(BATCH_SHUFFLE_BUFFER, seed=seed)
    return dataset
