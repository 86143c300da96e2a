"""Length bucketing with a token budget: the config and its padding arithmetic.

Pure NumPy (no TensorFlow), so `seq2seq data check` can predict the padding of
the real pipeline (`seq2seq.data.pipeline`) without building it. The rules,
shared by both:

- A source becomes `pieces + [END]`, a target becomes `[START] + pieces` (in)
  and `pieces + [END]` (out); each is truncated to its maximum length keeping
  the special token, so its model length is `min(pieces + 1, max_len)`.
- An example goes to the bucket of the smallest fixed length that holds
  `max(source_length, target_length)`.
- In that bucket, sources are padded to `min(bucket, max_source_len)` and
  targets to `min(bucket, max_target_len)`: one fixed shape per bucket.
- A batch holds `tokens_per_batch // bucket` examples (the last batch of a
  bucket may be smaller).
"""

from dataclasses import dataclass

import numpy as np

# Steps of 1 where most short messages are (gettext en-fr, 8k vocabulary:
# median 7 source and 9 target pieces), widening to 20-50% above 16. On gettext
# en-fr with max lengths 64 the 18 buckets used keep 0.87 of the slots real;
# (8, 16, 24, 32, 48, 64) would keep 0.69. Source and target of a pair share a
# bucket, so even one bucket per length cannot beat 0.90 there.
DEFAULT_BUCKET_LENGTHS = (4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 24, 28, 32, 40, 48, 64, 96, 128, 192, 256)


@dataclass(frozen=True)
class BatchingConfig:
    """How sequences are truncated, bucketed and batched. Lengths count pieces."""

    # Longest source fed to the encoder, END included; longer ones are cut
    # to `max_source_len - 1` pieces + END. 0 = chosen from the training data
    # by `seq2seq train` (`seq2seq.runs.data_defaults`); the pipeline needs a number.
    max_source_len: int = 64
    # Longest decoder input/output, START (in) or END (out) included (0 as above).
    max_target_len: int = 64
    # Padded slots per sequence tensor in one batch: a bucket of padded
    # length L batches `tokens_per_batch // L` examples (at least 1).
    tokens_per_batch: int = 4096
    # The fixed padded lengths, ascending. Lengths above the largest maximum
    # length are ignored; that maximum itself is always a bucket, so every
    # example fits.
    bucket_lengths: tuple[int, ...] = DEFAULT_BUCKET_LENGTHS

    def __post_init__(self):
        for name in ("max_source_len", "max_target_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 2 and value != 0:
                raise ValueError(
                    f"Expected {name} >= 2 (one piece plus the start/end token), or 0 to choose it "
                    f"from the training data. Received: {name}={value!r}"
                )
        if not isinstance(self.tokens_per_batch, int) or self.tokens_per_batch < 1:
            raise ValueError(
                f"Expected a positive tokens_per_batch. Received: tokens_per_batch={self.tokens_per_batch!r}"
            )
        lengths = tuple(self.bucket_lengths)
        if not lengths or any(not isinstance(b, int) or b < 1 for b in lengths) or list(lengths) != sorted(set(lengths)):
            raise ValueError(
                "Expected bucket_lengths to be strictly ascending positive ints, "
                f"for example (8, 16, 32, 64). Received: bucket_lengths={self.bucket_lengths!r}"
            )

    def check_resolved(self) -> None:
        """Raises ValueError while a maximum length is still 0 (to be chosen from the data)."""
        if not (self.max_source_len and self.max_target_len):
            raise ValueError(
                "max_source_len and max_target_len must be chosen before batching (0 means 'from the "
                "training data', which `seq2seq train` resolves). Received: "
                f"max_source_len={self.max_source_len}, max_target_len={self.max_target_len}"
            )

    @property
    def max_len(self) -> int:
        """The longest sequence of either side."""
        return max(self.max_source_len, self.max_target_len)

    @property
    def boundaries(self) -> tuple[int, ...]:
        """The padded lengths actually used: configured lengths below `max_len`, then `max_len`."""
        return tuple(b for b in self.bucket_lengths if b < self.max_len) + (self.max_len,)

    def batch_size(self, bucket_length: int) -> int:
        """Examples per batch in the bucket of padded length `bucket_length`."""
        return max(1, self.tokens_per_batch // bucket_length)

    def padded_shapes(self) -> list[tuple[int, int]]:
        """The (source_len, target_len) each bucket pads to, one per bucket."""
        return [(min(b, self.max_source_len), min(b, self.max_target_len)) for b in self.boundaries]


def model_lengths(piece_counts, max_len: int) -> np.ndarray:
    """Sequence lengths as the model sees them: pieces + 1 special token, truncated.

    Args:
        piece_counts: [examples] SentencePiece pieces per sentence, no special tokens.
        max_len: the side's maximum length (special token included).
    Returns:
        [examples] int64 lengths in [1, max_len].
    """
    counts = np.asarray(piece_counts, dtype=np.int64).reshape(-1)
    return np.minimum(counts + 1, max_len)


def bucket_ids(lengths, config: BatchingConfig) -> np.ndarray:
    """[examples] index into `config.boundaries` of the bucket each model length falls in."""
    boundaries = np.asarray(config.boundaries, dtype=np.int64)
    return np.searchsorted(boundaries, np.asarray(lengths, dtype=np.int64), side="left")


def real_token_fraction(source_lengths, target_lengths, config: BatchingConfig) -> float:
    """Real tokens / padded slots of the batches the pipeline builds, both sides together.

    Simulates `seq2seq.data.pipeline` exactly (see the module docstring). The
    target side is counted once (target_in and target_out pad alike).

    Args:
        source_lengths: [examples] pieces per source sentence, without special tokens.
        target_lengths: [examples] pieces per target sentence, without special
            tokens, or None for single-sequence (classification) data.
        config: the batching config the pipeline uses.
    Returns:
        A float in (0, 1]; 1.0 when there are no examples.
    """
    source = model_lengths(source_lengths, config.max_source_len)
    if target_lengths is None:
        target = np.zeros_like(source)
    else:
        target = model_lengths(target_lengths, config.max_target_len)
        if target.shape != source.shape:
            raise ValueError(
                f"Expected as many target lengths as source lengths. Received: "
                f"{target.size} target and {source.size} source lengths"
            )
    if source.size == 0:
        return 1.0
    buckets = np.asarray(config.boundaries, dtype=np.int64)[bucket_ids(np.maximum(source, target), config)]
    padded = np.minimum(buckets, config.max_source_len).sum()
    if target_lengths is not None:
        padded += np.minimum(buckets, config.max_target_len).sum()
    return float((source.sum() + target.sum()) / padded)
