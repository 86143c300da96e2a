"""PNG charts of a diagnosis: lengths, and when the outputs emit END.

matplotlib is imported when a chart is drawn, through its object-oriented API
(`matplotlib.figure.Figure`), so no backend is selected for the caller.
"""

from pathlib import Path

from seq2seq.diagnostics.report import Diagnosis

LENGTHS_PNG = "lengths.png"
END_BY_POSITION_PNG = "end_by_position.png"


def save_plots(diagnosis: Diagnosis, directory: str | Path) -> list[Path]:
    """Writes `lengths.png` and `end_by_position.png` into `directory` (created)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [
        _save(plot_lengths(diagnosis), directory / LENGTHS_PNG),
        _save(plot_end_by_position(diagnosis), directory / END_BY_POSITION_PNG),
    ]


def plot_lengths(diagnosis: Diagnosis):
    """Histogram of output lengths, predicted beside reference; returns the Figure."""
    stats = diagnosis.outputs
    figure, axes = _figure()
    width = 0.4
    for offset, counts, label in (
        (-width / 2, stats.length_counts, "predicted"),
        (width / 2, stats.reference_length_counts, "reference"),
    ):
        axes.bar([n + offset for n in range(len(counts))], counts, width=width, label=label)
    axes.set_xlabel("output length (tokens)")
    axes.set_ylabel("outputs")
    axes.set_title(f"Output lengths ({diagnosis.verdict})")
    axes.legend()
    return figure


def plot_end_by_position(diagnosis: Diagnosis):
    """Share of outputs that have emitted END by each step; returns the Figure."""
    stats = diagnosis.outputs
    figure, axes = _figure()
    steps = range(len(stats.end_share_by_position))
    for shares, label in (
        (stats.end_share_by_position, "predicted"),
        (stats.reference_end_share_by_position, "reference"),
    ):
        axes.plot(steps, shares, marker="o", drawstyle="steps-post", label=label)
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("decoding step")
    axes.set_ylabel("share of outputs ended")
    axes.set_title(f"End token by position ({diagnosis.verdict})")
    axes.legend()
    return figure


def _figure():
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "Diagnosis plots need matplotlib: `pip install matplotlib`."
        ) from error
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6, 4), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # lengths and steps are whole
    return figure, axes


def _save(figure, path: Path) -> Path:
    figure.savefig(path, format="png")
    return path
