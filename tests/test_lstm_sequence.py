"""The LSTM sequence op: Keras' LSTM numbers and gradients from one op with a hand-written gradient."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.layers.encoder import LSTMEncoder, resolve_fused_sequence
from seq2seq.layers.lstm_sequence import lstm_sequence, run_lstm_layer
from seq2seq.models.classifier import Classifier
from seq2seq.models.translator import Translator

BATCH, TIME, FEATURES, UNITS = 3, 5, 4, 6


def numpy_lstm(x, h, c, kernel, recurrent_kernel, bias):
    """x [time, batch, features] -> (h, c) [time, batch, units]; gates i, f, c, o as Keras orders them."""
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    hs, cs = [], []
    for x_t in x:
        i, f, g, o = np.split(x_t @ kernel + h @ recurrent_kernel + bias, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return np.stack(hs), np.stack(cs)


def built_lstm(seed=0, go_backwards=False):
    keras.utils.set_random_seed(seed)
    lstm = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True, go_backwards=go_backwards)
    lstm.build((None, None, FEATURES))
    lstm.cell.bias.assign(np.random.default_rng(seed).normal(size=4 * UNITS).astype("float32"))
    return lstm


def test_forward_equals_a_numpy_lstm():
    rng = np.random.default_rng(0)
    x, h0, c0 = (rng.normal(size=shape).astype("float32")
                 for shape in ((TIME, BATCH, FEATURES), (BATCH, UNITS), (BATCH, UNITS)))
    cell = built_lstm().cell
    weights = [w.numpy() for w in (cell.kernel, cell.recurrent_kernel, cell.bias)]
    hs, cs = lstm_sequence(x, h0, c0, *weights)
    expected_h, expected_c = numpy_lstm(x, h0, c0, *weights)
    np.testing.assert_allclose(hs, expected_h, atol=1e-5)
    np.testing.assert_allclose(cs, expected_c, atol=1e-5)


def test_gradients_equal_those_tensorflow_derives_through_keras_loop():
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(BATCH, TIME, FEATURES)), tf.float32)
    h0, c0 = (tf.constant(rng.normal(size=(BATCH, UNITS)), tf.float32) for _ in range(2))
    weight_h = tf.constant(rng.normal(size=(BATCH, TIME, UNITS)), tf.float32)  # a loss reading every output
    lstm = built_lstm()

    def gradients(fused):
        with tf.GradientTape() as tape:
            tape.watch([x, h0, c0])
            if fused:
                outputs, h, c = run_lstm_layer(lstm, x, initial_state=[h0, c0])
            else:
                outputs, h, c = lstm(x, initial_state=[h0, c0])
            loss = tf.reduce_sum(outputs * weight_h) + tf.reduce_sum(h * c)
        return [loss, *tape.gradient(loss, [x, h0, c0, *lstm.trainable_variables])]

    for ours, keras_ones in zip(gradients(True), gradients(False)):
        np.testing.assert_allclose(ours, keras_ones, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_masked_encoder_matches_keras_everywhere(bidirectional):
    """Right-padded rows of lengths 5, 2 and 0: outputs at real steps, final states and gradients.

    At padded steps ours are zero; Keras' unidirectional layer repeats the
    last real output there (nothing downstream reads them: masks drop them).
    """
    rng = np.random.default_rng(2)
    inputs = tf.constant(rng.normal(size=(BATCH, TIME, FEATURES)), tf.float32)
    mask = tf.sequence_mask([5, 2, 0], TIME)
    keras.utils.set_random_seed(3)
    encoder = LSTMEncoder(UNITS, num_layers=2, bidirectional=bidirectional)
    encoder.build((None, None, FEATURES))

    def run(fused):
        encoder.fused_sequence = fused
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs, states = encoder(inputs, mask=mask)
            outputs = outputs * tf.cast(mask, tf.float32)[:, :, None]
            loss = tf.reduce_sum(outputs * outputs) + sum(tf.reduce_sum(h - c * c) for h, c in states)
        return [outputs, *tf.nest.flatten(states), *tape.gradient(loss, [inputs, *encoder.trainable_variables])]

    for ours, keras_ones in zip(run(True), run(False)):
        np.testing.assert_allclose(ours, keras_ones, rtol=1e-4, atol=1e-5)


def test_the_fused_path_is_chosen_only_where_training_differentiates_once():
    assert resolve_fused_sequence("auto", needs_second_derivative=False) is True  # CPU test machine
    assert resolve_fused_sequence(False, needs_second_derivative=False) is True
    assert resolve_fused_sequence(False, needs_second_derivative=True) is False
    assert resolve_fused_sequence(True, needs_second_derivative=False) is False
    assert Translator(20, embed_dim=4, units=4).fused_sequence is True
    penalised = Translator(20, embed_dim=4, units=4, saliency_weight=1.0)
    assert penalised.fused_sequence is False and penalised.encoder.fused_sequence is False
    assert Classifier(20, 2, embed_dim=4, units=4, saliency_weight=1.0).encoder.fused_sequence is False
    assert Classifier(20, 2, embed_dim=4, units=4, saliency_weight=0.0).encoder.fused_sequence is True
