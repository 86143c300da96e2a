"""Reading a rarely capitalised first word in its common lowercase form (truecasing at inference).

Interfaces capitalise their first word ("Open file"), but a corpus of messages
may hold a word almost only in lowercase: in the gettext catalogs "open" is in
~300 English sources and "Open" in ~10. A subword vocabulary cuts the rare
form into other pieces ("▁O", "p", "en" against "▁open"), and a model that has
hardly seen them copies them like a name ("Open file" -> "fichier Open").

Moses' truecaser (Koehn et al., 2007) replaces each sentence-initial word by its
most frequent casing and capitalises the output again. Here only words the
model has hardly seen capitalised are touched, so that a model trained on the
text as it is reads them as it learned them: `FirstWordCasing.learn` lists the
title-case words ("Open") seen fewer than `max_capitalised` times in the
training sources whose lowercase form ("open") is at least `min_ratio` times
as frequent. At translation time a source starting with a listed word is
translated with that word lowered, and its translation's first letter is
raised again ("Open file" -> "open file" -> "fichier d'ouverture" -> "Fichier
d'ouverture"). Measured on the gettext English->French test split (1,724
pairs) with one trained run, both ways: see the README.

The rewriting is TensorFlow ops on string tensors (a lookup table of the
listed words), so the exported SavedModel does exactly what
`seq2seq translate` does.
"""

from collections import Counter
from collections.abc import Iterable, Sequence

import tensorflow as tf

# A title-case word seen fewer times than this in the training sources...
MAX_CAPITALISED = 10
# ...whose lowercase form is at least this many times as frequent is read lowercased.
MIN_RATIO = 3.0


class FirstWordCasing(tf.Module):
    """Lowers a source's listed first word; raises the first letter of its translation again.

    Args:
        words: title-case words ("Open") to lower when they start a source.
    """

    def __init__(self, words: Sequence[str] = (), name: str | None = None):
        super().__init__(name=name)
        self.words = sorted(set(words))
        bad = [word for word in self.words if not _is_title(word)]
        if bad:
            raise ValueError(f"Expected title-case words such as 'Open'. Received: {bad[:5]!r}")
        self._table = None
        if self.words:
            initializer = tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.words), tf.constant([_lower_first(word) for word in self.words]))
            self._table = tf.lookup.StaticHashTable(initializer, default_value="")

    @classmethod
    def learn(cls, sources: Iterable[str], *, max_capitalised: int = MAX_CAPITALISED,
              min_ratio: float = MIN_RATIO) -> "FirstWordCasing":
        """The casing of the training `sources` (whitespace-separated words, counted everywhere)."""
        counts = Counter(word for source in sources for word in source.split(" "))
        words = []
        for word, count in counts.items():
            title = _title(word)
            # The title form must lower back to the word ("ß" upper-cases to "SS", which does not).
            if not (_is_lower(word) and _is_title(title) and _lower_first(title) == word):
                continue
            if counts[title] < max_capitalised and count >= min_ratio * max(counts[title], 1):
                words.append(title)
        return cls(words)

    def lower_first_words(self, texts):
        """[batch] strings -> (the strings with a listed first word lowered, lowered [batch] bool)."""
        texts = tf.convert_to_tensor(texts, tf.string)
        if self._table is None:
            return texts, tf.zeros(tf.shape(texts), tf.bool)
        first = tf.strings.regex_replace(texts, " .*", "")
        lowered = self._table.lookup(first)
        hit = lowered != ""
        rest = tf.strings.substr(texts, tf.strings.length(first), tf.strings.length(texts))
        return tf.where(hit, lowered + rest, texts), hit

    @staticmethod
    def raise_first_letters(texts, lowered):
        """[batch] strings with the first character upper-cased where `lowered` [batch] is True."""
        texts = tf.convert_to_tensor(texts, tf.string)
        head = tf.strings.substr(texts, 0, 1, unit="UTF8_CHAR")
        tail = tf.strings.substr(texts, tf.strings.length(head), tf.strings.length(texts))
        return tf.where(lowered, tf.strings.upper(head, encoding="utf-8") + tail, texts)


def _is_lower(word: str) -> bool:
    return word[:1].isalpha() and word.islower()


def _is_title(word: str) -> bool:
    return word[:1].isupper() and (len(word) == 1 or word[1:].islower() or not any(c.isalpha() for c in word[1:]))


def _title(word: str) -> str:
    return word[:1].upper() + word[1:]


def _lower_first(word: str) -> str:
    return word[:1].lower() + word[1:]
