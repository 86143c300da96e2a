"""GNMT's coverage penalty in beam search, on scripted step functions (see test_decoding.py).

TreeModel's attention is one-hot: feeding the start token attends to source
position 3, a letter to its own position (a -> 0, b -> 1, c -> 2), so a
hypothesis' coverage is the positions of the tokens fed before each of its
outputs, and its penalty counts the source positions it never attended to.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from seq2seq import decoding
from decoding_cases import SRC_TIME, TRAP, RandomTranslator, TreeModel, as_strings, tree

# "b." (0.54) attends to positions 3, 1: two positions never covered. "abc." (0.4) attends to
# 3, 0, 1, 2: all four. "bc." (0.06) leaves position 0 out.
COVERAGE = tree({"": {"b": 0.6, "a": 0.4}, "b": {".": 0.9, "c": 0.1}, "a": {"b": 1.0}, "ab": {"c": 1.0}})
FLOOR = math.log(1e-6)  # what a never-attended position adds to the sum of logs


def beam(model, rows=1, **kwargs):
    mask = tf.ones([rows, SRC_TIME], tf.bool)
    return model.beam(3, source_mask=mask, **kwargs)


def test_the_coverage_penalty_prefers_the_hypothesis_that_attends_to_every_source_position():
    model = TreeModel(COVERAGE, max_length=5)
    assert as_strings(beam(model).token_ids) == ["b.___"]
    penalised = beam(model, coverage_penalty=0.2)
    assert as_strings(penalised.token_ids) == ["abc._"]
    np.testing.assert_allclose(penalised.log_probs, [math.log(0.4)], atol=1e-5)
    np.testing.assert_allclose(penalised.scores, [math.log(0.4) + 0.2 * 0.0], atol=1e-5)  # nothing uncovered


def test_n_best_scores_add_beta_times_the_log_coverage_of_each_hypothesis():
    result = beam(TreeModel(COVERAGE, max_length=5), coverage_penalty=0.2, n_best=3)
    assert [as_strings(row) for row in result.token_ids.numpy()] == [["abc._", "bc.__", "b.___"]]
    uncovered = np.array([0, 1, 2])  # positions each hypothesis never attended to
    log_probs = np.log([0.4, 0.6 * 0.1, 0.6 * 0.9])
    np.testing.assert_allclose(result.log_probs, [log_probs], atol=1e-5)
    np.testing.assert_allclose(result.scores, [log_probs + 0.2 * uncovered * FLOOR], atol=1e-4)


def test_padded_source_positions_are_left_out_of_the_penalty():
    # With position 0 marked as padding, "bc." covers every real position: it beats "b." now.
    model = TreeModel(COVERAGE, max_length=5)
    mask = tf.constant([[False, True, True, True]])
    result = model.beam(3, source_mask=mask, coverage_penalty=0.2, n_best=3)
    assert as_strings(result.token_ids.numpy()[0]) == ["abc._", "bc.__", "b.___"]
    np.testing.assert_allclose(result.scores.numpy()[0, :2], np.log([0.4, 0.06]), atol=1e-5)


def test_a_zero_coverage_penalty_changes_nothing():
    model = TreeModel(TRAP, COVERAGE, max_length=5)
    plain, zero = model.beam(3), beam(model, rows=2, coverage_penalty=0.0)
    for field in plain._fields:
        np.testing.assert_array_equal(getattr(plain, field), getattr(zero, field))


def test_encode_and_decode_masks_the_padding_itself():
    translator = RandomTranslator(seed=9)
    source = np.random.default_rng(9).integers(4, 14, size=[4, 5])
    source[1, 3:] = 0  # a shorter source, padded
    plain = decoding.translate_ids(translator, source, beam_size=3, max_length=8)
    penalised = decoding.translate_ids(translator, source, beam_size=3, max_length=8, coverage_penalty=0.4)
    assert np.isfinite(penalised.scores.numpy()).all()
    assert (penalised.scores.numpy() <= plain.scores.numpy() + 1e-5).all()  # a penalty: never above


def test_a_coverage_penalty_without_a_source_mask_is_refused():
    model = TreeModel(COVERAGE)
    with pytest.raises(ValueError, match="source_mask"):
        model.beam(2, coverage_penalty=0.2)
    with pytest.raises(ValueError, match="coverage_penalty=-1"):
        decoding.BeamSearch(2, coverage_penalty=-1)
