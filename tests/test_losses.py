"""seq2seq.losses: values against NumPy references over the kept positions,
graph safety, serialization, and reuse in models that are not the kit's."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.losses import (
    BoundaryAwareLoss,
    MaskedSparseCrossentropy,
    end_padding_weights,
    end_token_class_weights,
    inverse_frequency_class_weights,
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


def boundary_logits():
    """LOGITS with start/end matched in row 1 and unmatched in rows 0 and 2."""
    logits = LOGITS.copy()
    logits[1, 0, START_ID] = logits[1, 4, END_ID] = 10.0
    logits[0, 2, END_ID] = logits[2, 1, END_ID] = -10.0
    return logits


# ---- MaskedSparseCrossentropy values ------------------------------------------

@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("from_logits", [True, False])
def test_crossentropy_mean_divides_by_real_tokens(label_smoothing, from_logits):
    y_pred = LOGITS if from_logits else np.exp(np_log_softmax(LOGITS))
    loss = MaskedSparseCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing)
    expected = np_mean(np_crossentropy(TARGETS, LOGITS, label_smoothing), REAL)
    np.testing.assert_allclose(loss(TARGETS, y_pred), expected, rtol=1e-5)


def test_padding_does_not_shrink_the_loss_unlike_keras_default():
    padded_targets = np.pad(TARGETS, ((0, 0), (0, 10)))
    padded_logits = np.pad(LOGITS, ((0, 0), (0, 10), (0, 0)))
    loss = MaskedSparseCrossentropy()
    np.testing.assert_allclose(loss(padded_targets, padded_logits), loss(TARGETS, LOGITS), rtol=1e-6)
    # Keras' default reduction divides by all batch * time elements.
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    short = keras_loss(TARGETS, LOGITS, sample_weight=REAL)
    long = keras_loss(padded_targets, padded_logits, sample_weight=padded_targets != PAD_ID)
    np.testing.assert_allclose(long, short * 15 / 45, rtol=1e-5)


@pytest.mark.parametrize("loss", [
    MaskedSparseCrossentropy(),
    MaskedSparseCrossentropy(class_weights=np.ones(VOCAB), normalize="weights"),
    BoundaryAwareLoss(),
    BoundaryAwareLoss(base="mae"),
], ids=["ce", "ce-weights", "boundary", "boundary-mae"])
def test_all_padding_batch_gives_zero_and_zero_gradient(loss):
    logits = tf.constant(LOGITS)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = loss(np.full_like(TARGETS, PAD_ID), logits)
    gradient = tape.gradient(value, logits).numpy()
    assert float(value) == 0.0
    assert np.all(gradient == 0.0)


def test_one_real_token_gives_its_own_crossentropy():
    targets = np.zeros_like(TARGETS)
    targets[1, 2] = 4
    expected = np_crossentropy(targets, LOGITS)[1, 2]
    np.testing.assert_allclose(MaskedSparseCrossentropy()(targets, LOGITS), expected, rtol=1e-6)


@pytest.mark.parametrize("normalize", ["tokens", "weights"])
def test_class_weights_are_gathered_per_target_token(normalize):
    class_weights = np.linspace(0.5, 2.0, VOCAB)
    loss = MaskedSparseCrossentropy(class_weights=class_weights, normalize=normalize)
    expected = np_mean(np_crossentropy(TARGETS, LOGITS), REAL, class_weights[TARGETS], normalize)
    np.testing.assert_allclose(loss(TARGETS, LOGITS), expected, rtol=1e-5)


def test_normalize_weights_divides_by_the_sum_of_applied_weights():
    class_weights = np.ones(VOCAB)
    class_weights[END_ID] = 0.25
    tokens = MaskedSparseCrossentropy(class_weights=class_weights)
    weights = MaskedSparseCrossentropy(class_weights=class_weights, normalize="weights")
    _, token_count = tokens.sum_and_normalizer(TARGETS, LOGITS)
    _, weight_sum = weights.sum_and_normalizer(TARGETS, LOGITS)
    assert float(token_count) == REAL.sum() == 10
    assert float(weight_sum) == 10 - 3 * 0.75


@pytest.mark.parametrize("per", ["token", "sequence"])
def test_sample_weight_scales_and_zero_weight_drops_a_position(per):
    if per == "token":
        sample_weight = np.linspace(0.0, 2.0, TARGETS.size).reshape(TARGETS.shape)
        token_weight = sample_weight
    else:
        sample_weight = np.array([2.0, 0.0, 0.5])
        token_weight = np.broadcast_to(sample_weight[:, None], TARGETS.shape)
    counted = REAL & (token_weight != 0)
    values = np_crossentropy(TARGETS, LOGITS)
    for normalize in ("tokens", "weights"):
        loss = MaskedSparseCrossentropy(normalize=normalize)
        expected = np_mean(values, counted, token_weight, normalize)
        np.testing.assert_allclose(loss(TARGETS, LOGITS, sample_weight=sample_weight),
                                   expected, rtol=1e-5)


def test_keras_mask_on_the_output_drops_positions():
    source = TARGETS.copy()
    source[1, 1:3] = PAD_ID  # masked by the embedding, although the targets are real
    output = keras.layers.Embedding(VOCAB, VOCAB, mask_zero=True)(source)
    assert output._keras_mask is not None
    loss = MaskedSparseCrossentropy()
    counted = REAL & (source != PAD_ID)
    expected = np_mean(np_crossentropy(TARGETS, output.numpy()), counted)
    np.testing.assert_allclose(loss(TARGETS, output), expected, rtol=1e-5)
    total, normalizer = loss.sum_and_normalizer(TARGETS, output.numpy(), mask=source != PAD_ID)
    assert float(normalizer) == counted.sum()
    np.testing.assert_allclose(float(total) / float(normalizer), expected, rtol=1e-5)


def test_sum_and_normalizer_accumulate_across_batches():
    loss = MaskedSparseCrossentropy(label_smoothing=0.1)
    first = loss.sum_and_normalizer(TARGETS[:1], LOGITS[:1])
    second = loss.sum_and_normalizer(TARGETS[1:], LOGITS[1:])
    pooled = (float(first[0]) + float(second[0])) / (float(first[1]) + float(second[1]))
    np.testing.assert_allclose(pooled, loss(TARGETS, LOGITS), rtol=1e-6)


@pytest.mark.parametrize("loss", [MaskedSparseCrossentropy(), BoundaryAwareLoss(),
                                  BoundaryAwareLoss(base="mae")], ids=["ce", "boundary", "mae"])
@pytest.mark.parametrize("padding", ["one-hot-of-pad", "zero-row"])
def test_one_hot_targets_equal_sparse_targets(loss, padding):
    one_hot = np.eye(VOCAB, dtype="float32")[TARGETS]
    if padding == "zero-row":
        one_hot[~REAL] = 0.0
    logits = boundary_logits()
    np.testing.assert_allclose(loss(one_hot, logits), loss(TARGETS, logits), rtol=1e-6)


# ---- BoundaryAwareLoss values -------------------------------------------------

@pytest.mark.parametrize("base, reference", [("crossentropy", np_crossentropy), ("mae", np_mae)])
def test_boundary_loss_drops_matched_start_end_only(base, reference):
    logits = boundary_logits()
    matched = np_matched_boundaries(TARGETS, logits)
    assert matched.sum() == 2  # row 1: start and end; rows 0 and 2 are unmatched
    expected = np_mean(reference(TARGETS, logits), REAL & ~matched)
    np.testing.assert_allclose(BoundaryAwareLoss(base=base)(TARGETS, logits), expected, rtol=1e-5)


def test_boundary_loss_with_sample_weight_and_probabilities():
    logits = boundary_logits()
    probabilities = np.exp(np_log_softmax(logits))
    sample_weight = np.array([1.0, 3.0, 0.0])
    counted = REAL & ~np_matched_boundaries(TARGETS, logits) & (sample_weight[:, None] != 0)
    token_weight = np.broadcast_to(sample_weight[:, None], TARGETS.shape)
    expected = np_mean(np_crossentropy(TARGETS, logits), counted, token_weight)
    loss = BoundaryAwareLoss(from_logits=False)
    np.testing.assert_allclose(loss(TARGETS, probabilities, sample_weight=sample_weight),
                               expected, rtol=1e-5)


def test_boundary_loss_only_matched_boundaries_gives_zero():
    targets = np.array([[START_ID, END_ID, PAD_ID]])
    logits = np.zeros((1, 3, VOCAB), "float32")
    logits[0, 0, START_ID] = logits[0, 1, END_ID] = 5.0
    assert float(BoundaryAwareLoss()(targets, logits)) == 0.0


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


# ---- graph safety -------------------------------------------------------------

def ignored_positions(loss, logits, sample_weight):
    ignored = ~REAL | (sample_weight == 0)
    if isinstance(loss, BoundaryAwareLoss):
        ignored |= np_matched_boundaries(TARGETS, logits)
    return ignored


LOSSES = [
    MaskedSparseCrossentropy(label_smoothing=0.1, class_weights=np.linspace(0.5, 2, VOCAB)),
    BoundaryAwareLoss(),
    BoundaryAwareLoss(base="mae"),
]


@pytest.mark.parametrize("loss", LOSSES, ids=["ce", "boundary", "boundary-mae"])
def test_gradients_under_xla_reach_counted_positions_only(loss):
    logits = tf.constant(boundary_logits())
    sample_weight = np.ones(TARGETS.shape, "float32")
    sample_weight[1, 2] = 0.0

    @tf.function(jit_compile=True)
    def value_and_gradient(y_true, y_pred, weight):
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            value = loss(y_true, y_pred, sample_weight=weight)
        return value, tape.gradient(value, y_pred)

    value, gradient = value_and_gradient(TARGETS, logits, sample_weight)
    np.testing.assert_allclose(value, loss(TARGETS, logits, sample_weight=sample_weight), rtol=1e-5)
    ignored = ignored_positions(loss, logits.numpy(), sample_weight)
    row_norms = np.abs(gradient.numpy()).sum(-1)
    assert np.all(row_norms[ignored] == 0.0)
    assert np.all(row_norms[~ignored] > 0.0)


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


def test_compiled_model_output_mask_drops_positions_in_evaluate():
    keras.utils.set_random_seed(0)
    source = TARGETS.copy()
    source[1, 1:3] = PAD_ID  # the model's Keras mask hides these real targets
    model = tiny_gru()
    model.compile(loss=MaskedSparseCrossentropy())
    logits = model.predict(source, verbose=0)
    expected = np_mean(np_crossentropy(TARGETS, logits), REAL & (source != PAD_ID))
    np.testing.assert_allclose(model.evaluate(source, TARGETS, verbose=0), expected, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
@pytest.mark.parametrize("loss", [
    MaskedSparseCrossentropy(label_smoothing=0.1, class_weights=np.linspace(0.5, 2, VOCAB)),
    BoundaryAwareLoss(base="mae"),
], ids=["ce", "boundary"])
def test_saved_model_loads_with_identical_loss(loss, tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_gru()
    model.compile(optimizer="adam", loss=loss)
    before = model.evaluate(TARGETS, TARGETS, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    assert loaded.evaluate(TARGETS, TARGETS, verbose=0) == before


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


END_PADDED = np.array([
    [4, 5, END_ID, END_ID, END_ID],  # real end at 2, padding at 3 and 4
    [START_ID, 6, 4, 5, END_ID],  # no padding
    [END_ID, END_ID, END_ID, END_ID, END_ID],  # empty target: only the first END is real
    [6, END_ID, PAD_ID, PAD_ID, PAD_ID],  # 0-padded: nothing to down-weight
])


def test_end_padding_weights_spare_each_rows_real_end():
    weights = np.asarray(end_padding_weights(END_PADDED, 0.1))
    assert weights.dtype == np.float32 and weights.shape == END_PADDED.shape
    np.testing.assert_allclose(weights, np_end_padding_weights(END_PADDED, 0.1))
    np.testing.assert_allclose(weights[0], [1, 1, 1, 0.1, 0.1])
    np.testing.assert_allclose(weights[3], [1, 1, 0, 0, 0])
    random = np.random.default_rng(0).choice([PAD_ID, 4, 5, END_ID], size=(6, 9))
    np.testing.assert_allclose(np.asarray(end_padding_weights(random, 0.25)),
                               np_end_padding_weights(random, 0.25))
    graph = tf.function(lambda ids: end_padding_weights(ids, 0.1))
    np.testing.assert_allclose(graph(tf.constant(END_PADDED)).numpy(), weights)
    with pytest.raises(ValueError, match="end_weight=-1"):
        end_padding_weights(END_PADDED, -1)
    with pytest.raises(ValueError, match=r"shape=\(5,\)"):
        end_padding_weights(END_PADDED[0], 0.1)


def test_end_padding_weights_as_sample_weight_weigh_only_the_padding():
    """The loss with these weights: the plain mean, each END padding position scaled by the weight."""
    logits = np.random.default_rng(1).normal(size=(4, 5, VOCAB)).astype("float32")
    weights = end_padding_weights(END_PADDED, 0.1)
    loss = MaskedSparseCrossentropy()(END_PADDED, logits, sample_weight=weights)
    counted = END_PADDED != PAD_ID
    per_token = np_crossentropy(END_PADDED, logits) * np_end_padding_weights(END_PADDED, 0.1)
    assert float(loss) == pytest.approx(per_token[counted].sum() / counted.sum(), rel=1e-5)


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
