"""The penalty maths of `seq2seq.saliency`, down to a finite-difference check."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from seq2seq.models.base import SaliencyModel
from seq2seq.saliency import (
    SALIENCY_REDUCTIONS,
    SALIENCY_TARGETS,
    annotation_penalty,
    penalized_forward,
    reduce_token_saliency,
    saliency_target,
)


def test_reductions_on_a_gradient_whose_signs_cancel():
    # One token, embed_dim 2: the gradient (1, -1) sums to 0 across the embedding.
    gradient = tf.constant([[[1.0, -1.0], [0.0, 2.0]]])  # [batch=1, src_time=2, embed=2]
    embedding = tf.constant([[[3.0, 1.0], [1.0, 0.5]]])
    values = {r: reduce_token_saliency(gradient, embedding, r).numpy().tolist() for r in SALIENCY_REDUCTIONS}
    assert values["sum_squared"] == [[0.0, 4.0]]  # the original formulation misses token 0
    assert values["squared_l2"] == [[2.0, 4.0]]
    assert values["grad_times_input"] == [[4.0, 1.0]]  # (3 - 1)^2, (0 + 1)^2


def test_penalty_sums_forbidden_tokens_and_divides_by_the_batch_size():
    saliency = tf.constant([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]])
    annotation = tf.constant([[0, 1, 0], [1, 1, 0]])
    mask = tf.constant([[True, True, True], [True, True, False]])  # last token of row 2 is padding
    assert annotation_penalty(saliency, annotation).numpy() == pytest.approx((1 + 4 + 32) / 2)
    assert annotation_penalty(saliency, annotation, mask).numpy() == pytest.approx((1 + 4) / 2)
    assert annotation_penalty(saliency, tf.ones_like(annotation)).numpy() == 0.0
    empty = tf.zeros((0, 3))
    assert annotation_penalty(empty, tf.zeros((0, 3))).numpy() == 0.0  # not NaN


def test_share_is_the_fraction_of_each_examples_saliency_on_forbidden_tokens():
    saliency = tf.constant([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0], [0.0, 0.0, 0.0]])
    annotation = tf.constant([[0, 1, 0], [1, 1, 0], [0, 0, 0]])
    mask = tf.constant([[True, True, True], [True, True, False], [True, True, True]])
    share = annotation_penalty(saliency, annotation, mask, normalization="share").numpy()
    assert share == pytest.approx((5 / 7 + 0 / 24 + 0.0) / 3)  # an all-zero example gives 0, not NaN
    # Scale-free: scaling every saliency leaves the share unchanged.
    assert annotation_penalty(1e-6 * saliency, annotation, mask, normalization="share").numpy() == pytest.approx(share)


def test_translator_target_ignores_padded_target_positions():
    logits = tf.random.stateless_normal((2, 3, 5), seed=(1, 2))
    y_true = tf.constant([[4, 3, 0], [4, 0, 0]])
    log_probs = tf.nn.log_softmax(logits).numpy()
    expected = log_probs.max(-1)[[0, 0, 1], [0, 1, 0]].sum()
    assert saliency_target(logits, "log_max_prob", y_true).numpy() == pytest.approx(expected, rel=1e-6)
    expected = log_probs.sum(-1)[[0, 0, 1], [0, 1, 0]].sum()
    assert saliency_target(logits, "sum_log_prob", y_true).numpy() == pytest.approx(expected, rel=1e-6)


def test_bad_options_name_the_value():
    with pytest.raises(ValueError, match="kind='max'"):
        saliency_target(tf.zeros((1, 2)), "max")
    with pytest.raises(ValueError, match="reduction='l1'"):
        reduce_token_saliency(tf.zeros((1, 1, 2)), tf.zeros((1, 1, 2)), "l1")
    with pytest.raises(ValueError, match="normalization='max'"):
        annotation_penalty(tf.zeros((1, 2)), tf.zeros((1, 2)), normalization="max")


def test_disconnected_embedding_raises_instead_of_a_silent_none():
    embedding = tf.ones((1, 2, 3))
    with pytest.raises(ValueError, match="does not depend on the embedding"):
        penalized_forward(lambda e: {"logits": tf.ones((1, 2))}, embedding, tf.zeros((1, 2)),
                          y_true=None, target="log_max_prob", reduction="squared_l2")


# --- finite differences on tiny float64 models ----------------------------------
# The kit's models return float32 logits whatever the policy (for mixed precision),
# which would put float32 rounding into the finite differences; these two tiny
# SaliencyModels keep every op in float64. The real models' gradients are checked
# for connectivity in test_train_step.py.


@pytest.fixture
def float64():
    # Keras caches the global dtype policy when the first layer is made, after which
    # set_floatx alone no longer changes new layers: set (and restore) both.
    previous_floatx, previous_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_floatx(previous_floatx)
    keras.config.set_dtype_policy(previous_policy)


class TinyModel(SaliencyModel):
    """Embedding -> LSTM -> Dense: per-token logits (a tagger, [batch, time, classes],
    standing in for the translator) or mean-pooled ones ([batch, classes])."""

    def __init__(self, pooled, **kwargs):
        super().__init__(saliency_weight=1.0, **kwargs)
        self.pooled = pooled
        self.embedding = keras.layers.Embedding(12, 4, mask_zero=True)
        self.lstm = keras.layers.LSTM(3, return_sequences=True, use_cudnn=False)
        self.head = keras.layers.Dense(5)

    def split_inputs(self, x):
        return x, None

    def embed_source(self, inputs, training=False):
        return self.embedding(inputs)

    def forward(self, inputs, source_embedding, training=False):
        mask = tf.not_equal(inputs, 0)
        states = self.lstm(source_embedding, mask=mask)
        if self.pooled:
            weights = tf.cast(mask, states.dtype)[..., None]
            states = tf.reduce_sum(states * weights, 1) / tf.reduce_sum(weights, 1)
        return {"logits": self.head(states), "attention": None}


def _tiny_batch(pooled):
    model = TinyModel(pooled)
    tokens = np.array([[5, 6, 7, 8, 0], [9, 10, 4, 0, 0], [11, 5, 3, 2, 0]], np.int32)
    annotation = np.array([[1, 0, 1, 0, 1], [0, 1, 1, 1, 1], [1, 0, 1, 0, 1]], np.float64)
    y_true = None if pooled else np.where(tokens > 0, tokens % 5, 0).astype(np.int32)
    y_true = y_true if pooled else np.where(tokens == 3, 0, y_true)  # a padded target position
    model(tokens)
    return model, tokens, annotation, y_true


def _penalty(model, inputs, annotation, y_true, target, reduction, normalization):
    embedding = model.embed_source(inputs)
    _, penalty = penalized_forward(
        lambda e: model.forward(inputs, e), embedding, annotation, y_true=y_true, target=target,
        reduction=reduction, normalization=normalization, source_mask=model.source_mask(inputs),
    )
    return penalty


CASES = [("pooled", t, r, "none") for t in SALIENCY_TARGETS for r in SALIENCY_REDUCTIONS] + [
    ("pooled", "log_max_prob", "squared_l2", "share"),
    ("pooled", "sum_log_prob", "grad_times_input", "share"),
    ("per_token", "log_max_prob", "squared_l2", "share"),
    ("per_token", "sum_log_prob", "sum_squared", "none"),
]


@pytest.mark.parametrize("logits, target, reduction, normalization", CASES)
def test_penalty_gradient_matches_finite_differences(float64, logits, target, reduction, normalization):
    rng = np.random.default_rng(0)
    model, inputs, annotation, y_true = _tiny_batch(pooled=logits == "pooled")
    assert model.forward(inputs, model.embed_source(inputs))["logits"].dtype == tf.float64
    variables = model.trainable_variables
    # Move off the initial point (zero biases, identical gates) to a generic one.
    for v in variables:
        v.assign(v + rng.normal(scale=0.3, size=v.shape))

    with tf.GradientTape() as tape:
        penalty = _penalty(model, inputs, annotation, y_true, target, reduction, normalization)
    gradients = tape.gradient(penalty, variables)
    assert penalty.numpy() > 0
    assert gradients[0] is not None  # the embedding matrix, reached only through the inner gradient

    direction = [rng.normal(size=v.shape) for v in variables]
    analytic = sum(float(np.sum(tf.convert_to_tensor(g).numpy() * d)) for g, d in zip(gradients, direction) if g is not None)
    start = [v.numpy() for v in variables]
    eps = 1e-5
    values = []
    for sign in (1, -1):
        for v, s, d in zip(variables, start, direction):
            v.assign(s + sign * eps * d)
        values.append(float(_penalty(model, inputs, annotation, y_true, target, reduction, normalization)))
    numeric = (values[0] - values[1]) / (2 * eps)
    assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-9)
