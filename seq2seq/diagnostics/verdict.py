"""From measures to a verdict about the end token, the fixes, and the content notes.

The verdict is about END only and is read from the outputs; the training
targets, when given, can raise `healthy` to `at_risk` (end-padded, unmasked
targets collapse sooner or later) and decide which fixes are offered and with
which numbers.

- `collapsed`: the model's usual answer is END: at least half of the outputs
  are empty or start with END, or the outputs are under 0.3x the references'
  length.
- `at_risk`: a milder form of the same (END too early), or the opposite
  failure (END under-predicted: outputs run long or never end), or targets
  that reward predicting END.
- `healthy`: none of the above.

Outputs that loop on a token or are dominated by one are measured and
reported as content notes (`content_notes`), not reasons: they do not set the
verdict. At the references' length they mean the decoder has not learned the
content yet; when they run long, the late-END checks already catch them; in
short or empty outputs they are part of a collapse, which the early-END checks
catch. The fixes follow the case: "END is under-predicted" only when the
outputs are long or never end.
"""

from dataclasses import dataclass

from seq2seq.diagnostics.outputs import REPEAT_RUN, OutputStats
from seq2seq.diagnostics.targets import TargetStats

VERDICTS = ("collapsed", "at_risk", "healthy")


@dataclass(frozen=True)
class Thresholds:
    """Where each measure turns a verdict. Rates compare with >=, ratios strictly."""

    # Most outputs empty / ending at once: END is the model's default answer.
    collapsed_empty_rate: float = 0.5
    collapsed_first_end_rate: float = 0.5
    # Outputs under 0.3x the references' length carry almost nothing.
    collapsed_length_ratio: float = 0.3
    # One output in ten empty is far above what a trained translator gives on
    # non-empty references, and is 5+ outputs on a probe set of 50.
    at_risk_empty_rate: float = 0.1
    at_risk_first_end_rate: float = 0.1
    # Below 0.8x, BLEU's brevity penalty already costs over 20%.
    at_risk_short_ratio: float = 0.8
    # Above 1.5x, or one output in ten never ending: END is under-predicted.
    at_risk_long_ratio: float = 1.5
    at_risk_unterminated_rate: float = 0.1
    # Content notes, not the verdict (the names predate that; kept for callers
    # and the JSON): one non-empty output in five looping on a token (REPEAT_RUN+
    # in a row), or one token making 30% of the output and twice its share in
    # the references, is noted with its advice whatever the verdict.
    at_risk_repetition_rate: float = 0.2
    at_risk_top_token_share: float = 0.3


def judge(
    outputs: OutputStats, targets: TargetStats | None, thresholds: Thresholds
) -> tuple[str, list[str]]:
    """Returns the verdict and the reasons for it (collapse reasons first).

    Only END findings count: collapse, early END, late END and targets that
    reward END. Looping and a dominant token are `content_notes`, not reasons.
    """
    collapse = collapse_reasons(outputs, thresholds)
    risks = early_end_reasons(outputs, thresholds) + late_end_reasons(outputs, thresholds)
    risks += target_reasons(targets)
    if collapse:
        return "collapsed", collapse + [r for r in risks if r not in collapse]
    return ("at_risk", risks) if risks else ("healthy", [])


def collapse_reasons(outputs: OutputStats, t: Thresholds) -> list[str]:
    """The model has collapsed to END: the early-end checks at the `collapsed_*` thresholds."""
    return _ends_early(outputs, t, t.collapsed_empty_rate, t.collapsed_first_end_rate, t.collapsed_length_ratio)


def early_end_reasons(outputs: OutputStats, t: Thresholds) -> list[str]:
    """The model stops too soon: empty, END first, short."""
    return _ends_early(outputs, t, t.at_risk_empty_rate, t.at_risk_first_end_rate, t.at_risk_short_ratio)


def _ends_early(outputs: OutputStats, t: Thresholds, empty_rate: float, first_end_rate: float,
                short_ratio: float) -> list[str]:
    """Empty outputs at >= `empty_rate`, END first at >= `first_end_rate` (ids only), length ratio < `short_ratio`."""
    reasons = []
    if outputs.empty_rate >= empty_rate:
        reasons.append(_empty_reason(outputs, t))
    if outputs.kind == "ids" and outputs.first_token_end_rate >= first_end_rate:
        reasons.append(_first_end_reason(outputs, t))
    ratio = outputs.length_ratio
    if ratio is not None and ratio < short_ratio:
        reasons.append(_short_reason(outputs, t))
    return reasons


def late_end_reasons(outputs: OutputStats, t: Thresholds) -> list[str]:
    """The model stops too late or never: END under-predicted."""
    reasons = []
    ratio = outputs.length_ratio
    if ratio is not None and ratio > t.at_risk_long_ratio:
        reasons.append(
            f"outputs are {ratio:.2f}x the references' length "
            f"(at risk above {t.at_risk_long_ratio}x)"
        )
    unterminated = outputs.unterminated_rate
    if unterminated is not None and unterminated >= t.at_risk_unterminated_rate:
        reasons.append(
            f"{unterminated:.1%} of outputs never emit the end token "
            f"(at risk at >= {t.at_risk_unterminated_rate:.0%})"
        )
    return reasons


def repetition_findings(outputs: OutputStats, t: Thresholds) -> list[str]:
    """The outputs loop on a token or one token dominates them, whatever their length."""
    found = []
    if outputs.repetition_rate >= t.at_risk_repetition_rate:
        found.append(
            f"{outputs.repetition_rate:.1%} of non-empty outputs repeat a token "
            f"{REPEAT_RUN}+ times in a row (noted at >= {t.at_risk_repetition_rate:.0%})"
        )
    if _top_token_dominates(outputs, t):
        found.append(
            f"one token, {outputs.top_token!r}, makes {outputs.top_token_share:.1%} of the output "
            f"tokens (references: {outputs.reference_top_token_share or 0:.1%}; noted at "
            f">= {t.at_risk_top_token_share:.0%} and twice the references')"
        )
    return found


def content_notes(outputs: OutputStats, t: Thresholds) -> list[str]:
    """Looping or a dominant token, and what it means at these lengths; no verdict.

    At about the references' length it is the content, not END; long outputs
    that loop are the late END of the reasons, short ones part of an early END.
    """
    found = repetition_findings(outputs, t)
    if not found:
        return []
    notes = [f"Content note (does not set the verdict): {finding}." for finding in found]
    if late_end_reasons(outputs, t):
        notes.append(
            "The outputs also run long or never end: the late-END reasons and fixes above "
            "cover the loop (END is under-predicted, or the model is undertrained)."
        )
    elif early_end_reasons(outputs, t):
        notes.append(
            "The outputs also end early: a token that loops or dominates in short outputs is "
            "part of the early END (or of an undertrained decoder), not a late END; the END "
            "fixes above come first."
        )
    else:
        notes.append(
            "Outputs loop on a token or one token dominates them, at about the references' "
            "length: the decoder has not learned the content yet. Train longer (check that the "
            "training loss still falls); the end token is not the problem here."
        )
    return notes


def target_reasons(targets: TargetStats | None) -> list[str]:
    if targets is None or not targets.end_padded or targets.padding_masked:
        return []
    return [
        f"the training targets are padded with the end token ({targets.end_padded_rows} of "
        f"{targets.num_rows} rows) and that padding is not masked: predicting END everywhere "
        "is the cheapest way to lower the loss"
    ]


def fixes(
    verdict: str,
    outputs: OutputStats,
    targets: TargetStats | None,
    thresholds: Thresholds,
    end_id: int,
) -> list[str]:
    """The END fixes that apply to this case, most likely first; none when healthy.

    Advice on looping at the references' length is in `content_notes`.
    """
    if verdict == "healthy":
        return []
    early = bool(early_end_reasons(outputs, thresholds))
    late = bool(late_end_reasons(outputs, thresholds))
    data = data_fixes(targets)
    found = list(data)
    if early or (targets is not None and targets.end_padded and not late):
        found += end_weight_fixes(targets, end_id)
        found.append(
            f"Use BoundaryAwareLoss(end_id={end_id}): a position whose END is already predicted "
            "right stops counting, so predicting END everywhere no longer lowers the loss."
        )
    if early and not data:  # nothing in the targets explains the early END
        found.append(
            "Train longer (check that the training loss still falls): an undertrained decoder "
            "ends early before it has learned the content."
        )
    if late:
        found.append(
            "Outputs run long or never end, so END is under-predicted: if you down-weighted END "
            "with one class weight, it also down-weights each target's real end: move it back "
            "towards 1, or weight only the END padding (end_padding_weights); check that every "
            "target ends with END; cap decoding with a max length; an undertrained model loops "
            "too, so check the loss still falls."
        )
    return found


def data_fixes(targets: TargetStats | None) -> list[str]:
    """Fixes to the targets themselves: padding, masking, missing END."""
    if targets is None:
        return []
    found = []
    if targets.end_padded:
        found.append(
            f"Pad targets with 0, not the end token ({targets.end_padded_rows} of "
            f"{targets.num_rows} rows end in a run of END): keep one END per target, pad with "
            "PAD_ID=0, and use Embedding(mask_zero=True) with MaskedSparseCrossentropy(pad_id=0) "
            "so padding costs nothing."
        )
    elif targets.zero_padded_rows and targets.padding_masked is False:
        found.append(
            "Mask the 0 padding: Embedding(mask_zero=True) with "
            "MaskedSparseCrossentropy(pad_id=0); unmasked, the padding dominates the loss "
            "and the model mostly learns to predict it."
        )
    if targets.missing_end_rows:
        found.append(
            f"Add the end token to every target ({targets.missing_end_rows} of {targets.num_rows} "
            "rows have none): trim first, then add START and END."
        )
    return found


def end_weight_fixes(targets: TargetStats | None, end_id: int) -> list[str]:
    if targets is None:
        return [
            f"Down-weight the end token (id {end_id}): pass the training targets (--targets) "
            "to compute its class weight."
        ]
    weight = targets.recommended_end_weight
    if weight is None or weight >= 1.0:
        return []
    if targets.end_padded:
        return [
            f"Down-weight the END padding: class weight {weight:.4g} for id {end_id} (mean count "
            "of the other classes / end-token count) on every END after a target's first, which "
            f"keeps weight 1: pass end_padding_weights(target_out, {weight:.4g}) as the per-token "
            "sample_weight of MaskedSparseCrossentropy. One weight for every END "
            "(class_weights=end_token_class_weights(...)) also down-weights each real end, and "
            "the outputs then run long (about 10x in the kit's collapse study)."
        ]
    return [
        f"Down-weight the end token: class weight {weight:.4g} for id {end_id} (mean count of "
        "the other classes / end-token count), passed as MaskedSparseCrossentropy("
        "class_weights=end_token_class_weights(targets, vocab_size)); if the outputs then run "
        "long, move it back towards 1."
    ]


def _top_token_dominates(outputs: OutputStats, t: Thresholds) -> bool:
    share = outputs.top_token_share
    if share is None or share < t.at_risk_top_token_share:
        return False
    return share >= 2 * (outputs.reference_top_token_share or 0.0)


def _empty_reason(outputs: OutputStats, t: Thresholds) -> str:
    return (
        f"{outputs.empty_rate:.1%} of outputs are empty (collapsed at >= "
        f"{t.collapsed_empty_rate:.0%}, at risk at >= {t.at_risk_empty_rate:.0%})"
    )


def _first_end_reason(outputs: OutputStats, t: Thresholds) -> str:
    return (
        f"the end token comes first in {outputs.first_token_end_rate:.1%} of outputs (collapsed "
        f"at >= {t.collapsed_first_end_rate:.0%}, at risk at >= {t.at_risk_first_end_rate:.0%})"
    )


def _short_reason(outputs: OutputStats, t: Thresholds) -> str:
    return (
        f"outputs are {outputs.length_ratio:.2f}x the references' length (collapsed below "
        f"{t.collapsed_length_ratio}x, at risk below {t.at_risk_short_ratio}x)"
    )
