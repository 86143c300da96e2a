"""Decoding loops driven by scripted step functions, no model (the scripted decoders: tests/decoding_cases.py).

A decoded row reads as a string with "." for the end token and "_" for padding.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from seq2seq import decoding

from decoding_cases import (
    ABC, CHARS, EARLY_END, FOREVER, SHORT_OR_LONG, SRC_TIME, TRAP, VOCAB, RandomTranslator, TreeModel, as_strings,
    tree,
)


def test_greedy_takes_the_most_likely_token_and_pads_after_the_end():
    result = TreeModel(ABC, max_length=6).greedy()
    assert as_strings(result.token_ids) == ["abc.__"]
    assert result.lengths.numpy().tolist() == [4]
    expected = math.log(0.6) + math.log(0.7) + math.log(0.9)
    np.testing.assert_allclose(result.log_probs, [expected], atol=1e-5)
    np.testing.assert_allclose(result.scores, result.log_probs)


def test_each_row_stops_at_its_own_end_token_while_others_continue():
    short = tree({"": {"a": 1.0}})
    result = TreeModel(short, ABC, max_length=6).greedy()
    assert as_strings(result.token_ids) == ["a.____", "abc.__"]
    assert result.lengths.numpy().tolist() == [2, 4]


def test_min_length_forbids_an_early_end_token():
    eager_to_end = tree({"": {".": 0.9, "a": 0.1}, "a": {".": 0.9, "b": 0.1}})
    model = TreeModel(eager_to_end, max_length=5)
    assert as_strings(model.greedy().token_ids) == [".____"]
    assert as_strings(model.greedy(min_length=2).token_ids) == ["ab.__"]
    assert as_strings(model.beam(3, min_length=2).token_ids) == ["ab.__"]


def test_max_length_cuts_a_hypothesis_that_never_ends():
    model = TreeModel(FOREVER, max_length=4)
    for result in (model.greedy(), model.beam(2)):
        assert as_strings(result.token_ids) == ["aaaa"]
        assert result.lengths.numpy().tolist() == [4]


def test_beam_search_finds_the_sequence_greedy_misses():
    model = TreeModel(TRAP, max_length=4)
    assert as_strings(model.greedy().token_ids) == ["ac._"]
    result = model.beam(2)
    assert as_strings(result.token_ids) == ["bc._"]
    np.testing.assert_allclose(result.log_probs, [math.log(0.4 * 0.95)], atol=1e-5)


def test_length_penalty_changes_the_winner():
    model = TreeModel(SHORT_OR_LONG, max_length=7)
    plain = model.beam(2, length_penalty=0.0)
    assert as_strings(plain.token_ids) == [".______"]
    penalised = model.beam(2, length_penalty=1.0)
    assert as_strings(penalised.token_ids) == ["abcde._"]
    log_prob = math.log(0.45)
    np.testing.assert_allclose(penalised.log_probs, [log_prob], atol=1e-5)
    np.testing.assert_allclose(penalised.scores, [log_prob / ((5 + 6) / 6)], atol=1e-5)


def test_a_finished_hypothesis_is_kept_when_alive_beams_outscore_it():
    result = TreeModel(EARLY_END, max_length=5).beam(2)
    assert as_strings(result.token_ids) == [".____"]
    np.testing.assert_allclose(result.log_probs, [math.log(0.3)], atol=1e-5)


def test_batched_rows_are_decoded_independently():
    together = TreeModel(TRAP, EARLY_END, ABC, max_length=5).beam(2)
    alone = [
        as_strings(TreeModel(t, max_length=5).beam(2).token_ids)[0] for t in (TRAP, EARLY_END, ABC)
    ]
    assert as_strings(together.token_ids) == alone == ["bc.__", ".____", "b.___"]


def test_attention_follows_the_chosen_hypothesis():
    # "bc." was fed start, b, c: attention on source positions 3, 1, 2.
    result = TreeModel(TRAP, max_length=5).beam(2)
    attention = result.attention.numpy()[0]
    assert attention.shape == (5, SRC_TIME)
    assert attention[:3].argmax(axis=-1).tolist() == [3, 1, 2]
    assert not attention[3:].any()


def test_beam_search_of_width_one_is_greedy():
    translator = RandomTranslator()
    source = tf.constant(np.random.default_rng(1).integers(4, VOCAB, size=[5, 3]), tf.int32)

    @tf.function
    def both(source):
        state = translator.encode(source)
        args = (translator.decode_step, state, tf.shape(source)[0])
        greedy = decoding.greedy_decode(*args, max_length=9, min_length=1)
        beam = decoding.beam_search_decode(*args, beam_size=1, max_length=9, min_length=1)
        return greedy, beam

    greedy, beam = both(source)
    assert as_strings(greedy.token_ids) == as_strings(beam.token_ids)
    assert len(set(as_strings(greedy.token_ids))) > 1  # the rows really differ
    np.testing.assert_array_equal(greedy.lengths, beam.lengths)
    np.testing.assert_allclose(greedy.log_probs, beam.log_probs, atol=1e-5)
    np.testing.assert_allclose(greedy.attention, beam.attention, atol=1e-6)


def test_translate_ids_traces_once_across_batch_sizes_and_source_lengths():
    translator = RandomTranslator(seed=2)
    rng = np.random.default_rng(3)
    for shape in ([2, 3], [5, 7]):
        source_ids = rng.integers(4, VOCAB, size=shape)
        result = decoding.translate_ids(translator, source_ids, beam_size=3, max_length=6)
        assert result.token_ids.shape == (shape[0], 6)
        assert result.attention.shape == (shape[0], 6, shape[1])
        for row, length in zip(as_strings(result.token_ids), result.lengths.numpy()):
            # at most one end token, last in the hypothesis; padding after it
            assert row[:length].count(".") == int(row[length - 1] == ".")
            assert row[length:] == "_" * (6 - length)
    assert translator.traces == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(beam_size=0, max_length=5), "beam_size=0"),
        (dict(beam_size=2, max_length=0), "max_length=0"),
        (dict(beam_size=2, max_length=5, min_length=5), "min_length=5"),
        (dict(beam_size=2, max_length=5, length_penalty=-1.0), "length_penalty=-1.0"),
    ],
)
def test_bad_arguments_name_the_value_received(kwargs, message):
    model = TreeModel(ABC)
    with pytest.raises(ValueError, match=message):
        decoding.beam_search_decode(model.step, model.initial_state(), 1, **kwargs)


class CountingTree(TreeModel):
    """A TreeModel that counts its steps."""

    steps = 0

    def step(self, token_ids, state):
        self.steps += 1
        return super().step(token_ids, state)


# "a." finishes at step 1 with 0.9; every other path is below 0.1 at once and
# keeps going ("b", "bb", ...): only a fourth finished hypothesis ends fairseq's rule.
SETTLES_EARLY = tree({"": {"a": 0.9, "b": 0.1}, "a": {".": 0.9, "a": 0.1},
                      **{"b" * n: {"b": 1.0} for n in range(1, 12)},
                      **{"a" + "a" * n: {"a": 1.0} for n in range(1, 12)}})


@pytest.mark.parametrize("length_penalty", [0.0, 0.6])
def test_a_row_stops_once_no_alive_hypothesis_can_beat_its_best_finished_one(length_penalty):
    model = CountingTree(SETTLES_EARLY, max_length=10)
    result = model.beam(4, length_penalty=length_penalty)
    assert as_strings(result.token_ids) == ["a._________"[:10]]
    best_alive_bound = math.log(0.9 * 0.1) / ((5 + 10) / 6) ** length_penalty
    finished = math.log(0.9 * 0.9) / ((5 + 2) / 6) ** length_penalty
    assert finished >= best_alive_bound  # so the row is settled at the step that finishes "a."
    assert model.steps == 2  # not max_length: no other hypothesis ever finishes


@pytest.mark.parametrize("vocab, width, n", [(14, 1, 1), (14, 3, 6), (2000, 4, 8), (97, 2, 4), (4, 2, 3)])
def test_top_candidates_equals_one_top_k_over_every_sum(vocab, width, n):
    rng = np.random.default_rng(vocab + width)
    # Few distinct values, so that ties across slots and chunks are common.
    logits = rng.integers(-3, 3, size=[3, width, vocab]).astype(np.float32)
    logits[0, :, 7 % vocab] = 10.0  # one row's best entries all in one chunk
    shift = rng.integers(-1, 1, size=[3, width]).astype(np.float32)
    span = min(vocab, decoding.END_ID + 1)
    bias = decoding.forbidden_token_bias(span, end_allowed=bool(vocab % 2)).numpy()
    values, slots, tokens = decoding.top_candidates(tf.constant(logits), tf.constant(shift), tf.constant(bias), n)
    total = (shift[:, :, None] + logits + np.pad(bias, [0, vocab - span])).reshape(3, -1)
    best = np.argsort(-total, axis=1, kind="stable")[:, :n]  # ties: lower (slot, token) index first
    np.testing.assert_array_equal(slots, best // vocab)
    np.testing.assert_array_equal(tokens, best % vocab)
    np.testing.assert_array_equal(values, np.take_along_axis(total, best, axis=1))


@pytest.mark.parametrize("vocab", [4, 14, 97, 2000, 8000])
def test_chunks_cover_the_vocabulary_and_hold_the_special_tokens_in_the_first(vocab):
    size = decoding._chunk_size(vocab)
    assert vocab % size == 0 and size > decoding.END_ID
    assert size >= vocab ** 0.5


class RowCountingTree(TreeModel):
    """A TreeModel that records how many hypotheses each step is given."""

    def __init__(self, *trees, **kwargs):
        super().__init__(*trees, **kwargs)
        self.rows = []

    def step(self, token_ids, state):
        self.rows.append(int(token_ids.shape[0]))
        return super().step(token_ids, state)


@pytest.mark.parametrize("beam_size", [1, 2])
def test_rows_that_are_done_leave_the_model_call(beam_size, monkeypatch):
    monkeypatch.setattr(decoding, "ROW_BUCKET", 1)
    # ABC's row is done by step 3 at the latest; FOREVER's runs to max_length.
    model = RowCountingTree(ABC, FOREVER, ABC, max_length=6)
    result = model.greedy() if beam_size == 1 else model.beam(beam_size)
    assert as_strings(result.token_ids)[1] == "aaaaaa"
    assert model.rows[0] == 3 * beam_size and model.rows[-1] == beam_size
    assert model.rows == sorted(model.rows, reverse=True)


@pytest.mark.parametrize("beam_size", [1, 2])
def test_done_rows_fill_the_model_call_to_whole_row_buckets_without_changing_any_result(beam_size, monkeypatch):
    # Five rows: the two ABC ones end after 4 steps, the three FOREVER ones run to max_length.
    trees = (ABC, FOREVER, ABC, FOREVER, FOREVER)
    results = {}
    for bucket in (1, 2):
        monkeypatch.setattr(decoding, "ROW_BUCKET", bucket)
        model = RowCountingTree(*trees, max_length=6)
        results[bucket] = model.greedy() if beam_size == 1 else model.beam(beam_size)
        calls = model.rows
    # Live rows go 5 -> 3: with buckets of 2 rows, 5 (all there are) and then 4 rows are called.
    assert calls[0] == 5 * beam_size and calls[-1] == 4 * beam_size
    assert set(calls) == {5 * beam_size, 4 * beam_size}
    for field in decoding.DecodeResult._fields:
        np.testing.assert_array_equal(getattr(results[1], field), getattr(results[2], field))


def test_the_vocabulary_size_stays_static_under_a_dynamic_batch(monkeypatch):
    # A [None, vocab] shape lets top_candidates cut the vocabulary into chunks; an unknown
    # vocab falls back to one top_k over width x vocab (~25x an argmax on a CPU).
    seen = []
    real = decoding.top_candidates
    monkeypatch.setattr(decoding, "top_candidates", lambda logits, *a: seen.append(logits.shape[-1]) or real(logits, *a))
    source_ids = np.random.default_rng(4).integers(4, VOCAB, size=[2, 3])
    for beam_size in (1, 2):
        decoding.translate_ids(RandomTranslator(seed=5), source_ids, beam_size=beam_size, max_length=4)
    assert seen == [VOCAB, VOCAB]


# --------------------------------------------------------------------------- placeholders
# h, i, j (ids 11-13) stand for the reserved placeholder tokens ｟0｠, ｟1｠, ｟2｠.
RESERVED = tuple(CHARS.index(c) for c in "hij")


def required(*rows):
    """[batch, 3] bool: which of h, i, j each row's source holds."""
    return tf.constant([[c in row for c in "hij"] for row in rows])


# Would end at once; placeholders are unlikely everywhere.
EAGER = lambda prefix: {".": 0.5, "a": 0.3, "h": 0.1, "i": 0.06, "j": 0.04}  # noqa: E731
# Would repeat "h" for ever.
LIKES_H = lambda prefix: {"h": 0.6, ".": 0.3, "a": 0.1}  # noqa: E731


def test_the_end_token_waits_for_the_sources_placeholders_and_the_rest_are_forced_at_the_end():
    model = TreeModel(EAGER, max_length=6)
    assert as_strings(model.greedy().token_ids) == ["._____"]
    # h and j owed: "a" is likelier than either until only room for h, j and the end is left.
    constrained = model.greedy(reserved_ids=RESERVED, required=required("hj"))
    assert as_strings(constrained.token_ids) == ["aaahj."]
    np.testing.assert_allclose(constrained.log_probs, [math.log(0.3**3 * 0.1 * 0.04 * 0.5)], atol=1e-5)
    assert as_strings(model.beam(2, reserved_ids=RESERVED, required=required("hj")).token_ids) == ["aaahj."]


def test_each_placeholder_once_and_none_the_source_lacks():
    model = TreeModel(LIKES_H, LIKES_H, max_length=5)
    assert as_strings(model.greedy().token_ids) == ["hhhhh", "hhhhh"]
    for result in (model.greedy(reserved_ids=RESERVED, required=required("h", "")),
                   model.beam(2, reserved_ids=RESERVED, required=required("h", ""))):
        assert as_strings(result.token_ids) == ["h.___", ".____"]
    # Without `required`, the reserved tokens are only forbidden.
    assert as_strings(model.greedy(reserved_ids=RESERVED).token_ids) == [".____", ".____"]


def test_without_room_for_every_placeholder_the_end_token_is_allowed():
    model = TreeModel(EAGER, max_length=3)
    assert as_strings(model.greedy(reserved_ids=RESERVED, required=required("hij")).token_ids) == [".__"]
    # One more position: room for h, i, j and the end, so nothing else may come.
    model = TreeModel(EAGER, max_length=4)
    assert as_strings(model.greedy(reserved_ids=RESERVED, required=required("hij")).token_ids) == ["hij."]


# "hc" (0.27) overtakes "ac" (0.25) at step 1: the beams swap slots, and their emitted
# placeholders must follow them ("hc." may end, "ac" still owes h).
SWAP = tree({"": {"a": 0.5, "h": 0.3, "b": 0.2}, "a": {"h": 0.5, "c": 0.5}, "h": {"c": 0.9, ".": 0.1},
             "hc": {".": 0.9, "h": 0.1}, "ac": {".": 0.8, "h": 0.2}, "ach": {".": 1.0}})


def test_beam_search_reorders_the_emitted_placeholders_with_its_beams():
    result = TreeModel(SWAP, max_length=5).beam(2, reserved_ids=RESERVED, required=required("h"))
    assert as_strings(result.token_ids) == ["hc.__"]
    np.testing.assert_allclose(result.log_probs, [math.log(0.3 * 0.9 * 0.9)], atol=1e-5)


def test_encode_and_decode_keeps_each_sources_placeholders_whatever_its_batch():
    translator = RandomTranslator(seed=12)  # unconstrained, it writes h, i, j where it likes
    rng = np.random.default_rng(7)
    source = rng.integers(4, 11, size=[6, 5])
    source[1, 2], source[3, [0, 4]], source[4, 1] = RESERVED[0], RESERVED[1:], RESERVED[2]
    options = dict(beam_size=3, max_length=8, reserved_ids=RESERVED)
    together = as_strings(decoding.translate_ids(translator, source, **options).token_ids)
    for row, text in enumerate(together):
        held = {CHARS[i] for i in source[row] if i in RESERVED}
        assert sorted(c for c in text if c in "hij") == sorted(held), (row, text)
    assert sum("." in text for text in together) >= 3
    # Alone, row 0 (no placeholder) runs without the constraint, and decodes as in the batch.
    assert as_strings(decoding.translate_ids(translator, source[:1], **options).token_ids) == together[:1]
    # In one graph, a tf.cond picks the constraint per batch: the same outputs.
    in_graph = tf.function(lambda ids: decoding.encode_and_decode(translator, ids, **options),
                           input_signature=[tf.TensorSpec([None, None], tf.int32)])
    assert as_strings(in_graph(tf.constant(source, tf.int32)).token_ids) == together
    assert as_strings(in_graph(tf.constant(source[:1], tf.int32)).token_ids) == together[:1]
    plain = as_strings(decoding.translate_ids(translator, source, beam_size=3, max_length=8).token_ids)
    assert any(c in "hij" for c in plain[0] + plain[2] + plain[5])  # rows without placeholders


def test_top_candidates_with_a_bias_per_slot_and_a_tail():
    rng = np.random.default_rng(8)
    batch, width, vocab, span, n = 3, 2, 2000, 20, 4
    logits = rng.integers(-3, 3, size=[batch, width, vocab]).astype(np.float32)
    shift = rng.integers(-1, 1, size=[batch, width]).astype(np.float32)
    bias = np.where(rng.random([batch, width, span]) < 0.5, -1e9, 0.0).astype(np.float32)
    tail = np.array([[0.0, -1e9], [0.0, 0.0], [-1e9, -1e9]], np.float32)
    values, slots, tokens = decoding.top_candidates(
        tf.constant(logits), tf.constant(shift), tf.constant(bias), n, tf.constant(tail))
    full = np.concatenate([bias, np.repeat(tail[:, :, None], vocab - span, axis=-1)], axis=-1)
    total = (shift[:, :, None] + logits + full).reshape(batch, -1)
    best = np.argsort(-total, axis=1, kind="stable")[:, :n]
    np.testing.assert_array_equal(slots, best // vocab)
    np.testing.assert_array_equal(tokens, best % vocab)
    np.testing.assert_array_equal(values, np.take_along_axis(total, best, axis=1))


# The likely path "aaa." (0.81) is still alive when the weak second slot has ended twice
# ("b." 0.1 at step 2, "ac." 0.045 at step 3): two finished hypotheses must not end the row.
WEAK_SLOTS_END_EARLY = tree({"": {"a": 0.9, "b": 0.1}, "a": {"a": 0.95, "c": 0.05}, "aa": {"a": 0.95, "c": 0.05}})


@pytest.mark.parametrize("length_penalty", [0.0, 0.6])
def test_a_row_goes_on_while_an_alive_hypothesis_outscores_its_finished_ones(length_penalty):
    model = TreeModel(WEAK_SLOTS_END_EARLY, max_length=6)
    assert as_strings(model.greedy().token_ids) == ["aaa.__"]
    result = model.beam(2, length_penalty=length_penalty)
    assert as_strings(result.token_ids) == ["aaa.__"]
    np.testing.assert_allclose(result.log_probs, [math.log(0.9 * 0.95 * 0.95)], atol=1e-5)
