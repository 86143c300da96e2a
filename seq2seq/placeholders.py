"""Placeholders (`%s`, `{name}`, `$HOME`, `<b>`...) carried through translation unchanged.

A software message's placeholders must reach its translation exactly: a
translation that drops `%s` or garbles `{0}` breaks the program that prints it
(`msgfmt --check` rejects it). The kit never lets the model write them:

1. **Protect**: the k-th placeholder of a source (order of appearance, k <
   `MAX_PLACEHOLDERS`) is replaced by the reserved token `RESERVED_TOKENS[k]`
   ("｟0｠", "｟1｠", ...); later ones stay plain text. Every tokenizer the kit
   trains holds these tokens as single pieces (SentencePiece
   `user_defined_symbols`).
2. **Decode**: the decoding loop emits each reserved token of a source exactly
   once, none that the source lacks, and the end token only after them
   (`seq2seq.decoding`, `reserved_ids`).
3. **Restore**: each reserved token of the output is replaced by the source's
   k-th placeholder (a token the source has no placeholder for becomes "").

Training pairs are protected alike (`protect_pair`): a target placeholder equal
to one of its source's gets that placeholder's token, so the model learns to
copy and reorder tokens; other target placeholders stay plain text.

What counts as a placeholder is `PATTERN`, one regular expression in the
syntax common to Python's `re` and RE2 (TensorFlow's string ops), so that the
exported SavedModel (`protect_in_graph`, `restore_in_graph`) cuts the very same
spans as `protect` and `restore`:

- printf: `%%`, and `%` + optional argument (`1$`, `(name)`), flags
  (`-+#0'`), width (`10`, `*`), precision (`.3`, `.*`), length (`hh h ll l L
  q j z Z t`) and a conversion (`diouxXeEfFgGaAcCsSpnm`): `%s`, `%1$s`,
  `%-10.3lf`, `%(name)s`. The space flag is left out, so that a literal `%`
  before a word ("50% of") is text; `%` at the end of a string is text too.
- brace (Python `format`, .NET, ICU): `{}`, `{0}`, `{name}`, `{name!r}`,
  `{name:>8}`.
- shell and template variables: `$VAR`, `${VAR}` (a letter or `_` first).
- markup tags of HTML and Pango: opening, closing and empty forms of `a abbr b
  big br code div em font h1-h6 i img kbd li ol p pre s small span strong sub
  sup tt u ul` with any attributes (`<a href="...">`, `</b>`, `<br/>`); other
  `<word>` spans ("Usage: cp <file>") are text a translator may translate.

A source that already holds a reserved token as text is not escaped: the
output's copy of it is restored like a protected one. See docs/placeholders.md.
This module imports TensorFlow only inside the in-graph functions.
"""

import re
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

MAX_PLACEHOLDERS = 16
RESERVED_TOKENS = tuple(f"\uff5f{k}\uff60" for k in range(MAX_PLACEHOLDERS))  # "｟0｠" .. "｟15｠"

_PRINTF = (
    r"%%"
    r"|%(?:[0-9]+\$|\([A-Za-z0-9_]+\))?[-+#0']*(?:[0-9]+|\*(?:[0-9]+\$)?)?"
    r"(?:\.(?:[0-9]+|\*(?:[0-9]+\$)?)?)?(?:hh|h|ll|l|L|q|j|z|Z|t)?[diouxXeEfFgGaAcCsSpnm]"
)
_BRACE = r"\{[A-Za-z0-9_]*(?:![rsa])?(?::[^{}]*)?\}"
_DOLLAR = r"\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*"
_TAG_NAMES = "a|abbr|b|big|br|code|div|em|font|h[1-6]|i|img|kbd|li|ol|p|pre|s|small|span|strong|sub|sup|tt|u|ul"
_TAG = rf"</?(?i:{_TAG_NAMES})(?:[ \t\n][^<>]*)?/?>"
# One pattern for Python's `re` and RE2 alike: ASCII classes only, no lookaround.
PATTERN = "|".join((_PRINTF, _BRACE, _DOLLAR, _TAG))
# A reserved token in an output.
TOKEN_PATTERN = "|".join(re.escape(token) for token in RESERVED_TOKENS)

_PLACEHOLDER = re.compile(PATTERN)
_TOKEN = re.compile(TOKEN_PATTERN)
_TOKEN_INDEX = {token: k for k, token in enumerate(RESERVED_TOKENS)}


class Protected(NamedTuple):
    """A protected text and the placeholders its reserved tokens stand for (token k -> `placeholders[k]`)."""

    text: str
    placeholders: tuple[str, ...]


def find_placeholders(text: str) -> list[str]:
    """Every placeholder of `text`, in order (leftmost first, not overlapping)."""
    return _PLACEHOLDER.findall(text)


def protect(text: str) -> Protected:
    """`text` with its first `MAX_PLACEHOLDERS` placeholders replaced by the reserved tokens, in order."""
    found = []

    def replace(match):
        if len(found) == MAX_PLACEHOLDERS:
            return match.group()
        found.append(match.group())
        return RESERVED_TOKENS[len(found) - 1]

    return Protected(_PLACEHOLDER.sub(replace, text), tuple(found))


def protect_pair(source: str, target: str) -> tuple[str, str]:
    """A training pair protected consistently: `(protected source, protected target)`.

    Each target placeholder takes the token of the first source placeholder
    with the same text not taken yet ("%s und %s" for "%s and %s" -> "｟0｠ und
    ｟1｠"; "%2$s %1$s" for "%1$s %2$s" -> "｟1｠ ｟0｠"); the others stay text.
    """
    protected = protect(source)
    free = list(enumerate(protected.placeholders))

    def replace(match):
        for position, (k, placeholder) in enumerate(free):
            if placeholder == match.group():
                del free[position]
                return RESERVED_TOKENS[k]
        return match.group()

    return protected.text, _PLACEHOLDER.sub(replace, target)


def restore(output: str, placeholders: Sequence[str]) -> str:
    """`output` with each reserved token k replaced by `placeholders[k]` ("" when k is out of range).

    When every placeholder of the source was protected (fewer than
    MAX_PLACEHOLDERS), placeholder text the model spelled out of plain pieces
    is removed first: the output then holds exactly the source's placeholders.
    """
    def replace(match):
        k = _TOKEN_INDEX[match.group()]
        return placeholders[k] if k < len(placeholders) else ""

    if len(placeholders) < MAX_PLACEHOLDERS:
        output = _PLACEHOLDER.sub("", output)
    return _TOKEN.sub(replace, output)


def reserved_ids(tokenizer) -> tuple[int, ...]:
    """The ids of `RESERVED_TOKENS` in `tokenizer` (anything with `.pieces`), in token order.

    Empty when the tokenizer lacks one of them (a model trained before the
    kit reserved them): protection is then off for that tokenizer.
    """
    ids = {piece: i for i, piece in enumerate(tokenizer.pieces)}
    if not all(token in ids for token in RESERVED_TOKENS):
        return ()
    return tuple(ids[token] for token in RESERVED_TOKENS)


def placeholder_rate(sources: Sequence[str], outputs: Sequence[str]) -> tuple[float | None, int]:
    """`(rate, count)`: of the `count` sources with placeholders, the fraction whose output
    holds exactly the source's multiset of placeholders (all of them, also past the 16th).

    `rate` is None when no source has a placeholder.
    """
    if len(sources) != len(outputs):
        raise ValueError(f"Expected one output per source. Received: {len(sources)} sources and "
                         f"{len(outputs)} outputs.")
    kept = count = 0
    for source, output in zip(sources, outputs):
        expected = Counter(find_placeholders(source))
        if expected:
            count += 1
            kept += Counter(find_placeholders(output)) == expected
    return (kept / count if count else None), count


# --------------------------------------------------------------------------- in-graph


def protect_in_graph(texts):
    """`protect` in TensorFlow ops (for SavedModels).

    Args:
        texts: [batch] tf.string.
    Returns:
        `(protected, placeholders)`: [batch] tf.string, and a tf.RaggedTensor
        [batch, None] tf.string of each row's protected placeholders.
    """
    import tensorflow as tf
    import tensorflow_text

    # Text and placeholders alternate; empty text between two placeholders is dropped.
    pieces = tensorflow_text.regex_split(texts, PATTERN, PATTERN)  # [batch, None]
    is_placeholder = tf.strings.regex_full_match(pieces.flat_values, PATTERN)
    counts = tf.cumsum(tf.cast(is_placeholder, tf.int32))  # over the flattened batch
    before_row = tf.gather(tf.concat([[0], counts], axis=0), pieces.row_starts())
    k = counts - tf.repeat(before_row, pieces.row_lengths()) - 1  # placeholder number within its row
    protected = is_placeholder & (k < MAX_PLACEHOLDERS)
    tokens = tf.gather(tf.constant(RESERVED_TOKENS), tf.clip_by_value(k, 0, MAX_PLACEHOLDERS - 1))
    joined = tf.strings.reduce_join(pieces.with_flat_values(tf.where(protected, tokens, pieces.flat_values)),
                                    axis=1)
    return joined, tf.ragged.boolean_mask(pieces, pieces.with_flat_values(protected))


def restore_in_graph(outputs, placeholders):
    """`restore` in TensorFlow ops: [batch] tf.string outputs, [batch, None] placeholders -> [batch] tf.string."""
    import tensorflow as tf
    import tensorflow_text

    all_protected = placeholders.row_lengths() < MAX_PLACEHOLDERS  # as `restore`: drop spelled-out ones
    outputs = tf.where(all_protected, tf.strings.regex_replace(outputs, PATTERN, ""), outputs)
    pieces = tensorflow_text.regex_split(outputs, TOKEN_PATTERN, TOKEN_PATTERN)  # [batch, None]
    flat = pieces.flat_values
    is_token = tf.strings.regex_full_match(flat, TOKEN_PATTERN)
    digits = tf.where(is_token, tf.strings.regex_replace(flat, "[^0-9]", ""), "0")
    k = tf.strings.to_number(digits, tf.int32)
    row = pieces.value_rowids()
    found = is_token & (k < tf.gather(tf.cast(placeholders.row_lengths(), tf.int32), row))
    index = tf.where(found, tf.gather(tf.cast(placeholders.row_starts(), tf.int32), row) + k, 0)
    values = tf.concat([placeholders.flat_values, [""]], axis=0)  # never empty, so the gather is safe
    restored = tf.where(is_token, tf.where(found, tf.gather(values, index), ""), flat)
    return tf.strings.reduce_join(pieces.with_flat_values(restored), axis=1)
