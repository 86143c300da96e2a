"""`diagnose()`: measures, verdict, fixes and notes in one `Diagnosis`, as JSON or text."""

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from seq2seq.diagnostics.outputs import REPEAT_RUN, OutputStats, analyze_outputs
from seq2seq.diagnostics.targets import TargetStats, analyze_targets
from seq2seq.diagnostics.verdict import Thresholds, content_notes, fixes, judge
from seq2seq.tokens import END_ID, PAD_ID, START_ID

TEXT_POSITIONS = 12
"""Steps of the end-by-position curves shown in the text report (all go to JSON)."""


@dataclass(frozen=True)
class Diagnosis:
    """The verdict about END, why, what to do, notes, and the measures it was read from."""

    verdict: str  # "collapsed", "at_risk" or "healthy"
    reasons: tuple[str, ...]  # the END measures that set the verdict, with their thresholds
    fixes: tuple[str, ...]  # END fixes, most likely first; empty when healthy
    # Content findings that do not set the verdict (looping, a dominant token)
    # with their advice, first; then how to read the numbers in this case.
    notes: tuple[str, ...]
    outputs: OutputStats
    targets: TargetStats | None
    thresholds: Thresholds
    end_id: int

    def to_dict(self) -> dict:
        """JSON-ready: verdict, reasons, fixes, notes, every output measure at the
        top level (`empty_rate`, `first_token_end_rate`, `length_ratio`, ...),
        `targets` (or None) and `thresholds`."""
        targets = None
        if self.targets is not None:
            targets = dataclasses.asdict(self.targets) | {"end_padded": self.targets.end_padded}
            targets["class_counts"] = {str(k): v for k, v in self.targets.class_counts.items()}
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "fixes": list(self.fixes),
            "notes": list(self.notes),
            **dataclasses.asdict(self.outputs),
            "targets": targets,
            "thresholds": dataclasses.asdict(self.thresholds),
            "end_id": self.end_id,
        }

    def to_text(self) -> str:
        return render_text(self)


def diagnose(
    predictions: Sequence,
    references: Sequence,
    targets: Iterable | TargetStats | None = None,
    *,
    padding_masked: bool | None = None,
    thresholds: Thresholds | None = None,
    start_id: int = START_ID,
    end_id: int = END_ID,
    pad_id: int = PAD_ID,
) -> Diagnosis:
    """Diagnoses end-token collapse from decoded outputs and, optionally, training targets.

    Args:
        predictions: decoded outputs: token-id sequences (with END) or strings.
        references: one expected output per prediction, of the same kind.
        targets: the training targets (`[rows, time]` ids or 1-D id rows), if
            known, or their `analyze_targets` result (then `padding_masked` is
            the one given there).
        padding_masked: whether training masked the padding; None if unknown.
        thresholds: where the verdict turns; `Thresholds()` by default.
        start_id, end_id, pad_id: special ids of the outputs and targets.
    """
    thresholds = thresholds or Thresholds()
    outputs = analyze_outputs(
        predictions, references, start_id=start_id, end_id=end_id, pad_id=pad_id
    )
    target_stats = targets
    if targets is not None and not isinstance(targets, TargetStats):
        target_stats = analyze_targets(
            targets, padding_masked=padding_masked, end_id=end_id, pad_id=pad_id
        )
    verdict, reasons = judge(outputs, target_stats, thresholds)
    return Diagnosis(
        verdict=verdict,
        reasons=tuple(reasons),
        fixes=tuple(fixes(verdict, outputs, target_stats, thresholds, end_id)),
        notes=tuple(content_notes(outputs, thresholds) + notes(outputs, target_stats, end_id)),
        outputs=outputs,
        targets=target_stats,
        thresholds=thresholds,
        end_id=end_id,
    )


def notes(outputs: OutputStats, targets: TargetStats | None, end_id: int) -> list[str]:
    """What the reader needs to know to read the numbers of this case right (not the content notes)."""
    found = []
    if outputs.kind == "text":
        found.append(
            "Outputs are text: the end-token measures are computed from lengths (an output of "
            "n words counts as END at step n, an empty one as END at the first step), and "
            "outputs that never ended cannot be told apart."
        )
    if outputs.reference_empty_rate > 0:
        found.append(
            f"{outputs.reference_empty_rate:.1%} of the references are empty too; "
            "the empty-output rate counts those outputs as well."
        )
    if targets is None:
        found.append("No training targets given: the causes in the data were not checked.")
    elif targets.padding_masked is None:
        found.append("Whether the training masked the padding is unknown (not given).")
    elif targets.end_padded and targets.padding_masked:
        found.append(
            f"The targets are end-padded but the padding is said to be masked: mask_zero only "
            f"masks id 0, so make sure the mask also covers the trailing END (id {end_id}) tokens."
        )
    return found


def render_text(diagnosis: Diagnosis) -> str:
    """The report a person reads: verdict, measures beside the references, fixes, notes."""
    lines = [f"End-token collapse diagnosis: {diagnosis.verdict.upper()}", ""]
    lines += _output_lines(diagnosis.outputs)
    lines += _position_lines(diagnosis.outputs)
    if diagnosis.targets is not None:
        lines += _target_lines(diagnosis.targets, diagnosis.end_id)
    lines += _list_section("Why", diagnosis.reasons, bullet="-")
    fix_lines = diagnosis.fixes or (_no_fix(diagnosis),)
    lines += _list_section("Fixes, most likely first", fix_lines, bullet="number")
    lines += _list_section("Notes", diagnosis.notes, bullet="-")
    return "\n".join(lines).rstrip() + "\n"


def _no_fix(diagnosis: Diagnosis) -> str:
    if content_notes(diagnosis.outputs, diagnosis.thresholds):
        return "No fix needed for the end token; the notes below say what the content needs."
    return "No fix needed."


def _output_lines(stats: OutputStats) -> list[str]:
    kind = "token ids" if stats.kind == "ids" else "text, whitespace words"
    rows = [
        ("empty outputs", _pct(stats.empty_rate), _pct(stats.reference_empty_rate)),
        ("end token at the first step", _pct(stats.first_token_end_rate), ""),
        ("mean length (tokens)", f"{stats.mean_length:.2f}", f"{stats.reference_mean_length:.2f}"),
        ("length ratio (predicted / reference)", _num(stats.length_ratio), ""),
        (f"repetition (a token {REPEAT_RUN}+ times in a row)", _pct(stats.repetition_rate), ""),
        (
            "most frequent token's share",
            "n/a" if stats.top_token is None else f"{_pct(stats.top_token_share)} {stats.top_token!r}",
            _pct(stats.reference_top_token_share),
        ),
    ]
    if stats.unterminated_rate is not None:
        rows.append(("never emitted the end token", _pct(stats.unterminated_rate), ""))
    lines = [
        f"Outputs: {stats.num_outputs} ({kind})",
        f"  {'':40s} {'outputs':>16s} {'references':>12s}",
    ]
    lines += [f"  {name:40s} {ours:>16s} {theirs:>12s}" for name, ours, theirs in rows]
    return lines + [""]


def _position_lines(stats: OutputStats) -> list[str]:
    shown = min(TEXT_POSITIONS, len(stats.end_share_by_position))
    header = "".join(f"{step:>6d}" for step in range(shown))
    ours = "".join(f"{share:>6.0%}" for share in stats.end_share_by_position[:shown])
    theirs = "".join(f"{share:>6.0%}" for share in stats.reference_end_share_by_position[:shown])
    return [
        "Share of outputs that have emitted END by step:",
        f"  {'step':12s}{header}",
        f"  {'outputs':12s}{ours}",
        f"  {'references':12s}{theirs}",
        "",
    ]


def _target_lines(targets: TargetStats, end_id: int) -> list[str]:
    weight = targets.recommended_end_weight
    masked = {None: "unknown", True: "yes", False: "no"}[targets.padding_masked]
    top = sorted(targets.class_counts.items(), key=lambda item: (-item[1], item[0]))[:5]
    share = targets.num_tokens or 1
    return [
        f"Training targets: {targets.num_rows} rows, "
        f"{targets.num_tokens} tokens (padding excluded)",
        f"  end token (id {end_id}): {targets.end_share:.1%} of the tokens",
        f"  recommended end-token class weight: {_num(weight, '.4g')}",
        f"  padded with the end token: {targets.end_padded_rows} of {targets.num_rows} rows",
        f"  padded with 0: {targets.zero_padded_rows} rows; padding masked: {masked}",
        f"  rows without an end token: {targets.missing_end_rows}",
        "  most frequent classes: "
        + ", ".join(f"{token}: {count} ({count / share:.1%})" for token, count in top),
        "",
    ]


def _list_section(title: str, items: Sequence[str], bullet: str) -> list[str]:
    if not items:
        return []
    marks = [f"{i}." if bullet == "number" else "-" for i in range(1, len(items) + 1)]
    return [f"{title}:"] + [f"  {mark} {item}" for mark, item in zip(marks, items)] + [""]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)
