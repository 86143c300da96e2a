"""Attention maths against NumPy, exact zeros on padding, configs and .keras round trips."""

import keras
import numpy as np
import pytest

from seq2seq.layers.attention import FeedForwardAttention, SourceAttention, masked_softmax


def np_masked_softmax(scores, mask):
    scores = np.where(mask, scores, -np.inf)
    top = np.max(np.where(mask, scores, -1e30), axis=-1, keepdims=True)
    exp = np.where(mask, np.exp(scores - top), 0.0)
    total = exp.sum(axis=-1, keepdims=True)
    return np.divide(exp, total, out=np.zeros_like(exp), where=total > 0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def source(rng):
    """memory [2, 5, 4] with source lengths 3 and 5."""
    memory = rng.normal(size=(2, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    return memory, mask


def test_masked_softmax_matches_numpy_and_zeroes_padding(rng):
    scores = rng.normal(size=(3, 6)).astype("float32") * 5
    mask = np.array([[1, 1, 0, 1, 0, 0], [1] * 6, [0] * 6], dtype=bool)
    weights = keras.ops.convert_to_numpy(masked_softmax(scores, mask))
    np.testing.assert_allclose(weights, np_masked_softmax(scores, mask), rtol=1e-5, atol=1e-7)
    assert np.all(weights[~mask] == 0.0)
    np.testing.assert_allclose(weights[:2].sum(axis=-1), 1.0, rtol=1e-6)
    assert np.all(weights[2] == 0.0)  # an all-padding row: zeros, not NaN


def test_luong_attention_matches_numpy(source, rng):
    memory, mask = source
    query = rng.normal(size=(2, 3, 6)).astype("float32")  # query depth != memory depth
    layer = SourceAttention(score="luong")
    context, weights = layer(query, memory, memory_mask=mask)
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    expected_weights = np_masked_softmax((query @ kernel) @ memory.transpose(0, 2, 1), mask[:, None, :])
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, expected_weights @ memory, rtol=1e-5, atol=1e-6)
    assert np.all(keras.ops.convert_to_numpy(weights)[0, :, 3:] == 0.0)


@pytest.mark.parametrize("use_projection", [True, False])
def test_scaled_luong_scores_are_divided_by_the_root_of_the_memory_depth(source, rng, use_projection):
    memory, mask = source  # memory depth 4: scores / 2
    query = rng.normal(size=(2, 3, 6 if use_projection else 4)).astype("float32")
    layer = SourceAttention(score="luong", use_projection=use_projection, scale_scores=True)
    context, weights = layer(query, memory, memory_mask=mask)
    projected = query @ keras.ops.convert_to_numpy(layer.kernel) if use_projection else query
    expected_weights = np_masked_softmax(projected @ memory.transpose(0, 2, 1) / 2.0, mask[:, None, :])
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, expected_weights @ memory, rtol=1e-5, atol=1e-6)
    unscaled = SourceAttention(score="luong", use_projection=use_projection)
    unscaled.build(query.shape, memory.shape)
    if use_projection:
        unscaled.kernel.assign(layer.kernel)
    assert not np.allclose(unscaled(query, memory, memory_mask=mask)[1], weights)


def test_plain_dot_attention_matches_numpy(source, rng):
    memory, mask = source
    query = rng.normal(size=(2, 3, 4)).astype("float32")
    context, weights = SourceAttention(use_projection=False)(query, memory, memory_mask=mask)
    expected_weights = np_masked_softmax(query @ memory.transpose(0, 2, 1), mask[:, None, :])
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, expected_weights @ memory, rtol=1e-5, atol=1e-6)


def test_bahdanau_attention_matches_numpy(source, rng):
    memory, mask = source
    query = rng.normal(size=(2, 3, 6)).astype("float32")
    layer = SourceAttention(score="bahdanau", units=7)
    context, weights = layer(query, memory, memory_mask=mask)
    w_q, w_m, bias, v = (keras.ops.convert_to_numpy(w) for w in (
        layer.query_kernel, layer.memory_kernel, layer.bias, layer.score_vector))
    assert w_q.shape == (6, 7) and w_m.shape == (4, 7)
    hidden = np.tanh((query @ w_q)[:, :, None, :] + (memory @ w_m + bias)[:, None, :, :])
    expected_weights = np_masked_softmax(hidden @ v, mask[:, None, :])
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, expected_weights @ memory, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("score", ["luong", "bahdanau"])
def test_one_step_query_equals_sequence_row(source, rng, score):
    memory, mask = source
    query = rng.normal(size=(2, 3, 6)).astype("float32")
    layer = SourceAttention(score=score)
    context, weights = layer(query, memory, memory_mask=mask)
    keys = layer.memory_keys(memory)
    step_context, step_weights = layer(query[:, 1], memory, memory_mask=mask, keys=keys)
    assert tuple(step_context.shape) == (2, 4) and tuple(step_weights.shape) == (2, 5)
    np.testing.assert_allclose(step_context, context[:, 1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(step_weights, weights[:, 1], rtol=1e-6, atol=1e-6)


def test_source_attention_rejects_bad_arguments():
    with pytest.raises(ValueError, match="score='dot'"):
        SourceAttention(score="dot")
    with pytest.raises(ValueError, match="units=0"):
        SourceAttention(score="bahdanau", units=0)
    with pytest.raises(ValueError, match="equal query and memory depths"):
        SourceAttention(use_projection=False)(np.zeros((1, 2, 3)), np.zeros((1, 4, 5)))


def test_source_attention_config_round_trip():
    layer = SourceAttention(score="bahdanau", units=5, use_projection=False, scale_scores=True, name="att")
    config = layer.get_config()
    assert {"score": "bahdanau", "units": 5, "use_projection": False, "scale_scores": True}.items() <= config.items()
    assert SourceAttention.from_config(config).get_config() == config


def test_feed_forward_attention_matches_numpy(rng):
    inputs = rng.normal(size=(3, 6, 4)).astype("float32")
    mask = np.array([[1] * 6, [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=bool)
    layer = FeedForwardAttention(return_attention=True)
    context, attention = layer(inputs, mask=mask)
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    bias = keras.ops.convert_to_numpy(layer.bias)
    expected = np_masked_softmax(np.tanh((inputs @ kernel)[..., 0] + bias), mask)
    np.testing.assert_allclose(attention, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(context, (expected[..., None] * inputs).sum(axis=1), rtol=1e-5, atol=1e-6)
    assert np.all(keras.ops.convert_to_numpy(attention)[~mask] == 0.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(attention).sum(axis=-1), 1.0, rtol=1e-6)


def test_feed_forward_attention_any_length_and_keras_mask(rng):
    layer = FeedForwardAttention(return_attention=True)
    embedding = keras.layers.Embedding(10, 4, mask_zero=True)
    for length in (3, 11):
        ids = rng.integers(1, 10, size=(2, length))
        ids[0, 2:] = 0
        context, attention = layer(embedding(ids))  # mask taken from the Embedding
        assert tuple(context.shape) == (2, 4) and tuple(attention.shape) == (2, length)
        assert np.all(keras.ops.convert_to_numpy(attention)[0, 2:] == 0.0)
    assert tuple(FeedForwardAttention()(np.ones((2, 5, 4), "float32")).shape) == (2, 4)


def test_feed_forward_attention_survives_keras_save_and_load(tmp_path, rng):
    """A functional model returning attention as a second output saves and loads."""
    ids = keras.Input((None,), dtype="int32")
    hidden = keras.layers.LSTM(8, return_sequences=True)(keras.layers.Embedding(30, 8, mask_zero=True)(ids))
    context, attention = FeedForwardAttention(return_attention=True)(hidden)
    model = keras.Model(ids, {"probabilities": keras.layers.Dense(3, activation="softmax")(context),
                              "attention": attention})
    assert FeedForwardAttention.from_config(model.layers[-2].get_config()).return_attention
    x = rng.integers(1, 30, size=(4, 7))
    x[1, 4:] = 0
    path = tmp_path / "pooling.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    before, after = model.predict_on_batch(x), loaded.predict_on_batch(x)
    for key in ("probabilities", "attention"):
        np.testing.assert_array_equal(before[key], after[key])
    assert np.all(after["attention"][1, 4:] == 0.0)
