"""Diagnosis of end-token collapse on handcrafted outputs, every number worked by hand."""

import json

import numpy as np
import pytest

from seq2seq.diagnostics import (
    Thresholds,
    analyze_outputs,
    analyze_targets,
    diagnose,
    recommended_end_weight,
    save_plots,
)
from seq2seq.tokens import END_ID, PAD_ID, START_ID

E = END_ID
S = START_ID

# Four references of 2, 1, 3 and 1 tokens: 7 tokens, END at steps 2, 1, 3, 1.
REFERENCES = [[5, 6, E], [7, E], [5, 8, 9, E], [6, E]]
TEXT_REFERENCES = ["a b", "c", "a d e", "b"]

# END first everywhere: alone, after START, repeated, followed by padding.
ALL_END_FIRST = [[E], [S, E], [E, E, E], [E, PAD_ID, PAD_ID]]

# Lengths 2, 1, 2, 2 (7 tokens, ratio 1.0), END at steps 2, 1, 2, 2.
HEALTHY = [[5, 6, E], [7, E], [5, 8, E], [6, 9, E]]

# End-padded rows (runs of 3, 4 and 2 END) and one 0-padded row with one END.
END_PADDED_TARGETS = np.array(
    [
        [5, 6, E, E, E],
        [7, E, E, E, E],
        [5, 8, 9, E, E],
        [6, E, 0, 0, 0],
    ]
)


def test_all_end_first_is_collapsed_with_exact_measures():
    diagnosis = diagnose(ALL_END_FIRST, REFERENCES)
    stats = diagnosis.outputs
    assert diagnosis.verdict == "collapsed"
    assert stats.kind == "ids"
    assert stats.empty_rate == 1.0
    assert stats.first_token_end_rate == 1.0
    assert stats.unterminated_rate == 0.0
    assert stats.length_ratio == 0.0
    assert stats.mean_length == 0.0
    assert stats.reference_mean_length == 7 / 4
    assert stats.repetition_rate == 0.0  # no non-empty output to repeat in
    assert (stats.top_token, stats.top_token_share) == (None, None)
    # References: 5 and 6 twice each out of 7 tokens; ties go to the first seen.
    assert stats.reference_top_token_share == pytest.approx(2 / 7)
    # Latest END among all: step 3, so 4 positions.
    assert stats.end_share_by_position == (1.0, 1.0, 1.0, 1.0)
    assert stats.reference_end_share_by_position == (0.0, 0.5, 0.75, 1.0)
    assert stats.length_counts == (4,)
    assert stats.reference_length_counts == (0, 2, 1, 1)
    assert len(diagnosis.reasons) == 3  # empty, END first, length ratio


def test_all_empty_text_is_collapsed_and_end_measures_come_from_lengths():
    diagnosis = diagnose(["", "", "  ", ""], TEXT_REFERENCES)
    stats = diagnosis.outputs
    assert diagnosis.verdict == "collapsed"
    assert stats.kind == "text"
    assert (stats.empty_rate, stats.first_token_end_rate, stats.length_ratio) == (1.0, 1.0, 0.0)
    assert stats.unterminated_rate is None
    assert stats.reference_end_share_by_position == (0.0, 0.5, 0.75, 1.0)
    assert stats.reference_top_token_share == pytest.approx(2 / 7)
    assert any("computed from lengths" in note for note in diagnosis.notes)


def test_healthy_outputs_get_no_fix():
    diagnosis = diagnose(HEALTHY, REFERENCES)
    stats = diagnosis.outputs
    assert diagnosis.verdict == "healthy"
    assert (stats.empty_rate, stats.first_token_end_rate, stats.unterminated_rate) == (0, 0, 0)
    assert stats.length_ratio == 1.0
    assert stats.top_token == 5 and stats.top_token_share == pytest.approx(2 / 7)
    assert stats.end_share_by_position == (0.0, 0.25, 1.0, 1.0)
    assert stats.length_counts == (0, 1, 3)
    assert diagnosis.reasons == () and diagnosis.fixes == ()
    assert "No fix needed." in diagnosis.to_text()


def test_one_empty_output_in_ten_is_at_risk_and_one_in_eleven_is_not():
    at_risk = diagnose([[E]] + [[5, 6, E]] * 9, [[5, 6, E]] * 10)
    assert at_risk.outputs.empty_rate == 0.1
    assert at_risk.outputs.first_token_end_rate == 0.1
    assert at_risk.outputs.length_ratio == 18 / 20
    # 5 makes half the output tokens, but also half the references': not dominant.
    assert at_risk.outputs.top_token_share == 0.5
    assert at_risk.verdict == "at_risk"
    assert len(at_risk.reasons) == 2
    below = diagnose([[E]] + [[5, 6, E]] * 10, [[5, 6, E]] * 11)
    assert below.outputs.empty_rate == pytest.approx(1 / 11)
    assert below.verdict == "healthy"


def test_half_empty_is_collapsed_at_the_threshold():
    diagnosis = diagnose([[E], [E], [5, 6, E], [7, E]], REFERENCES)
    assert diagnosis.outputs.empty_rate == 0.5
    assert diagnosis.outputs.length_ratio == 3 / 7
    assert diagnosis.verdict == "collapsed"


def test_outputs_that_never_end_and_loop_are_at_risk_for_the_late_end():
    predictions = [[5, 6, 7, 8, 9, 5], [5, 5, 5, 6]]
    diagnosis = diagnose(predictions, [[5, 6, E], [7, E]])
    stats = diagnosis.outputs
    assert stats.unterminated_rate == 1.0
    assert stats.length_ratio == 10 / 3
    assert stats.repetition_rate == 0.5
    assert stats.top_token_share == 0.5  # below twice the references' 1/3
    assert stats.end_share_by_position == (0.0, 0.0, 0.0)
    assert stats.reference_end_share_by_position == (0.0, 0.5, 1.0)
    assert diagnosis.verdict == "at_risk"
    assert len(diagnosis.reasons) == 2  # long, never ends: the loop is a note
    assert "3.33x the references' length" in diagnosis.reasons[0]
    assert "100.0% of outputs never emit the end token" in diagnosis.reasons[1]
    assert any("under-predicted" in fix for fix in diagnosis.fixes)
    assert "50.0% of non-empty outputs repeat a token 3+ times" in diagnosis.notes[0]
    assert diagnosis.notes[1].startswith("The outputs also run long")


def test_text_repetition_and_dominant_token_at_about_the_references_length_is_healthy():
    stats = analyze_outputs(["a a a b", "a c"], ["x y z", "a c"])
    assert stats.repetition_rate == 0.5
    assert stats.top_token == "a" and stats.top_token_share == 4 / 6
    assert stats.reference_top_token_share == 1 / 5
    assert stats.length_ratio == 6 / 5  # within 0.8-1.5x
    diagnosis = diagnose(["a a a b", "a c"], ["x y z", "a c"])
    assert diagnosis.verdict == "healthy"
    assert diagnosis.reasons == () and diagnosis.fixes == ()
    assert "50.0% of non-empty outputs repeat" in diagnosis.notes[0]
    assert "one token, 'a', makes 66.7% of the output tokens (references: 20.0%" in diagnosis.notes[1]
    assert "the end token is not the problem here" in diagnosis.notes[2]


def test_padding_before_end_keeps_its_step_but_is_not_a_token():
    stats = analyze_outputs([[PAD_ID, E], [5, PAD_ID, E]], [[5, E], [5, E]])
    assert stats.empty_rate == 0.5
    assert stats.first_token_end_rate == 0.0
    assert stats.end_share_by_position == (0.0, 0.5, 1.0)


def test_end_padded_targets_are_detected_and_weighted():
    stats = analyze_targets(END_PADDED_TARGETS)
    assert stats.end_padded and stats.end_padded_rows == 3
    assert stats.zero_padded_rows == 1 and stats.missing_end_rows == 0
    assert stats.class_counts == {E: 10, 5: 2, 6: 2, 7: 1, 8: 1, 9: 1}
    assert stats.num_tokens == 17
    assert stats.end_share == 10 / 17
    counts = np.bincount(END_PADDED_TARGETS[END_PADDED_TARGETS != PAD_ID])
    others = [count for token, count in enumerate(counts) if token != E and count > 0]
    assert stats.recommended_end_weight == pytest.approx(np.mean(others) / counts[E])
    assert stats.recommended_end_weight == pytest.approx(1.4 / 10)


def test_zero_padded_ragged_targets_are_not_end_padded():
    stats = analyze_targets([[5, 6, E, 0, 0], [7, E], [5, 9], [0, 0]], padding_masked=True)
    assert (stats.end_padded_rows, stats.zero_padded_rows, stats.missing_end_rows) == (0, 2, 2)
    # 5 twice; 6, 7 and 9 once; END twice: mean(2, 1, 1, 1) / 2.
    assert stats.recommended_end_weight == pytest.approx(1.25 / 2)
    assert stats.padding_masked is True


def test_recommended_weight_is_none_without_an_end_token():
    assert recommended_end_weight({5: 3, 6: 1}) is None
    assert recommended_end_weight({E: 4}) is None


def test_recommended_weight_matches_the_losses_module():
    losses = pytest.importorskip("seq2seq.losses")
    weights = losses.end_token_class_weights(list(END_PADDED_TARGETS), vocab_size=12)
    expected = analyze_targets(END_PADDED_TARGETS).recommended_end_weight
    assert float(np.asarray(weights)[E]) == pytest.approx(expected)


def test_end_padded_unmasked_targets_make_healthy_outputs_at_risk():
    diagnosis = diagnose(HEALTHY, REFERENCES, END_PADDED_TARGETS, padding_masked=False)
    assert diagnosis.verdict == "at_risk"
    assert "padded with the end token" in diagnosis.reasons[0]
    assert diagnosis.fixes[0].startswith("Pad targets with 0")
    masked = diagnose(HEALTHY, REFERENCES, END_PADDED_TARGETS, padding_masked=True)
    assert masked.verdict == "healthy"
    assert any("mask_zero only masks id 0" in note for note in masked.notes)


def test_collapse_from_end_padding_offers_the_computed_weight_first_after_padding():
    diagnosis = diagnose(ALL_END_FIRST, REFERENCES, END_PADDED_TARGETS)
    assert diagnosis.verdict == "collapsed"
    assert diagnosis.fixes[0].startswith("Pad targets with 0, not the end token (3 of 4 rows")
    assert "class weight 0.14 for id 3" in diagnosis.fixes[1]
    # END-padded: the weight goes on the padding only, each target's real end keeps 1.
    assert "end_padding_weights(target_out, 0.14)" in diagnosis.fixes[1]
    assert "BoundaryAwareLoss" in diagnosis.fixes[2]
    assert not any("Train longer" in fix for fix in diagnosis.fixes)


# Four references of 4 tokens; each output repeats token 5 and stops early:
# 5 is all the output tokens (2 / 16 of the references').
SHORT_REFERENCES = [[5, 6, 7, 8, E], [6, 7, 8, 9, E], [7, 8, 9, 6, E], [8, 9, 6, 7, E]]
SHORT_REPEATING = [[5, 5, 5, E], [5, E], [5, E], [E]]


def test_collapsed_short_outputs_dominated_by_a_token_are_not_told_they_run_long():
    diagnosis = diagnose(SHORT_REPEATING, SHORT_REFERENCES, END_PADDED_TARGETS)
    stats = diagnosis.outputs
    assert stats.length_ratio == 5 / 16 and stats.top_token_share == 1.0
    assert stats.repetition_rate == 1 / 3  # one of the three non-empty outputs
    assert stats.empty_rate == 1 / 4
    # 25% empty, END first in 25%, 0.31x: at risk from the early END, just not collapsed.
    assert diagnosis.verdict == "at_risk"
    assert len(diagnosis.reasons) == 4  # empty, END first, short, END-padded targets
    assert not any("one token" in reason or "repeat" in reason for reason in diagnosis.reasons)
    assert "33.3% of non-empty outputs repeat" in diagnosis.notes[0]
    assert "one token, 5, makes 100.0% of the output tokens" in diagnosis.notes[1]
    assert diagnosis.notes[2].startswith("The outputs also end early")
    assert not any("under-predicted" in fix or fix.startswith("Outputs run long") for fix in diagnosis.fixes)
    assert diagnosis.fixes[0].startswith("Pad targets with 0")
    collapsed = diagnose(SHORT_REPEATING[1:] + [[E]], SHORT_REFERENCES)  # half empty
    assert collapsed.verdict == "collapsed"
    assert collapsed.outputs.repetition_rate == 0.0  # [5] and [5]: no run of 3
    assert "one token, 5, makes 100.0%" in collapsed.notes[0]
    assert collapsed.notes[1].startswith("The outputs also end early")
    assert not any("under-predicted" in fix or fix.startswith("Outputs run long") for fix in collapsed.fixes)
    assert any(fix.startswith("Down-weight the end token") for fix in collapsed.fixes)


def test_looping_in_empty_outputs_is_the_collapse_and_a_note():
    # One output of three 5s, three empty: 75% empty, 3 of 16 tokens (0.19x).
    diagnosis = diagnose([[5, 5, 5, E], [E], [E], [E]], SHORT_REFERENCES)
    stats = diagnosis.outputs
    assert (stats.empty_rate, stats.first_token_end_rate) == (0.75, 0.75)
    assert stats.length_ratio == 3 / 16
    assert stats.repetition_rate == 1.0 and stats.top_token_share == 1.0
    assert diagnosis.verdict == "collapsed"
    assert len(diagnosis.reasons) == 3  # empty, END first, short
    assert "100.0% of non-empty outputs repeat" in diagnosis.notes[0]
    assert diagnosis.notes[2].startswith("The outputs also end early")


def test_a_dominant_token_at_the_right_length_is_a_content_note_not_a_verdict():
    predictions = [[5, 5, 5, 6, E], [5, 5, 5, 7, E], [5, 8, 5, 9, E], [5, 6, 5, 5, E]]
    diagnosis = diagnose(predictions, SHORT_REFERENCES)
    stats = diagnosis.outputs
    # 5 is 11 of the 16 output tokens; in the references 6, 7, 8 and 9 are 4 of 16 each.
    assert stats.length_ratio == 1.0 and stats.top_token_share == 11 / 16
    assert stats.reference_top_token_share == 4 / 16
    assert stats.repetition_rate == 2 / 4  # 5 5 5 in the first two; the last ends 5 5, a run of 2
    assert diagnosis.verdict == "healthy"
    assert diagnosis.reasons == () and diagnosis.fixes == ()
    assert "50.0% of non-empty outputs repeat" in diagnosis.notes[0]
    assert "one token, 5, makes 68.8% of the output tokens (references: 25.0%" in diagnosis.notes[1]
    assert diagnosis.notes[2].startswith("Outputs loop on a token")
    assert "Train longer" in diagnosis.notes[2]
    assert "the end token is not the problem here" in diagnosis.notes[2]


def test_looping_at_the_references_length_is_healthy_with_a_repetition_note():
    # One output in four repeats 5 three times; every output has its reference's 4 tokens.
    predictions = [[5, 5, 5, 6, E], [6, 7, 8, 9, E], [7, 8, 9, 6, E], [8, 9, 6, 7, E]]
    diagnosis = diagnose(predictions, SHORT_REFERENCES)
    stats = diagnosis.outputs
    assert stats.length_ratio == 1.0 and stats.unterminated_rate == 0.0
    assert stats.repetition_rate == 1 / 4
    # 6 four times of 16 (5, 7, 8 and 9 three times): below 30%, so no dominant-token note.
    assert stats.top_token == 6 and stats.top_token_share == 4 / 16
    assert diagnosis.verdict == "healthy"
    assert diagnosis.reasons == () and diagnosis.fixes == ()
    assert diagnosis.notes[0] == (
        "Content note (does not set the verdict): 25.0% of non-empty outputs repeat a token "
        "3+ times in a row (noted at >= 20%)."
    )
    assert "the end token is not the problem here" in diagnosis.notes[1]
    assert diagnosis.notes[2].startswith("No training targets given")
    text = diagnosis.to_text()
    assert text.startswith("End-token collapse diagnosis: HEALTHY")
    assert "repetition (a token 3+ times in a row)" in text and "25.0%" in text
    assert "No fix needed for the end token; the notes below" in text
    assert "Train longer" in text.split("Notes:")[1]
    report = json.loads(json.dumps(diagnosis.to_dict()))
    assert report["notes"] == list(diagnosis.notes)
    assert (report["reasons"], report["fixes"]) == ([], [])
    assert (report["repetition_rate"], report["top_token_share"]) == (0.25, 0.25)


def test_looping_and_long_outputs_are_at_risk_for_the_late_end():
    # Each output says its reference's 4 tokens, then its last token 4 more times: 2x long.
    predictions = [[5, 6, 7, 8, 8, 8, 8, 8, E], [6, 7, 8, 9, 9, 9, 9, 9, E],
                   [7, 8, 9, 6, 6, 6, 6, 6, E], [8, 9, 6, 7, 7, 7, 7, 7, E]]
    diagnosis = diagnose(predictions, SHORT_REFERENCES)
    stats = diagnosis.outputs
    assert stats.length_ratio == 32 / 16 and stats.unterminated_rate == 0.0
    assert stats.repetition_rate == 1.0
    # 6, 7 and 8 eight times each of 32 (first seen: 6), 9 seven times, 5 once.
    assert stats.top_token == 6 and stats.top_token_share == 8 / 32
    assert diagnosis.verdict == "at_risk"
    assert diagnosis.reasons == ("outputs are 2.00x the references' length (at risk above 1.5x)",)
    assert len(diagnosis.fixes) == 1 and diagnosis.fixes[0].startswith("Outputs run long")
    assert "100.0% of non-empty outputs repeat" in diagnosis.notes[0]
    assert diagnosis.notes[1].startswith("The outputs also run long")
    assert not any("not the problem here" in note for note in diagnosis.notes)


def test_collapse_with_clean_targets_suggests_training_longer():
    clean = [[5, 6, E, 0], [7, 8, 9, E]]  # weight: mean(1, 1, 1, 1, 1) / 2
    diagnosis = diagnose(ALL_END_FIRST, REFERENCES, clean, padding_masked=True)
    assert "class weight 0.5 for id 3" in diagnosis.fixes[0]
    assert "BoundaryAwareLoss" in diagnosis.fixes[1]
    assert diagnosis.fixes[2].startswith("Train longer")


def test_collapse_without_targets_asks_for_them():
    diagnosis = diagnose(ALL_END_FIRST, REFERENCES)
    assert "--targets" in diagnosis.fixes[0]


def test_unmasked_zero_padding_is_a_fix_when_collapsed():
    diagnosis = diagnose(ALL_END_FIRST, REFERENCES, [[5, E, 0]], padding_masked=False)
    assert diagnosis.fixes[0].startswith("Mask the 0 padding")


def test_thresholds_are_configurable():
    lenient = Thresholds(collapsed_empty_rate=0.6, collapsed_first_end_rate=0.6)
    diagnosis = diagnose([[E], [E], [5, 6, E], [7, 8, 9, E]], REFERENCES, thresholds=lenient)
    assert diagnosis.verdict == "at_risk"


def test_to_dict_is_json_with_the_promised_keys():
    diagnosis = diagnose(ALL_END_FIRST, REFERENCES, END_PADDED_TARGETS)
    report = json.loads(json.dumps(diagnosis.to_dict()))
    assert report["verdict"] == "collapsed"
    assert report["empty_rate"] == 1.0 and report["first_token_end_rate"] == 1.0
    assert report["length_ratio"] == 0.0
    assert report["targets"]["end_padded"] is True
    assert report["targets"]["class_counts"]["3"] == 10
    assert report["thresholds"]["collapsed_empty_rate"] == 0.5
    for key in ("reasons", "fixes", "notes", "repetition_rate", "top_token", "top_token_share"):
        assert key in report
    # ALL_END_FIRST outputs no token at all: nothing loops, so no content note.
    assert not any(note.startswith("Content note") for note in report["notes"])


def test_text_report_names_verdict_measures_and_fixes():
    text = diagnose(ALL_END_FIRST, REFERENCES, END_PADDED_TARGETS).to_text()
    assert text.startswith("End-token collapse diagnosis: COLLAPSED")
    for expected in ("empty outputs", "100.0%", "padded with the end token: 3 of 4", "Fixes"):
        assert expected in text


@pytest.mark.parametrize(
    "predictions, references, message",
    [
        ([[E]], [[5, E], [6, E]], "1 predictions and 2 references"),
        (["a", [5, E]], ["a", "b"], "a string at index 0"),
        ([[5, E]], ["a"], "Expected references of the predictions' kind"),
        ([], [], "at least one output"),
    ],
)
def test_bad_inputs_raise_value_errors_naming_what_was_received(predictions, references, message):
    with pytest.raises(ValueError, match=message):
        diagnose(predictions, references)


def test_plots_are_valid_pngs(tmp_path):
    from matplotlib.image import imread

    paths = save_plots(diagnose(ALL_END_FIRST, REFERENCES), tmp_path / "plots")
    assert [path.name for path in paths] == ["lengths.png", "end_by_position.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert imread(path).shape[:2] == (400, 600)
