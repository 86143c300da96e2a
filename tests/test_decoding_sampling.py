"""Sampling decoding (`SamplingSearch`): temperature, top-k, top-p and seeds.

A scripted step function draws its first token from fixed probabilities
(a 0.5, b 0.3, c 0.2) and then ends; thousands of rows give frequencies to
compare with the distribution each option should draw from, computed with NumPy.
"""

import numpy as np
import pytest
import tensorflow as tf

from seq2seq import decoding
from decoding_cases import CHARS, VOCAB, RandomTranslator, as_strings

FIRST = {"a": 0.5, "b": 0.3, "c": 0.2}
ROWS = 4000


def first_then_end(token_ids, state):
    """Step 0: FIRST; every later step: the end token. Attention: uniform."""
    probabilities = np.full([2, VOCAB], 1e-30, np.float32)
    for char, p in FIRST.items():
        probabilities[0, CHARS.index(char)] = p
    probabilities[1, CHARS.index(".")] = 1.0
    logits = tf.gather(tf.math.log(probabilities), tf.minimum(state["t"], 1))
    batch = tf.shape(token_ids)[0]
    return logits, {"t": state["t"] + 1}, tf.fill([batch, 3], 1 / 3)


def sample(rows=ROWS, **options):
    search = decoding.SamplingSearch(**options)
    return search(first_then_end, {"t": tf.zeros([rows], tf.int32)}, rows, max_length=3)


def frequencies(result):
    firsts = [text[0] for text in as_strings(result.token_ids)]
    return np.array([firsts.count(char) / len(firsts) for char in FIRST])


def expected(temperature=1.0, top_k=0, top_p=1.0):
    """NumPy: p ** (1 / T), renormalised, cut to the top k, then to the nucleus of top_p."""
    p = np.array(list(FIRST.values())) ** (1 / temperature)
    p /= p.sum()
    keep = np.ones(len(p), bool)
    if top_k:
        keep[np.argsort(-p)[top_k:]] = False
    p = np.where(keep, p, 0) / np.where(keep, p, 0).sum()
    order = np.argsort(-p)
    above = np.concatenate([[0], np.cumsum(p[order])[:-1]])
    keep = np.zeros(len(p), bool)
    keep[order[above < top_p]] = True
    return np.where(keep, p, 0) / np.where(keep, p, 0).sum()


@pytest.mark.parametrize("options", [{}, {"temperature": 2.0}, {"temperature": 0.5}, {"top_k": 2},
                                     {"top_p": 0.7}, {"top_p": 0.5}, {"top_k": 2, "temperature": 3.0}])
def test_samples_follow_the_distribution_the_options_define(options):
    result = sample(seed=(1, 0), **options)
    np.testing.assert_allclose(frequencies(result), expected(**options), atol=0.03)
    assert set(as_strings(result.token_ids)) <= {"a._", "b._", "c._"}


def test_log_probs_are_the_models_own_whatever_the_temperature():
    result = sample(rows=50, temperature=2.0, seed=(2, 0))
    firsts = [text[0] for text in as_strings(result.token_ids)]
    np.testing.assert_allclose(result.log_probs, [np.log(FIRST[c]) for c in firsts], atol=1e-5)
    np.testing.assert_allclose(result.scores, result.log_probs)


def test_the_same_seed_gives_the_same_samples_and_another_seed_others():
    translator = RandomTranslator(seed=4)
    source = np.random.default_rng(5).integers(4, VOCAB, size=[8, 4])
    options = dict(beam_size=1, max_length=8, sampling=decoding.Sampling(temperature=2.0, seed=7))
    first = as_strings(decoding.translate_ids(translator, source, **options).token_ids)
    again = as_strings(decoding.translate_ids(translator, source, **options).token_ids)
    other = as_strings(decoding.translate_ids(translator, source, **{**options, "sampling": decoding.Sampling(
        temperature=2.0, seed=8)}).token_ids)
    stream = as_strings(decoding.translate_ids(translator, source, sample_stream=1, **options).token_ids)
    assert first == again
    assert first != other and first != stream
    assert translator.traces == 1  # the seed is an input of the graph, not a retrace


def test_top_k_1_is_greedy_decoding():
    translator = RandomTranslator(seed=6)
    source = np.random.default_rng(7).integers(4, VOCAB, size=[6, 3])
    greedy = decoding.translate_ids(translator, source, beam_size=1, max_length=9)
    sampled = decoding.translate_ids(translator, source, beam_size=1, max_length=9,
                                     sampling=decoding.Sampling(top_k=1, temperature=3.0, seed=3))
    assert as_strings(sampled.token_ids) == as_strings(greedy.token_ids)
    assert len(set(as_strings(greedy.token_ids))) > 1
    np.testing.assert_array_equal(sampled.lengths, greedy.lengths)
    np.testing.assert_allclose(sampled.log_probs, greedy.log_probs, atol=1e-5)


def test_forbidden_tokens_are_never_drawn():
    # At temperature 50 every token is about as likely as any other; min_length 2 forbids the end
    # token at steps 0 and 1, and padding and the start token are never emitted.
    result = decoding.SamplingSearch(temperature=50.0, seed=(0, 0))(
        first_then_end, {"t": tf.zeros([200], tf.int32)}, 200, max_length=4, min_length=2)
    texts = as_strings(result.token_ids)
    assert len({text[0] for text in texts}) >= 8  # the draws do spread over the vocabulary
    assert not any("." in text[:2] or "_" in text[:3] or "^" in text for text in texts)


@pytest.mark.parametrize("options, message", [
    (dict(temperature=0.0), "temperature=0.0"), (dict(top_k=-1), "top_k=-1"), (dict(top_p=0.0), "top_p=0.0"),
    (dict(top_p=1.5), "top_p=1.5")])
def test_bad_sampling_options_name_the_value_received(options, message):
    with pytest.raises(ValueError, match=message):
        decoding.SamplingSearch(**options)


def test_sampling_with_a_beam_is_refused():
    with pytest.raises(ValueError, match="beam_size=2"):
        decoding.translate_ids(RandomTranslator(), [[5, 6]], beam_size=2, max_length=4,
                               sampling=decoding.Sampling())


def test_a_temperature_given_as_a_tensor_samples_above_0_and_is_greedy_at_0():
    # An exported model's call-time temperature: one graph, greedy or sampling per call.
    translator = RandomTranslator(seed=6)
    source = tf.constant(np.random.default_rng(7).integers(4, VOCAB, size=[6, 3]), tf.int32)
    decode = tf.function(lambda ids, temperature: decoding.encode_and_decode(
        translator, ids, max_length=9, sampling=decoding.Sampling(temperature=temperature), seed=tf.constant([1, 0])))
    greedy = decoding.translate_ids(translator, source, beam_size=1, max_length=9)
    sampled = decoding.translate_ids(translator, source, beam_size=1, max_length=9,
                                     sampling=decoding.Sampling(temperature=2.0, seed=1))
    assert as_strings(decode(source, tf.constant(0.0)).token_ids) == as_strings(greedy.token_ids)
    assert as_strings(decode(source, tf.constant(2.0)).token_ids) == as_strings(sampled.token_ids)
    assert as_strings(sampled.token_ids) != as_strings(greedy.token_ids)
