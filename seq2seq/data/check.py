"""The summary behind `seq2seq data check`: what a corpus holds and how it will batch.

It reads the corpus with the same reader as training (`reader.read_corpus`),
then reports the pairs accepted, the skipped lines by reason with their first
locations, length percentiles of both sides and the real-token (and padding)
fraction of the batches that `seq2seq.data.pipeline` would build, predicted
by `batching.real_token_fraction` without TensorFlow.

Lengths count whitespace words by default, or SentencePiece pieces when a
tokenizer model is given; the pipeline batches pieces, so words only
approximate its padding.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

from seq2seq.data.batching import BatchingConfig, real_token_fraction
from seq2seq.data.reader import DEFAULT_MAX_LINE_CHARS, LabeledText, ReadReport, read_corpus
from seq2seq.errors import UserError


@dataclass(frozen=True)
class LengthStats:
    """Nearest-rank percentiles of sequence lengths (0 for no sequences)."""

    p50: int
    p90: int
    p99: int
    max: int

    @classmethod
    def from_lengths(cls, lengths: list[int]) -> "LengthStats":
        ordered = sorted(lengths)
        return cls(*(_percentile(ordered, p) for p in (50, 90, 99)), max(ordered, default=0))


def _percentile(ordered: list[int], percent: float) -> int:
    """Nearest-rank percentile: the smallest length at or above `percent`% of the lengths."""
    if not ordered:
        return 0
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class CorpusCheck:
    """Everything `seq2seq data check` prints."""

    report: ReadReport
    # "words" or "pieces".
    unit: str
    source: LengthStats
    # None for labeled text (one sequence per example).
    target: LengthStats | None
    # Real tokens / padded slots of the pipeline's batches, both sides together.
    real_token_fraction: float
    # Examples longer than the pipeline's maximum lengths (cut when batched).
    over_max_source: int
    over_max_target: int
    batching: BatchingConfig = field(default_factory=BatchingConfig)

    def summary_lines(self) -> list[str]:
        """The report's lines, then length percentiles, then the batching prediction."""
        lines = self.report.summary_lines()
        lines.append(f"lengths in {self.unit}:   p50   p90   p99   max")
        rows = [("source" if self.target else "text", self.source)] + ([("target", self.target)] if self.target else [])
        for name, stats in rows:
            lines.append(f"  {name:<{len(self.unit) + 10}}{stats.p50:>6}{stats.p90:>6}{stats.p99:>6}{stats.max:>6}")
        lines.append(self._batching_line())
        if self.over_max_source or self.over_max_target:
            lines.append(
                f"longer than the maximum lengths ({self.batching.max_source_len}/{self.batching.max_target_len}, "
                f"cut when batched): {self.over_max_source} sources, {self.over_max_target} targets"
            )
        if self.unit == "words":
            lines.append("(lengths in words approximate the pipeline's pieces; pass --tokenizer MODEL for pieces)")
        return lines

    def _batching_line(self) -> str:
        config = self.batching
        return (
            f"batching (tokens_per_batch={config.tokens_per_batch}, max lengths "
            f"{config.max_source_len}/{config.max_target_len}): real-token fraction "
            f"{self.real_token_fraction:.3f}, padding fraction {1 - self.real_token_fraction:.3f}"
        )


def check_corpus(path, *, fmt: str = "tsv", target_path=None, strict: bool = False, truncate: bool = False,
                 max_line_chars: int = DEFAULT_MAX_LINE_CHARS, tokenizer=None,
                 batching: BatchingConfig | None = None) -> CorpusCheck:
    """Reads and summarises a corpus.

    Args:
        path, fmt, target_path: the corpus, as in `reader.read_corpus`.
        strict, truncate, max_line_chars: the reader's options.
        tokenizer: path of a SentencePiece `.model`; lengths then count pieces.
        batching: the pipeline's batching config (default `BatchingConfig()`).
    Returns:
        The `CorpusCheck`; `summary_lines()` renders it.
    Raises:
        UserError: for a corpus the reader refuses or an unusable tokenizer.
    """
    batching = batching or BatchingConfig()
    items, report = read_corpus(
        path, fmt=fmt, target_path=target_path, strict=strict, truncate=truncate, max_line_chars=max_line_chars
    )
    count = _piece_counter(tokenizer) if tokenizer else _word_counts
    if items and isinstance(items[0], LabeledText):
        sources, targets = count([item.text for item in items]), None
    else:
        sources, targets = count([item.source for item in items]), count([item.target for item in items])
    return CorpusCheck(
        report=report,
        unit="pieces" if tokenizer else "words",
        source=LengthStats.from_lengths(sources),
        target=LengthStats.from_lengths(targets) if targets is not None else None,
        real_token_fraction=real_token_fraction(sources, targets, batching),
        over_max_source=_count_cut(sources, batching.max_source_len),
        over_max_target=_count_cut(targets or [], batching.max_target_len),
        batching=batching,
    )


def _count_cut(counts: list[int], max_len: int) -> int:
    """How many sequences the pipeline truncates: pieces + the special token > max_len."""
    return sum(1 for pieces in counts if pieces + 1 > max_len)


def _word_counts(texts: list[str]) -> list[int]:
    return [len(text.split()) for text in texts]


def _piece_counter(model_path):
    """A function from texts to SentencePiece piece counts, from a `.model` file."""
    try:
        import sentencepiece
    except ImportError:
        raise UserError("--tokenizer needs the sentencepiece package: pip install sentencepiece") from None
    model_path = Path(model_path)
    if not model_path.is_file():
        raise UserError(f"No such tokenizer model: {model_path}. Expected a SentencePiece .model file.")
    try:
        processor = sentencepiece.SentencePieceProcessor(model_file=str(model_path))
    except (OSError, RuntimeError) as error:
        raise UserError(
            f"Cannot load {model_path} as a SentencePiece model ({str(error).strip()[:120]}). "
            "Expected a .model file written by `seq2seq tokenizer train`."
        ) from None
    return lambda texts: [len(ids) for ids in processor.encode(texts)]
