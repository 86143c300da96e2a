"""n-best lists: the best `n_best` hypotheses of one beam search, with their scores and alignments.

Scripted step functions as in test_decoding.py ("ab." = a, b, end; "_" = padding).
"""

import math

import numpy as np
import pytest

from seq2seq import decoding
from decoding_cases import ABC, FOREVER, SRC_TIME, TRAP, RandomTranslator, TreeModel, as_strings, tree

# "b." finishes at step 1; "a" then only repeats "a" and is cut at max_length.
ONE_ENDS = tree({"": {"a": 0.6, "b": 0.4}, "a": {"a": 1.0}, "aa": {"a": 1.0}})


def rows(result):
    """[batch][n_best] strings of an NBestResult."""
    token_ids = np.asarray(result.token_ids)
    return [as_strings(row) for row in token_ids]


def test_n_best_returns_the_beams_finished_hypotheses_best_first_with_their_scores():
    # TRAP's full hypotheses: bc. 0.38, ac. 0.21, ad. 0.21, ae. 0.18, bd. 0.02; a beam of 2 keeps bc and ac.
    result = TreeModel(TRAP, max_length=4).beam(2, n_best=2)
    assert rows(result) == [["bc._", "ac._"]]
    assert result.lengths.numpy().tolist() == [[3, 3]]
    np.testing.assert_allclose(result.log_probs, [[math.log(0.38), math.log(0.6 * 0.35)]], atol=1e-5)
    np.testing.assert_allclose(result.scores, result.log_probs)  # length_penalty 0
    # "ac." was fed start, a, c: attention on source positions 3, 0, 2.
    attention = result.attention.numpy()[0, 1]
    assert attention.shape == (4, SRC_TIME)
    assert attention[:3].argmax(axis=-1).tolist() == [3, 0, 2] and not attention[3:].any()


def test_scores_are_the_log_prob_over_the_length_penalty():
    result = TreeModel(ABC, max_length=5).beam(3, n_best=3, length_penalty=1.0)
    # "b." (0.4) finishes at step 1, "ac." (0.18) and "ab." (0.042) at step 2; the row goes on,
    # since "abc" (0.378) outscores the third of them, and "abc." displaces "ab.".
    assert rows(result) == [["abc._", "b.___", "ac.__"]]
    log_probs = np.log([0.6 * 0.7 * 0.9, 0.4, 0.6 * 0.3])
    np.testing.assert_allclose(result.log_probs, [log_probs], atol=1e-5)
    np.testing.assert_allclose(result.scores, [log_probs / ((5 + np.array([4, 2, 3])) / 6)], atol=1e-5)


def test_a_row_with_too_few_finished_hypotheses_adds_its_best_unfinished_ones_after_them():
    result = TreeModel(ONE_ENDS, max_length=3).beam(2, n_best=2)
    assert rows(result) == [["b._", "aaa"]]  # finished first, although "aaa" (0.6) is likelier
    assert result.lengths.numpy().tolist() == [[2, 3]]
    np.testing.assert_allclose(result.log_probs, [[math.log(0.4), math.log(0.6)]], atol=1e-5)


def test_a_slot_without_any_hypothesis_is_empty_with_minus_infinity():
    result = TreeModel(FOREVER, max_length=3).beam(2, n_best=2)
    assert rows(result) == [["aaa", "___"]]
    assert result.lengths.numpy().tolist() == [[3, 0]]
    assert result.log_probs.numpy()[0, 1] == -np.inf and result.scores.numpy()[0, 1] == -np.inf
    assert not result.attention.numpy()[0, 1].any()


def test_the_first_of_the_n_best_is_the_plain_result_of_each_row():
    model = TreeModel(TRAP, ABC, ONE_ENDS, max_length=5)
    best, n_best = model.beam(3, length_penalty=0.6), model.beam(3, length_penalty=0.6, n_best=3)
    assert [row[0] for row in rows(n_best)] == as_strings(best.token_ids)
    for field in ("lengths", "log_probs", "scores", "attention"):
        np.testing.assert_array_equal(getattr(n_best, field).numpy()[:, 0], getattr(best, field).numpy())


def test_n_best_of_a_random_translator_are_distinct_and_sorted_by_score():
    translator = RandomTranslator(seed=3)
    source = np.random.default_rng(2).integers(4, 14, size=[4, 3])
    result = decoding.translate_ids(translator, source, beam_size=4, max_length=7, n_best=4)
    assert result.token_ids.shape == (4, 4, 7)
    for texts, scores in zip(rows(result), result.scores.numpy()):
        assert len(set(texts)) == 4, texts
        finished = ["." in text for text in texts]
        assert finished == sorted(finished, reverse=True)  # finished hypotheses first
        done = scores[np.array(finished)]
        assert (np.diff(done) <= 0).all(), scores


@pytest.mark.parametrize("beam_size, n_best", [(2, 3), (1, 2), (2, 0)])
def test_n_best_beyond_the_beam_size_is_refused(beam_size, n_best):
    with pytest.raises(ValueError, match=f"n_best={n_best}.*" if n_best else "n_best=0"):
        decoding.translate_ids(RandomTranslator(), [[5, 6]], beam_size=beam_size, max_length=4, n_best=n_best)
