"""Numeric cases of seq2seq.losses that must hold on every Keras backend.

Each `case_*` function takes no argument and raises on failure. Nothing here
imports TensorFlow, JAX or PyTorch at module level: `run_backend_cases.py`
runs every case in one subprocess per backend (`KERAS_BACKEND` is read when
Keras is imported), and tests/test_backends.py reports each case as a test.
The NumPy references are shared with tests/test_losses.py.
"""

import tempfile
from pathlib import Path

import keras
import numpy as np
from keras import ops

from seq2seq.losses import (
    BoundaryAwareLoss,
    MaskedSparseCrossentropy,
    end_padding_weights,
    end_token_class_weights,
)
from seq2seq.tokens import END_ID, PAD_ID, START_ID

VOCAB = 7
TARGETS = np.array([
    [4, 5, END_ID, PAD_ID, PAD_ID],
    [START_ID, 6, 4, 5, END_ID],
    [6, END_ID, PAD_ID, PAD_ID, PAD_ID],
])  # [batch=3, time=5]
LOGITS = np.random.default_rng(0).normal(size=(3, 5, VOCAB)).astype("float32")
REAL = TARGETS != PAD_ID

END_PADDED = np.array([
    [4, 5, END_ID, END_ID, END_ID],  # real end at 2, padding at 3 and 4
    [START_ID, 6, 4, 5, END_ID],  # no padding
    [END_ID, END_ID, END_ID, END_ID, END_ID],  # empty target: only the first END is real
    [6, END_ID, PAD_ID, PAD_ID, PAD_ID],  # 0-padded: nothing to down-weight
])


# ---- NumPy references ---------------------------------------------------------

def np_log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def np_crossentropy(ids, logits, label_smoothing=0.0):
    log_probs = np_log_softmax(logits)
    nll = -np.take_along_axis(log_probs, ids[..., None], -1)[..., 0]
    return (1 - label_smoothing) * nll - label_smoothing * log_probs.mean(-1)


def np_mae(ids, logits):
    probs = np.exp(np_log_softmax(logits))
    return np.abs(np.eye(logits.shape[-1])[ids] - probs).mean(-1)


def np_mean(values, counted, weights=None, normalize="tokens"):
    weights = np.ones_like(values) if weights is None else weights
    weights = weights * counted
    normalizer = counted.sum() if normalize == "tokens" else weights.sum()
    return (values * weights).sum() / normalizer if normalizer else 0.0


def np_matched_boundaries(ids, logits):
    boundary = (ids == START_ID) | (ids == END_ID)
    return boundary & (logits.argmax(-1) == ids)


def np_end_padding_weights(targets, end_weight):
    """Row by row: 1 up to and at the first END, `end_weight` at later ENDs, 0 at padding."""
    weights = np.ones(targets.shape, "float32")
    for row, ids in enumerate(targets):
        seen_end = False
        for t, token in enumerate(ids):
            if token == PAD_ID:
                weights[row, t] = 0.0
            elif token == END_ID:
                weights[row, t] = end_weight if seen_end else 1.0
                seen_end = True
    return weights


def boundary_logits():
    """LOGITS with start/end matched in row 1 and unmatched in rows 0 and 2."""
    logits = LOGITS.copy()
    logits[1, 0, START_ID] = logits[1, 4, END_ID] = 10.0
    logits[0, 2, END_ID] = logits[2, 1, END_ID] = -10.0
    return logits


def assert_close(actual, expected, rtol=1e-5):
    np.testing.assert_allclose(ops.convert_to_numpy(actual), expected, rtol=rtol)


# ---- backend-specific plumbing ------------------------------------------------

def value_and_gradient(fn, x):
    """`(fn(x), d fn / d x)` as NumPy, compiled as the backend's trainer compiles.

    JAX: `jax.jit(jax.value_and_grad)`; TensorFlow: a `GradientTape` inside
    `tf.function(jit_compile=True)`; PyTorch: eager autograd (Keras' torch
    trainer runs eagerly by default).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        value, gradient = jax.jit(jax.value_and_grad(fn))(x)
    elif backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = fn(x)
            return value, tape.gradient(value, x)

        value, gradient = step(tf.constant(x))
    elif backend == "torch":
        import torch

        x = torch.tensor(x, requires_grad=True)
        value = fn(x)
        (gradient,) = torch.autograd.grad(value, x)
        value, gradient = value.detach(), gradient.detach()
    else:
        raise ValueError(f"Expected the jax, tensorflow or torch backend. Received: {backend!r}")
    return float(ops.convert_to_numpy(value)), ops.convert_to_numpy(gradient)


# ---- MaskedSparseCrossentropy values ------------------------------------------

def case_crossentropy_mean_divides_by_real_tokens():
    for label_smoothing in (0.0, 0.1):
        expected = np_mean(np_crossentropy(TARGETS, LOGITS, label_smoothing), REAL)
        for from_logits in (True, False):
            y_pred = LOGITS if from_logits else np.exp(np_log_softmax(LOGITS))
            loss = MaskedSparseCrossentropy(from_logits=from_logits,
                                            label_smoothing=label_smoothing)
            assert_close(loss(TARGETS, y_pred), expected)


def case_padding_does_not_shrink_the_loss_unlike_keras_default():
    padded_targets = np.pad(TARGETS, ((0, 0), (0, 10)))
    padded_logits = np.pad(LOGITS, ((0, 0), (0, 10), (0, 0)))
    loss = MaskedSparseCrossentropy()
    assert_close(loss(padded_targets, padded_logits), float(loss(TARGETS, LOGITS)), rtol=1e-6)
    # Keras' default reduction divides by all batch * time elements.
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    short = float(keras_loss(TARGETS, LOGITS, sample_weight=REAL))
    long = keras_loss(padded_targets, padded_logits, sample_weight=padded_targets != PAD_ID)
    assert_close(long, short * 15 / 45)


def case_all_padding_batch_gives_zero_and_zero_gradient():
    padding = np.full_like(TARGETS, PAD_ID)
    for loss in (MaskedSparseCrossentropy(),
                 MaskedSparseCrossentropy(class_weights=np.ones(VOCAB), normalize="weights"),
                 BoundaryAwareLoss(), BoundaryAwareLoss(base="mae")):
        value, gradient = value_and_gradient(lambda y_pred: loss(padding, y_pred), LOGITS)
        assert value == 0.0, (loss.name, value)
        assert np.all(gradient == 0.0), loss.name


def case_one_real_token_gives_its_own_crossentropy():
    targets = np.zeros_like(TARGETS)
    targets[1, 2] = 4
    expected = np_crossentropy(targets, LOGITS)[1, 2]
    assert_close(MaskedSparseCrossentropy()(targets, LOGITS), expected, rtol=1e-6)


def case_class_weights_are_gathered_per_target_token():
    class_weights = np.linspace(0.5, 2.0, VOCAB)
    for normalize in ("tokens", "weights"):
        loss = MaskedSparseCrossentropy(class_weights=class_weights, normalize=normalize)
        expected = np_mean(np_crossentropy(TARGETS, LOGITS), REAL, class_weights[TARGETS],
                           normalize)
        assert_close(loss(TARGETS, LOGITS), expected)


def case_end_token_class_weights_feed_the_loss():
    weights = end_token_class_weights(TARGETS, VOCAB)
    loss = MaskedSparseCrossentropy(class_weights=weights)
    expected = np_mean(np_crossentropy(TARGETS, LOGITS), REAL, weights[TARGETS])
    assert weights[END_ID] < 1.0
    assert_close(loss(TARGETS, LOGITS), expected)


def case_normalize_weights_divides_by_the_sum_of_applied_weights():
    class_weights = np.ones(VOCAB)
    class_weights[END_ID] = 0.25
    tokens = MaskedSparseCrossentropy(class_weights=class_weights)
    weights = MaskedSparseCrossentropy(class_weights=class_weights, normalize="weights")
    _, token_count = tokens.sum_and_normalizer(TARGETS, LOGITS)
    _, weight_sum = weights.sum_and_normalizer(TARGETS, LOGITS)
    assert float(token_count) == REAL.sum() == 10
    assert float(weight_sum) == 10 - 3 * 0.75


def case_sample_weight_scales_and_zero_weight_drops_a_position():
    per_token = np.linspace(0.0, 2.0, TARGETS.size).reshape(TARGETS.shape)
    per_sequence = np.array([2.0, 0.0, 0.5])
    for sample_weight, token_weight in (
            (per_token, per_token),
            (per_sequence, np.broadcast_to(per_sequence[:, None], TARGETS.shape)),
            (per_sequence[:, None], np.broadcast_to(per_sequence[:, None], TARGETS.shape)),
            (per_token[..., None], per_token)):
        counted = REAL & (token_weight != 0)
        values = np_crossentropy(TARGETS, LOGITS)
        for normalize in ("tokens", "weights"):
            loss = MaskedSparseCrossentropy(normalize=normalize)
            expected = np_mean(values, counted, token_weight, normalize)
            assert_close(loss(TARGETS, LOGITS, sample_weight=sample_weight), expected)


def case_keras_mask_on_the_output_drops_positions():
    source = TARGETS.copy()
    source[1, 1:3] = PAD_ID  # masked by the embedding, although the targets are real
    output = keras.layers.Embedding(VOCAB, VOCAB, mask_zero=True)(source)
    loss = MaskedSparseCrossentropy()
    counted = REAL & (source != PAD_ID)
    logits = ops.convert_to_numpy(output)
    expected = np_mean(np_crossentropy(TARGETS, logits), counted)
    assert_close(loss(TARGETS, output), expected)  # the mask rides on `output`
    total, normalizer = loss.sum_and_normalizer(TARGETS, logits, mask=source != PAD_ID)
    assert float(normalizer) == counted.sum()
    np.testing.assert_allclose(float(total) / float(normalizer), expected, rtol=1e-5)


def case_sum_and_normalizer_accumulate_across_batches():
    loss = MaskedSparseCrossentropy(label_smoothing=0.1)
    first = loss.sum_and_normalizer(TARGETS[:1], LOGITS[:1])
    second = loss.sum_and_normalizer(TARGETS[1:], LOGITS[1:])
    pooled = (float(first[0]) + float(second[0])) / (float(first[1]) + float(second[1]))
    assert_close(loss(TARGETS, LOGITS), pooled, rtol=1e-6)


def case_one_hot_targets_equal_sparse_targets():
    logits = boundary_logits()
    for loss in (MaskedSparseCrossentropy(), BoundaryAwareLoss(), BoundaryAwareLoss(base="mae")):
        for zero_row_padding in (False, True):
            one_hot = np.eye(VOCAB, dtype="float32")[TARGETS]
            if zero_row_padding:
                one_hot[~REAL] = 0.0
            assert_close(loss(one_hot, logits), float(loss(TARGETS, logits)), rtol=1e-6)


# ---- BoundaryAwareLoss values -------------------------------------------------

def case_boundary_loss_drops_matched_start_end_only():
    logits = boundary_logits()
    matched = np_matched_boundaries(TARGETS, logits)
    assert matched.sum() == 2  # row 1: start and end; rows 0 and 2 are unmatched
    for base, reference in (("crossentropy", np_crossentropy), ("mae", np_mae)):
        expected = np_mean(reference(TARGETS, logits), REAL & ~matched)
        assert_close(BoundaryAwareLoss(base=base)(TARGETS, logits), expected)


def case_boundary_loss_with_sample_weight_and_probabilities():
    logits = boundary_logits()
    probabilities = np.exp(np_log_softmax(logits))
    sample_weight = np.array([1.0, 3.0, 0.0])
    counted = REAL & ~np_matched_boundaries(TARGETS, logits) & (sample_weight[:, None] != 0)
    token_weight = np.broadcast_to(sample_weight[:, None], TARGETS.shape)
    expected = np_mean(np_crossentropy(TARGETS, logits), counted, token_weight)
    loss = BoundaryAwareLoss(from_logits=False)
    assert_close(loss(TARGETS, probabilities, sample_weight=sample_weight), expected)


def case_boundary_loss_only_matched_boundaries_gives_zero():
    targets = np.array([[START_ID, END_ID, PAD_ID]])
    logits = np.zeros((1, 3, VOCAB), "float32")
    logits[0, 0, START_ID] = logits[0, 1, END_ID] = 5.0
    assert float(BoundaryAwareLoss()(targets, logits)) == 0.0


# ---- gradients ----------------------------------------------------------------

def case_gradients_are_exactly_zero_at_ignored_positions():
    logits = boundary_logits()
    sample_weight = np.ones(TARGETS.shape, "float32")
    sample_weight[1, 2] = 0.0
    for loss in (MaskedSparseCrossentropy(label_smoothing=0.1,
                                          class_weights=np.linspace(0.5, 2, VOCAB)),
                 BoundaryAwareLoss(), BoundaryAwareLoss(base="mae")):
        value, gradient = value_and_gradient(
            lambda y_pred: loss(TARGETS, y_pred, sample_weight=sample_weight), logits)
        np.testing.assert_allclose(value, float(loss(TARGETS, logits, sample_weight=sample_weight)),
                                   rtol=1e-5)
        ignored = ~REAL | (sample_weight == 0)
        if isinstance(loss, BoundaryAwareLoss):
            ignored |= np_matched_boundaries(TARGETS, logits)
        row_norms = np.abs(gradient).sum(-1)
        assert np.all(row_norms[ignored] == 0.0), (loss.name, row_norms)
        assert np.all(row_norms[~ignored] > 0.0), (loss.name, row_norms)


# ---- end_padding_weights ------------------------------------------------------

def case_end_padding_weights_spare_each_rows_real_end():
    weights = ops.convert_to_numpy(end_padding_weights(END_PADDED, 0.1))
    assert weights.dtype == np.float32 and weights.shape == END_PADDED.shape
    np.testing.assert_allclose(weights, np_end_padding_weights(END_PADDED, 0.1))
    np.testing.assert_allclose(weights[0], [1, 1, 1, 0.1, 0.1])
    np.testing.assert_allclose(weights[3], [1, 1, 0, 0, 0])
    random = np.random.default_rng(0).choice([PAD_ID, 4, 5, END_ID], size=(6, 9))
    assert_close(end_padding_weights(random, 0.25), np_end_padding_weights(random, 0.25))


def case_end_padding_weights_as_sample_weight_weigh_only_the_padding():
    logits = np.random.default_rng(1).normal(size=(4, 5, VOCAB)).astype("float32")
    weights = end_padding_weights(END_PADDED, 0.1)
    loss = MaskedSparseCrossentropy()(END_PADDED, logits, sample_weight=weights)
    counted = END_PADDED != PAD_ID
    per_token = np_crossentropy(END_PADDED, logits) * np_end_padding_weights(END_PADDED, 0.1)
    assert_close(loss, per_token[counted].sum() / counted.sum())


# ---- models: mask, .keras round trip, training --------------------------------

def tiny_model(time=5):
    """Embedding (mask_zero) and two Dense layers: the mask reaches the logits.

    No recurrent layer: compiling a GRU costs seconds per backend, and
    tests/test_losses.py trains GRUs on TensorFlow already.
    """
    inputs = keras.Input((time,), dtype="int32")
    hidden = keras.layers.Embedding(VOCAB, 8, mask_zero=True)(inputs)
    hidden = keras.layers.Dense(8, activation="tanh")(hidden)
    return keras.Model(inputs, keras.layers.Dense(VOCAB)(hidden))


def case_compiled_model_output_mask_drops_positions_in_evaluate():
    keras.utils.set_random_seed(0)
    source = TARGETS.copy()
    source[1, 1:3] = PAD_ID  # the model's Keras mask hides these real targets
    model = tiny_model()
    model.compile(loss=MaskedSparseCrossentropy())
    logits = model.predict(source, verbose=0)
    expected = np_mean(np_crossentropy(TARGETS, logits), REAL & (source != PAD_ID))
    np.testing.assert_allclose(model.evaluate(source, TARGETS, verbose=0), expected, rtol=1e-5)


def case_saved_model_loads_with_identical_loss_and_trains():
    for loss in (MaskedSparseCrossentropy(label_smoothing=0.1,
                                          class_weights=np.linspace(0.5, 2, VOCAB)),
                 BoundaryAwareLoss(base="mae")):
        keras.utils.set_random_seed(0)
        model = tiny_model()
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
        history = [float(model.train_on_batch(TARGETS, TARGETS)) for _ in range(8)]
        assert history[-1] < 0.8 * history[0], (loss.name, history)
        before = model.evaluate(TARGETS, TARGETS, verbose=0)
        with tempfile.TemporaryDirectory() as folder:
            model.save(Path(folder) / "model.keras")
            loaded = keras.saving.load_model(Path(folder) / "model.keras")
        assert type(loaded.loss) is type(loss)
        assert loaded.loss.get_config() == loss.get_config()
        assert loaded.evaluate(TARGETS, TARGETS, verbose=0) == before
