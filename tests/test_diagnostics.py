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


def test_outputs_that_never_end_and_loop_are_at_risk():
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
    assert len(diagnosis.reasons) == 3  # long, never ends, repeats
    assert any("under-predicted" in fix for fix in diagnosis.fixes)


def test_text_repetition_and_dominant_token():
    stats = analyze_outputs(["a a a b", "a c"], ["x y z", "a c"])
    assert stats.repetition_rate == 0.5
    assert stats.top_token == "a" and stats.top_token_share == 4 / 6
    assert stats.reference_top_token_share == 1 / 5
    assert diagnose(["a a a b", "a c"], ["x y z", "a c"]).verdict == "at_risk"


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
    assert diagnosis.verdict == "at_risk"  # 25% empty, 0.31x: at risk, just not collapsed
    assert any("one token, 5," in reason for reason in diagnosis.reasons)
    assert not any("under-predicted" in fix or fix.startswith("Outputs run long") for fix in diagnosis.fixes)
    assert diagnosis.fixes[0].startswith("Pad targets with 0")
    collapsed = diagnose(SHORT_REPEATING[1:] + [[E]], SHORT_REFERENCES)  # half empty
    assert collapsed.verdict == "collapsed"
    assert any("one token, 5," in reason for reason in collapsed.reasons)
    assert not any("under-predicted" in fix or fix.startswith("Outputs run long") for fix in collapsed.fixes)
    assert any(fix.startswith("Down-weight the end token") for fix in collapsed.fixes)


def test_a_dominant_token_at_the_right_length_is_undertraining_not_a_late_end():
    predictions = [[5, 5, 5, 6, E], [5, 5, 5, 7, E], [5, 8, 5, 9, E], [5, 6, 5, 5, E]]
    diagnosis = diagnose(predictions, SHORT_REFERENCES)
    assert diagnosis.outputs.length_ratio == 1.0 and diagnosis.outputs.top_token_share == 11 / 16
    assert diagnosis.verdict == "at_risk"
    assert len(diagnosis.fixes) == 1 and diagnosis.fixes[0].startswith("Outputs loop on a token")
    assert "Train longer" in diagnosis.fixes[0]


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
