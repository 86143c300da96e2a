"""Measures on training targets: the usual causes of end-token collapse.

Targets are token-id rows as fed to the loss (a padded `[rows, time]` array or
an iterable of 1-D rows of any lengths). Two ways of padding are told apart:

- **0-padded** (the kit's way): one END per row, then PAD_ID (0) up to the
  row's length; with `Embedding(mask_zero=True)` and a masked loss the padding
  costs nothing.
- **end-padded** (the cause of problem 1 in the mission): the row is filled
  with repeated END tokens, `[3, 123, END, END, END, ...]`. Two ENDs in a row
  never occur in real text, so any row that ends (before trailing 0s) in a run
  of two or more END tokens is counted as end-padded.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from seq2seq.tokens import END_ID, PAD_ID


@dataclass(frozen=True)
class TargetStats:
    """Class frequencies and padding facts of a set of training targets."""

    num_rows: int
    num_tokens: int  # tokens counted: every id except pad_id
    class_counts: dict[int, int]  # id -> count over all rows, pad_id excluded, occurring ids only
    end_share: float  # end-token count / num_tokens
    # (mean count of the other classes that occur) / (end-token count); None without END.
    recommended_end_weight: float | None
    end_padded_rows: int  # rows ending (before trailing 0s) in a run of 2+ END
    zero_padded_rows: int  # rows with trailing pad_id
    missing_end_rows: int  # rows with no END at all: the model cannot learn to stop
    padding_masked: bool | None  # as told by the caller; None: unknown

    @property
    def end_padded(self) -> bool:
        return self.end_padded_rows > 0


def analyze_targets(
    targets: Iterable,
    *,
    padding_masked: bool | None = None,
    end_id: int = END_ID,
    pad_id: int = PAD_ID,
) -> TargetStats:
    """Counts classes and padding in `targets` (rows of token ids).

    Args:
        targets: a `[rows, time]` int array or an iterable of 1-D id rows.
        padding_masked: whether the training masked the padding (for example
            `Embedding(mask_zero=True)` with a masked loss); None if unknown.
        end_id, pad_id: the end-token and padding ids of these targets.
    """
    rows = [np.asarray(row, dtype=np.int64).reshape(-1) for row in targets]
    if not rows:
        raise ValueError("Expected at least one target row. Received: 0 rows.")
    counts = class_counts(rows, pad_id=pad_id)
    num_tokens = sum(counts.values())
    ends = [_trailing_end_run(row, end_id, pad_id) for row in rows]
    return TargetStats(
        num_rows=len(rows),
        num_tokens=num_tokens,
        class_counts=counts,
        end_share=counts.get(end_id, 0) / num_tokens if num_tokens else 0.0,
        recommended_end_weight=recommended_end_weight(counts, end_id=end_id),
        end_padded_rows=sum(int(run >= 2) for run in ends),
        zero_padded_rows=sum(int(row.size > 0 and row[-1] == pad_id) for row in rows),
        missing_end_rows=sum(int(not np.any(row == end_id)) for row in rows),
        padding_masked=padding_masked,
    )


def class_counts(rows: list[np.ndarray], pad_id: int = PAD_ID) -> dict[int, int]:
    """id -> number of occurrences over all rows, padding excluded."""
    flat = np.concatenate(rows) if rows else np.zeros([0], np.int64)
    ids, counts = np.unique(flat[flat != pad_id], return_counts=True)
    return {int(token): int(count) for token, count in zip(ids, counts)}


def recommended_end_weight(counts: dict[int, int], end_id: int = END_ID) -> float | None:
    """The end token's class weight: mean count of the other classes / END count.

    The other classes are the ids that occur and are not `end_id` (padding is
    already excluded from `counts`); their weights stay 1.0. This is the formula
    of `seq2seq.losses.end_token_class_weights`. None if END never occurs or
    is the only class.
    """
    end_count = counts.get(end_id, 0)
    others = [count for token, count in counts.items() if token != end_id and count > 0]
    if end_count == 0 or not others:
        return None
    return float(np.mean(others)) / end_count


def _trailing_end_run(row: np.ndarray, end_id: int, pad_id: int) -> int:
    """Length of the run of END at the end of `row`, trailing pad_id ignored."""
    kept = np.flatnonzero(row != pad_id)
    if kept.size == 0:
        return 0
    body = row[: kept[-1] + 1]
    not_end = np.flatnonzero(body != end_id)
    return int(body.size - (not_end[-1] + 1 if not_end.size else 0))
