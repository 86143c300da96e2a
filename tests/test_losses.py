"""seq2seq.losses: arguments, serialization, TensorFlow-only behaviour, the
class-weight helpers, and training models that are not the kit's.

The numeric cases (values against NumPy references, all-padding batches,
label smoothing, class weights, sparse and one-hot targets, matched and
unmatched start/end, sample_weight, Keras masks, gradients exactly zero at
ignored positions, `.keras` round trips) live in tests/loss_cases.py and run
on every installed Keras backend, TensorFlow included, through
tests/test_backends.py (one subprocess per backend).
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from loss_cases import END_PADDED, LOGITS, TARGETS, VOCAB, np_end_padding_weights

from seq2seq.losses import (
    BoundaryAwareLoss,
    MaskedSparseCrossentropy,
    end_padding_weights,
    end_token_class_weights,
    inverse_frequency_class_weights,
)
from seq2seq.tokens import END_ID, PAD_ID


# ---- arguments ----------------------------------------------------------------

@pytest.mark.parametrize("make, received", [
    (lambda: MaskedSparseCrossentropy(normalize="mean"), "normalize='mean'"),
    (lambda: MaskedSparseCrossentropy(label_smoothing=1.0), "label_smoothing=1.0"),
    (lambda: MaskedSparseCrossentropy(class_weights=[1.0, -2.0]), "-2.0"),
    (lambda: MaskedSparseCrossentropy(pad_id=0.5), "pad_id=0.5"),
    (lambda: BoundaryAwareLoss(base="mse"), "base='mse'"),
    (lambda: BoundaryAwareLoss(pad_id=END_ID), "'pad_id': 3"),
])
def test_bad_arguments_raise_naming_the_value(make, received):
    with pytest.raises(ValueError, match=received.replace("[", r"\[")):
        make()


def test_class_weights_must_match_the_vocabulary():
    with pytest.raises(ValueError, match="Received: length 3"):
        MaskedSparseCrossentropy(class_weights=[1.0, 1.0, 1.0])(TARGETS, LOGITS)


# ---- serialization ------------------------------------------------------------

@pytest.mark.parametrize("loss", [
    MaskedSparseCrossentropy(pad_id=-1, from_logits=False, label_smoothing=0.2,
                             class_weights=np.arange(1, VOCAB + 1, dtype="float32"),
                             normalize="weights", name="ce"),
    BoundaryAwareLoss(base="mae", start_id=1, end_id=2, pad_id=5, from_logits=False),
], ids=["ce", "boundary"])
def test_config_round_trip(loss):
    config = loss.get_config()
    assert json.loads(json.dumps(config)) == config  # class_weights is a plain list
    assert type(loss).from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss) and restored.get_config() == config


def tiny_gru(time=5):
    inputs = keras.Input((time,), dtype="int32")
    hidden = keras.layers.Embedding(VOCAB, 8, mask_zero=True)(inputs)
    hidden = keras.layers.GRU(8, return_sequences=True)(hidden)
    return keras.Model(inputs, keras.layers.Dense(VOCAB)(hidden))


def tiny_transformer_block(time=5):
    inputs = keras.Input((time,), dtype="int32")
    hidden = keras.layers.Embedding(VOCAB, 8, mask_zero=True)(inputs)
    attended = keras.layers.MultiHeadAttention(2, 4)(hidden, hidden, use_causal_mask=True)
    hidden = keras.layers.LayerNormalization()(hidden + attended)
    hidden = keras.layers.LayerNormalization()(hidden + keras.layers.Dense(8, "relu")(hidden))
    return keras.Model(inputs, keras.layers.Dense(VOCAB)(hidden))


# ---- reuse in models that are not the kit's -----------------------------------

def train_losses(model, loss, x, y, steps=12):
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    return [float(model.train_on_batch(x, y)) for _ in range(steps)]


@pytest.mark.parametrize("build, loss", [
    (tiny_gru, MaskedSparseCrossentropy()),
    (tiny_transformer_block, BoundaryAwareLoss()),
    (tiny_gru, BoundaryAwareLoss(base="mae")),
], ids=["gru-ce", "transformer-boundary", "gru-boundary-mae"])
def test_loss_trains_a_model_that_is_not_the_kits(build, loss):
    keras.utils.set_random_seed(0)
    history = train_losses(build(), loss, TARGETS, TARGETS)
    assert history[-1] < 0.7 * history[0]


def test_keras_class_weight_fails_on_sequences_where_kit_class_weights_train():
    keras.utils.set_random_seed(0)
    x = np.tile(TARGETS, (4, 1))[:8]  # 8 sequences of time 5; full batches of 4
    model = tiny_gru()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # Keras turns class_weight into one weight per *sequence* ([batch]) and
    # multiplies it into the [batch, time] losses. With static shapes this is
    # a ValueError at trace time ("Dimensions must be equal, but are 5 and 4");
    # with a partial last batch it is a tf.errors.InvalidArgumentError instead.
    with pytest.raises(ValueError, match="Dimensions must be equal"):
        model.fit(x, x, class_weight={END_ID: 0.1}, batch_size=4, epochs=1, verbose=0)

    weights = end_token_class_weights(x, VOCAB)
    history = train_losses(tiny_gru(), MaskedSparseCrossentropy(class_weights=weights), x, x)
    assert weights[END_ID] < 1.0 and np.isfinite(history).all()
    assert history[-1] < 0.7 * history[0]


# ---- class-weight helpers -----------------------------------------------------

def test_end_token_class_weights_follow_the_recipe():
    ragged = [[4, 5, END_ID], [4, END_ID, PAD_ID, PAD_ID], [6, END_ID]]
    weights = end_token_class_weights(ragged, VOCAB)
    # counts: 4 -> 2, 5 -> 1, 6 -> 1, end -> 3; mean of the others = 4 / 3.
    expected = np.ones(VOCAB, "float32")
    expected[END_ID] = (4 / 3) / 3
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert weights.dtype == np.float32
    np.testing.assert_allclose(end_token_class_weights(TARGETS, VOCAB),
                               end_token_class_weights(list(TARGETS), VOCAB))


def test_end_token_class_weights_reject_bad_targets():
    with pytest.raises(ValueError, match="end_id=3 occurs 0 times"):
        end_token_class_weights([[4, 5, PAD_ID]], VOCAB)
    with pytest.raises(ValueError, match="Received: id 9"):
        end_token_class_weights([[4, 9, END_ID]], VOCAB)
    with pytest.raises(ValueError, match="end_id=0"):
        end_token_class_weights([[4, END_ID]], VOCAB, end_id=PAD_ID)


def test_end_padding_weights_in_tf_function_and_bad_arguments():
    """Values on every backend: loss_cases.case_end_padding_weights_*."""
    graph = tf.function(lambda ids: end_padding_weights(ids, 0.1))  # as in tf.data.Dataset.map
    np.testing.assert_allclose(graph(tf.constant(END_PADDED)).numpy(),
                               np_end_padding_weights(END_PADDED, 0.1))
    with pytest.raises(ValueError, match="end_weight=-1"):
        end_padding_weights(END_PADDED, -1)
    with pytest.raises(ValueError, match=r"shape=\(5,\)"):
        end_padding_weights(END_PADDED[0], 0.1)


def test_inverse_frequency_class_weights():
    targets = [[4, 4, 4, 5, END_ID, PAD_ID, PAD_ID]]
    counts = np.array([0, 0, 0, 1, 3, 1, 0], float)  # pad excluded
    mean_count = 5 / 3
    weights = inverse_frequency_class_weights(targets, VOCAB, smoothing=1.0, max_weight=2.0)
    expected = np.minimum((mean_count + 1) / (counts + 1), 2.0)
    expected[PAD_ID] = 1.0
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    unsmoothed = inverse_frequency_class_weights(targets, VOCAB, smoothing=0.0, max_weight=100.0)
    seen = np.array([4, 4, 4, 5, END_ID])
    np.testing.assert_allclose(unsmoothed[seen].mean(), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="smoothing=-1"):
        inverse_frequency_class_weights(targets, VOCAB, smoothing=-1)
