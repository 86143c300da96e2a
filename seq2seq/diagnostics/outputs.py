"""Measures on decoded outputs: what end-token collapse looks like from outside.

Outputs (and the references they are compared with) come in one of two kinds:

- **token ids**: each output a sequence of ints as a decoder returns it. A
  leading START is dropped; the output ends at its first END (later ids are
  ignored); PAD ids before that END are not tokens but keep their step, so the
  END's step is the decoding step at which the model stopped.
- **text**: each output a string whose tokens are its whitespace-separated
  words. A string carries no end token, so the end-token measures are computed
  from lengths: a string of n words counts as "END at step n" (an empty string:
  END at the first step), and whether an output never ended cannot be told.

Every rate is a share of outputs in [0, 1]; see `OutputStats` for each one's
exact definition.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from seq2seq.tokens import END_ID, PAD_ID, START_ID

REPEAT_RUN = 3
"""An output in which one token occurs this many times in a row is repetitive."""

KINDS = ("ids", "text")


@dataclass(frozen=True)
class Decoded:
    """One output, read: its tokens and the step at which it emitted END."""

    tokens: tuple  # content tokens: ids (ints) or words (strs)
    end_step: int | None  # 0-based decoding step of the first END; None: never


@dataclass(frozen=True)
class OutputStats:
    """The output measures, each beside the same measure on the references."""

    kind: str  # "ids" or "text"
    num_outputs: int
    # Share of outputs with no tokens (ids: nothing but START/PAD before END).
    empty_rate: float
    # Share whose first decoding step is END (text: equals empty_rate).
    first_token_end_rate: float
    # Share that never emit END, i.e. ran to the length limit (text: None).
    unterminated_rate: float | None
    # Total predicted tokens / total reference tokens (None if references are all empty).
    length_ratio: float | None
    mean_length: float
    reference_mean_length: float
    reference_empty_rate: float
    # Share of the non-empty outputs in which a token occurs REPEAT_RUN+ times in a row.
    repetition_rate: float
    # Most frequent output token (ties: first seen) and its share of all output tokens.
    top_token: int | str | None
    top_token_share: float | None
    reference_top_token_share: float | None
    # [t]: share of outputs that have emitted END at a step <= t.
    end_share_by_position: tuple[float, ...]
    reference_end_share_by_position: tuple[float, ...]
    # [n]: number of outputs with exactly n tokens.
    length_counts: tuple[int, ...]
    reference_length_counts: tuple[int, ...]


def output_kind(outputs: Sequence) -> str:
    """`"text"` if every output is a string, `"ids"` if none is; else ValueError."""
    if len(outputs) == 0:
        raise ValueError("Expected at least one output. Received: 0 outputs.")
    strings = [isinstance(output, str) for output in outputs]
    if all(strings):
        return "text"
    if not any(strings):
        return "ids"
    first_text = strings.index(True)
    first_ids = strings.index(False)
    raise ValueError(
        "Expected outputs of one kind, all strings or all token-id sequences. "
        f"Received: a string at index {first_text} and token ids at index {first_ids}."
    )


def read_ids(
    sequence, start_id: int = START_ID, end_id: int = END_ID, pad_id: int = PAD_ID
) -> Decoded:
    """Reads one decoder output: drops a leading START, stops at the first END."""
    ids = [int(token) for token in sequence]
    if ids and ids[0] == start_id:
        ids = ids[1:]
    end_step = ids.index(end_id) if end_id in ids else None
    body = ids if end_step is None else ids[:end_step]
    return Decoded(tuple(token for token in body if token != pad_id), end_step)


def read_text(line: str) -> Decoded:
    """Reads one text output: whitespace words; END counts as coming after the last word."""
    words = tuple(line.split())
    return Decoded(words, len(words))


def read_outputs(outputs: Sequence, kind: str, **special_ids) -> list[Decoded]:
    if kind == "text":
        return [read_text(line) for line in outputs]
    return [read_ids(sequence, **special_ids) for sequence in outputs]


def analyze_outputs(
    predictions: Sequence,
    references: Sequence,
    *,
    start_id: int = START_ID,
    end_id: int = END_ID,
    pad_id: int = PAD_ID,
) -> OutputStats:
    """Measures `predictions` against `references` (one per prediction, same kind).

    Args:
        predictions: decoded outputs, token-id sequences or strings.
        references: the expected outputs, in the same order and of the same kind.
        start_id, end_id, pad_id: special ids, used for token-id outputs only.
    """
    kind = output_kind(predictions)
    reference_kind = output_kind(references)
    if reference_kind != kind:
        raise ValueError(
            f"Expected references of the predictions' kind ({kind!r}). "
            f"Received: {reference_kind!r}."
        )
    if len(predictions) != len(references):
        raise ValueError(
            "Expected one reference per prediction. "
            f"Received: {len(predictions)} predictions and {len(references)} references."
        )
    ids = dict(start_id=start_id, end_id=end_id, pad_id=pad_id)
    outputs = read_outputs(predictions, kind, **ids)
    expected = read_outputs(references, kind, **ids)
    horizon = _horizon(outputs + expected)
    top_token, top_share = top_token_share(outputs)
    return OutputStats(
        kind=kind,
        num_outputs=len(outputs),
        empty_rate=_share(outputs, lambda output: not output.tokens),
        first_token_end_rate=_share(outputs, lambda output: output.end_step == 0),
        unterminated_rate=(
            None if kind == "text" else _share(outputs, lambda output: output.end_step is None)
        ),
        length_ratio=length_ratio(outputs, expected),
        mean_length=_mean_length(outputs),
        reference_mean_length=_mean_length(expected),
        reference_empty_rate=_share(expected, lambda output: not output.tokens),
        repetition_rate=repetition_rate(outputs),
        top_token=top_token,
        top_token_share=top_share,
        reference_top_token_share=top_token_share(expected)[1],
        end_share_by_position=end_share_by_position(outputs, horizon),
        reference_end_share_by_position=end_share_by_position(expected, horizon),
        length_counts=length_counts(outputs),
        reference_length_counts=length_counts(expected),
    )


def length_ratio(outputs: list[Decoded], references: list[Decoded]) -> float | None:
    """Total output tokens / total reference tokens (corpus level, as in BLEU)."""
    reference_total = sum(len(output.tokens) for output in references)
    if reference_total == 0:
        return None
    return sum(len(output.tokens) for output in outputs) / reference_total


def repetition_rate(outputs: list[Decoded], run: int = REPEAT_RUN) -> float:
    """Share of non-empty outputs with a token repeated `run`+ times in a row (0 if none)."""
    spoken = [output for output in outputs if output.tokens]
    if not spoken:
        return 0.0
    return sum(_longest_run(output.tokens) >= run for output in spoken) / len(spoken)


def top_token_share(outputs: list[Decoded]) -> tuple[int | str | None, float | None]:
    """The most frequent token over all outputs and its share of all tokens."""
    counts = Counter(token for output in outputs for token in output.tokens)
    if not counts:
        return None, None
    token, count = counts.most_common(1)[0]
    return token, count / sum(counts.values())


def end_share_by_position(outputs: list[Decoded], horizon: int) -> tuple[float, ...]:
    """[t] for t < horizon: share of outputs whose END came at a step <= t."""
    ends = [0] * horizon
    for output in outputs:
        if output.end_step is not None and output.end_step < horizon:
            ends[output.end_step] += 1
    return tuple(ended / len(outputs) for ended in accumulate(ends))


def length_counts(outputs: list[Decoded]) -> tuple[int, ...]:
    """[n]: how many outputs have exactly n tokens, for n up to the longest."""
    counts = [0] * (max(len(output.tokens) for output in outputs) + 1)
    for output in outputs:
        counts[len(output.tokens)] += 1
    return tuple(counts)


def _horizon(outputs: list[Decoded]) -> int:
    """Steps covered by the end-by-position curves: up to the latest END seen."""
    steps = [output.end_step for output in outputs if output.end_step is not None]
    return max(steps, default=0) + 1


def _share(outputs: list[Decoded], predicate) -> float:
    return sum(bool(predicate(output)) for output in outputs) / len(outputs)


def _mean_length(outputs: list[Decoded]) -> float:
    return sum(len(output.tokens) for output in outputs) / len(outputs)


def _longest_run(tokens: tuple) -> int:
    longest = current = 1
    for previous, token in zip(tokens, tokens[1:]):
        current = current + 1 if token == previous else 1
        longest = max(longest, current)
    return longest
