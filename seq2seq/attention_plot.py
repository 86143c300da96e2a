"""Attention heatmaps as PNG: which source pieces each output piece looked at.

    alignments = seq2seq.runs.translation.attention_alignments(run, ["Open file", "Save as"])
    save_attention_heatmaps(alignments, "attention.png")

One panel per sentence, titled with the source and the translation exactly as
`seq2seq translate` prints it; rows are the output pieces, columns the source
pieces the model read (after first-word casing, so "Open file" may be read as
"open file"), the colour the attention weight on a fixed 0-1 scale shown by a
colour bar. Pieces are labelled as words: a piece that starts a word
(SentencePiece's "▁") shows the word part alone, a piece that continues a word
starts with "·" ("▁O", "p", "en" read "O", "·p", "·en").

matplotlib is imported when a picture is drawn, through its object-oriented
API (`matplotlib.figure.Figure`), so no backend is selected for the caller.
"""

import textwrap
from pathlib import Path
from typing import NamedTuple

import numpy as np

WORD_START = "\u2581"  # SentencePiece's word-start marker "▁"
CONTINUATION = "\u00b7"  # "·", prefixed to a piece that continues a word
SPACE = "\u2423"  # "␣", a piece that is only a word start
# Special pieces ("</s>") are shown as they are.
_SPECIAL = ("<pad>", "<unk>", "<s>", "</s>")
# Inches per piece along each axis, and around each panel (title, labels).
_INCH_PER_PIECE = 0.38
_PANEL_MARGIN = 2.0
_TITLE_WIDTH = 80  # characters per title line


class Alignment(NamedTuple):
    """One translation and the attention that produced it."""

    source: str  # the text as given
    output: str  # its translation, as `seq2seq translate` prints it
    source_pieces: list[str]  # [source_len] pieces the model read, the end token included
    output_pieces: list[str]  # [output_len] pieces it wrote, the end token included when written
    weights: np.ndarray  # [output_len, source_len] float, each row sums to 1


def piece_label(piece: str) -> str:
    """A readable tick label: "▁file" -> "file", "en" -> "·en", "▁" -> "␣", "</s>" as is."""
    if piece in _SPECIAL:
        return piece
    if piece.startswith(WORD_START):
        return piece[len(WORD_START):] or SPACE
    return CONTINUATION + piece


def panel_title(alignment: Alignment) -> str:
    """"source → translation", wrapped; an empty translation is shown as "(empty)"."""
    title = f"{alignment.source}  \u2192  {alignment.output or '(empty)'}"
    return "\n".join(textwrap.wrap(title, _TITLE_WIDTH))


def draw_attention_heatmaps(alignments: list[Alignment]):
    """One heatmap panel per alignment, stacked; returns a `matplotlib.figure.Figure`.

    Each panel's title is `panel_title` (the translation as printed), its x
    labels the source pieces (rotated), its y labels the output pieces, and
    it has a colour bar of the attention weight from 0 to 1.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("Attention heatmaps need matplotlib: `pip install matplotlib`.") from error
    if not alignments:
        raise ValueError("Expected at least one alignment to draw. Received: alignments=[]")
    widest = max(len(a.source_pieces) for a in alignments)
    heights = [max(len(a.output_pieces), 1) * _INCH_PER_PIECE + _PANEL_MARGIN for a in alignments]
    figure = Figure(figsize=(max(6.0, widest * _INCH_PER_PIECE + 3.0), sum(heights)), dpi=100,
                    layout="constrained")
    axes = figure.subplots(len(alignments), 1, squeeze=False, height_ratios=heights)[:, 0]
    for axis, alignment in zip(axes, alignments):
        _draw_panel(figure, axis, alignment)
    return figure


def _draw_panel(figure, axis, alignment: Alignment) -> None:
    source, output = alignment.source_pieces, alignment.output_pieces
    weights = np.asarray(alignment.weights, dtype=np.float32)[: len(output), : len(source)]
    image = axis.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0, interpolation="nearest")
    axis.set_xticks(range(len(source)), [piece_label(p) for p in source], rotation=55, ha="right",
                    rotation_mode="anchor", fontsize=9)
    axis.set_yticks(range(len(output)), [piece_label(p) for p in output], fontsize=9)
    axis.set_xlabel("source pieces (as the model read them)")
    axis.set_ylabel("output pieces")
    axis.set_title(panel_title(alignment), fontsize=10, loc="left")
    figure.colorbar(image, ax=axis, label="attention weight", fraction=0.04, pad=0.02)


def save_attention_heatmaps(alignments: list[Alignment], path) -> Path:
    """Draws `draw_attention_heatmaps(alignments)` into the PNG `path`; returns the path."""
    path = Path(path)
    draw_attention_heatmaps(alignments).savefig(path, format="png")
    return path
