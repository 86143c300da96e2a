"""Small generated tasks for tests and demos, deterministic from a seed.

The words are made up from syllables ("bata", "kivi", "mun"), so a task needs
no download and a tokenizer trained on `generate_sentences` covers every task
losslessly. Sequence-to-sequence tasks (`generate_pairs`):

- "copy": the target is the source;
- "reverse": the source words in reverse order;
- "sort": the source words in vocabulary order;
- "dedup": the distinct source words in order of first appearance, so
  target lengths vary independently of source lengths (the source repeats a
  few words);
- "translate": each word replaced by its fixed counterpart in a second
  vocabulary ("bata" -> "zuro"), so source and target vocabularies differ.

`generate_labeled` makes a two-class text task with a decoy shortcut word and
the per-word annotation mask of the saliency step. The same arguments give the
same examples on every machine and Python version.
"""

import random

from seq2seq.data.reader import LabeledText, Pair

# 32 source words ("ban", "bas", "bata", "bavi", "den", ...) and their 32 counterparts.
SOURCE_WORDS = tuple(a + b for a in ("ba", "de", "ki", "lo", "mu", "ne", "po", "ri") for b in ("n", "s", "ta", "vi"))
TARGET_WORDS = tuple(a + b for a in ("zu", "fe", "ga", "hi", "jo", "wa", "xe", "yo") for b in ("l", "m", "ro", "ke"))
# Labeled task: the word that decides the class, and the decoy that may correlate with it.
POSITIVE_WORDS = ("sunel", "sirabo")
NEGATIVE_WORDS = ("grumok", "gostav")
DECOY_WORDS = {"pos": "alfa", "neg": "omeg"}
LABELS = ("pos", "neg")

_TRANSLATION = dict(zip(SOURCE_WORDS, TARGET_WORDS))
_RANK = {word: rank for rank, word in enumerate(SOURCE_WORDS)}


def _copy(words: list[str]) -> list[str]:
    return list(words)


def _reverse(words: list[str]) -> list[str]:
    return words[::-1]


def _sort(words: list[str]) -> list[str]:
    return sorted(words, key=_RANK.__getitem__)


def _dedup(words: list[str]) -> list[str]:
    return list(dict.fromkeys(words))


def _translate(words: list[str]) -> list[str]:
    return [_TRANSLATION[word] for word in words]


# task name -> function from source words to target words.
TASKS = {"copy": _copy, "reverse": _reverse, "sort": _sort, "dedup": _dedup, "translate": _translate}


def _check_counts(n: int, min_words: int, max_words: int) -> None:
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"Expected a number of examples n >= 0. Received: n={n!r}")
    if not (isinstance(min_words, int) and isinstance(max_words, int) and 1 <= min_words <= max_words):
        raise ValueError(
            f"Expected 1 <= min_words <= max_words. Received: min_words={min_words!r}, max_words={max_words!r}"
        )


def _source_words(task: str, rng: random.Random, length: int) -> list[str]:
    """A source sentence of `length` words; "dedup" draws from a few words so they repeat."""
    if task == "dedup":
        pool = rng.sample(SOURCE_WORDS, rng.randint(1, max(1, min(6, length))))
        return [rng.choice(pool) for _ in range(length)]
    return [rng.choice(SOURCE_WORDS) for _ in range(length)]


def generate_pairs(task: str, n: int, seed: int, *, min_words: int = 3, max_words: int = 10) -> list[Pair]:
    """`n` pairs of the named task, source lengths uniform in [min_words, max_words].

    Args:
        task: one of `TASKS`: "copy", "reverse", "sort", "dedup", "translate".
        n: number of pairs.
        seed: the same seed (and arguments) gives the same pairs.
    Returns:
        Pairs of space-joined words.
    """
    if task not in TASKS:
        raise ValueError(f"Expected task to be one of {sorted(TASKS)}. Received: task={task!r}")
    _check_counts(n, min_words, max_words)
    rng = random.Random(f"pairs/{task}/{seed}")
    pairs = []
    for _ in range(n):
        source = _source_words(task, rng, rng.randint(min_words, max_words))
        pairs.append(Pair(" ".join(source), " ".join(TASKS[task](source))))
    return pairs


def generate_labeled(n: int, seed: int, *, decoy_agreement: float = 1.0, min_words: int = 4,
                     max_words: int = 10) -> list[LabeledText]:
    """A two-class task with a shortcut: labels "pos"/"neg", each text with a per-word mask.

    Each text holds filler words, one keyword that decides the label
    (`POSITIVE_WORDS` or `NEGATIVE_WORDS`, at a random position) and, first,
    a decoy word (`DECOY_WORDS`) that names the label with probability
    `decoy_agreement` and the other label otherwise. With agreement 1.0 a
    model can score perfectly by reading the decoy alone; the mask marks the
    decoy 0 (ignore it) and every other word 1, so a saliency penalty can
    steer the model to the keyword. Evaluate on `decoy_agreement=0.5` to see
    which word a model really uses.
    """
    if not 0.0 <= decoy_agreement <= 1.0:
        raise ValueError(f"Expected 0 <= decoy_agreement <= 1. Received: decoy_agreement={decoy_agreement!r}")
    _check_counts(n, min_words, max_words)
    if min_words < 2:
        raise ValueError(f"Expected min_words >= 2 (the decoy and the keyword). Received: min_words={min_words!r}")
    rng = random.Random(f"labeled/{seed}")
    examples = []
    for _ in range(n):
        label = rng.choice(LABELS)
        words = [rng.choice(SOURCE_WORDS) for _ in range(rng.randint(min_words, max_words) - 2)]
        keyword = rng.choice(POSITIVE_WORDS if label == "pos" else NEGATIVE_WORDS)
        words.insert(rng.randint(0, len(words)), keyword)
        decoy_label = label if rng.random() < decoy_agreement else _other(label)
        words.insert(0, DECOY_WORDS[decoy_label])
        mask = (0,) + (1,) * (len(words) - 1)
        examples.append(LabeledText(label, " ".join(words), mask))
    return examples


def _other(label: str) -> str:
    return LABELS[1 - LABELS.index(label)]


def generate_sentences(n: int, seed: int, *, min_words: int = 3, max_words: int = 12) -> list[str]:
    """`n` lowercase sentences over every generated vocabulary, for training tokenizers.

    A SentencePiece model trained on them encodes every generated task
    (pairs and labeled texts) without unknown pieces.
    """
    _check_counts(n, min_words, max_words)
    vocabulary = SOURCE_WORDS + TARGET_WORDS + POSITIVE_WORDS + NEGATIVE_WORDS + tuple(DECOY_WORDS.values())
    rng = random.Random(f"sentences/{seed}")
    return [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(min_words, max_words))) for _ in range(n)]
