"""Settings of a translator run chosen from its training data ("auto" = 0).

`seq2seq train` with no options trains on any corpus: the settings that depend
on the corpus are 0 in `RunConfig` and chosen here from the training split,
each with the reason logged ("vocabulary 2,300: 47,737 pairs, 276 characters").
A value given in the config or with `--set` is kept as given.

    vocabulary    characters of the corpus + one piece per 50 training pairs
                  (500 to 8,000): rich scripts (CJK) get room for words too;
                  a soft limit, so a small corpus never fails.
    length cuts   the 98th percentile of pieces per sentence (+ END / START),
                  or the longest sentence when it is within 1.5x that
                  percentile (a short tail costs little, and a cut target
                  teaches the model to stop at the cut); at least 8, at
                  most 128, per side.
    epochs        enough epochs for about 5 million target tokens
                  (2 to 40).

How the rules were chosen (and measured on several language pairs) is told in
`docs/translation-quality.md`. The functions are pure (no TensorFlow) so that
they are tested on plain numbers.
"""

import dataclasses
import math

import numpy as np

# Any of these fields at 0 in a RunConfig is chosen from the data: (section, field).
AUTO_FIELDS = (("tokenizer", "vocab_size"), ("batching", "max_source_len"),
               ("batching", "max_target_len"), ("train", "epochs"))

PAIRS_PER_PIECE = 50
MIN_WORD_PIECES, MAX_WORD_PIECES = 500, 8000
# Characters used fewer times than this are left to SentencePiece's coverage rule.
MIN_CHARACTER_COUNT = 3
LENGTH_PERCENTILE = 98
# A tail up to this many times the percentile is kept whole.
SHORT_TAIL_RATIO = 1.5
MIN_CUT, MAX_CUT = 8, 128
TARGET_TOKENS = 5_000_000
MIN_EPOCHS, MAX_EPOCHS = 2, 40


def is_auto(config, section: str, name: str) -> bool:
    return getattr(getattr(config, section), name) == 0


def choose_vocab_size(num_pairs: int, characters: int) -> tuple[int, str]:
    """Pieces for a corpus of `num_pairs` pairs whose text uses `characters` distinct characters.

    Returns `(vocab_size, reason)`; the size is rounded up to a multiple of 100
    and is a soft limit (SentencePiece stops where the text has no more pieces).
    """
    word_pieces = min(MAX_WORD_PIECES, max(MIN_WORD_PIECES, num_pairs // PAIRS_PER_PIECE))
    size = int(math.ceil((word_pieces + characters) / 100.0)) * 100
    return size, f"vocabulary {size:,}: {num_pairs:,} pairs, {characters:,} characters"


def count_characters(texts, min_count: int = MIN_CHARACTER_COUNT) -> int:
    """Distinct characters used at least `min_count` times in `texts`."""
    counts = {}
    for text in texts:
        for char in text:
            counts[char] = counts.get(char, 0) + 1
    return sum(1 for n in counts.values() if n >= min_count)


def choose_length_cut(piece_counts, side: str) -> tuple[int, str]:
    """The longest sequence of one side: the 98th percentile of pieces, + 1 special token.

    When the longest sentence is at most SHORT_TAIL_RATIO times that
    percentile, the cut is the longest sentence (+ 1) instead: nothing is cut.

    Args:
        piece_counts: [pairs] pieces per sentence of that side, no special tokens.
        side: "source" or "target", for the reason.
    """
    counts = np.asarray(piece_counts, dtype=np.int64)
    percentile = float(np.percentile(counts, LENGTH_PERCENTILE)) if counts.size else 0.0
    longest = int(counts.max()) if counts.size else 0
    short_tail = longest <= SHORT_TAIL_RATIO * percentile
    cut = int(min(MAX_CUT, max(MIN_CUT, (longest if short_tail else math.ceil(percentile)) + 1)))
    kept = float(np.mean(counts + 1 <= cut)) if counts.size else 1.0
    why = (f"the longest, {longest} pieces, is within {SHORT_TAIL_RATIO:g}x the {LENGTH_PERCENTILE}th percentile"
           if short_tail else f"the {LENGTH_PERCENTILE}th percentile; the longest has {longest} pieces")
    return cut, f"max {side} length {cut}: {kept:.1%} of the training {side}s fit ({why})"


def choose_epochs(target_tokens_per_epoch: int) -> tuple[int, str]:
    """Epochs for about TARGET_TOKENS target tokens, from one epoch's target tokens."""
    epochs = TARGET_TOKENS // max(1, target_tokens_per_epoch)
    epochs = int(min(MAX_EPOCHS, max(MIN_EPOCHS, epochs)))
    return epochs, (f"epochs {epochs}: {target_tokens_per_epoch:,} target tokens per epoch "
                    f"(about {TARGET_TOKENS / 1e6:g} million in all)")


def with_value(config, section: str, name: str, value):
    """`config` with `config.<section>.<name> = value` (frozen dataclasses)."""
    part = dataclasses.replace(getattr(config, section), **{name: value})
    return dataclasses.replace(config, **{section: part})


def fill_from(requested, saved):
    """`requested` with its auto (0) fields taken from `saved`: how a resumed run compares configs."""
    for section, name in AUTO_FIELDS:
        if is_auto(requested, section, name):
            requested = with_value(requested, section, name, getattr(getattr(saved, section), name))
    return requested
