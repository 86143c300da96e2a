"""Attention heatmaps as PNG: which source pieces each output piece looked at."""

from pathlib import Path

import numpy as np


def save_attention_heatmaps(alignments, path) -> Path:
    """Draws one heatmap per sentence, stacked in a single PNG.

    Args:
        alignments: a list of `(source_pieces, output_pieces, weights)`, with
            `weights` [output_len, source_len] (rows sum to 1).
        path: the PNG to write.
    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(alignments), 1, figsize=(8, 3.2 * len(alignments)), squeeze=False)
    for axis, (source, output, weights) in zip(axes[:, 0], alignments):
        weights = np.asarray(weights)[: len(output), : len(source)]
        axis.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
        axis.set_xticks(range(len(source)), source, rotation=60, ha="right", fontsize=8)
        axis.set_yticks(range(len(output)), output, fontsize=8)
        axis.set_xlabel("source pieces")
        axis.set_ylabel("output pieces")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
