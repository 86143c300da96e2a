"""Attention layers: decoder-over-source attention and feed-forward pooling.

`SourceAttention` lets each decoder state look at the encoder outputs
(Luong dot/general or Bahdanau additive scores). `FeedForwardAttention` pools
a sequence into one vector (Raffel & Ellis, 2015) for the classifier head.
Both give padded positions exactly 0 weight, and both accept any length.
"""

import keras
from keras import ops

SOURCE_ATTENTION_SCORES = ("luong", "bahdanau")


def _large_negative(dtype):
    """A score that softmax turns into exactly 0 without overflowing `dtype`."""
    return -3e4 if keras.backend.standardize_dtype(dtype) == "float16" else -1e9


def masked_softmax(scores, mask=None, axis=-1):
    """Softmax of `scores` over `axis` where `mask` (bool, broadcastable) is True.

    Masked positions get exactly 0. A row with no unmasked position gets all
    zeros (not NaN, not a uniform distribution over padding).
    """
    if mask is None:
        return ops.softmax(scores, axis=axis)
    mask = ops.cast(mask, "bool")
    scores = ops.where(mask, scores, ops.cast(_large_negative(scores.dtype), scores.dtype))
    weights = ops.softmax(scores, axis=axis)
    return weights * ops.cast(mask, weights.dtype)


@keras.saving.register_keras_serializable(package="seq2seq")
class SourceAttention(keras.layers.Layer):
    """Attention of decoder states (queries) over encoder outputs (memory).

    Scores:
        - `"luong"`: `query . W . memory` (Luong's "general" score). With
          `use_projection=False` it is the plain dot product
          `query . memory`, which needs equal query and memory depths.
        - `"bahdanau"`: `v . tanh(W_q query + W_m memory + b)` with `units`
          hidden units (default: the query depth).

    Args:
        score: `"luong"` or `"bahdanau"`.
        units: hidden size of the additive score (Bahdanau only).
        use_projection: learn `W` for the Luong score (Luong only).
        scale_scores: divide the Luong scores by sqrt(memory_dim), as
            Transformers do (Luong only). Unscaled, the scores of a 512-wide
            memory grow fast under Adam and the softmax can saturate on one
            position early in training (all weight on the first source
            token), where its gradient vanishes: docs/translation-defaults.md.
            Ignored by the Bahdanau score.

    Call args:
        query: [batch, tgt_time, query_dim] (a whole target sequence) or
            [batch, query_dim] (one decoding step).
        memory: [batch, src_time, memory_dim], the encoder outputs.
        memory_mask: optional bool [batch, src_time], True at real tokens.
        keys: optional `memory_keys(memory)`, precomputed once per source so
            that step-by-step decoding does not recompute it.

    Returns:
        `(context, weights)`: context [batch, tgt_time, memory_dim] and weights
        [batch, tgt_time, src_time] (without the `tgt_time` axis for a
        one-step query). Weights are exactly 0 where `memory_mask` is False.
    """

    def __init__(self, score="luong", units=None, use_projection=True, scale_scores=False, **kwargs):
        super().__init__(**kwargs)
        if score not in SOURCE_ATTENTION_SCORES:
            raise ValueError(
                f"Expected `score` in {SOURCE_ATTENTION_SCORES}. Received: score={score!r}"
            )
        if units is not None and units < 1:
            raise ValueError(f"`units` must be a positive integer. Received: units={units}")
        self.score = score
        self.units = units
        self.use_projection = bool(use_projection)
        self.scale_scores = bool(scale_scores)
        self.supports_masking = True  # the query's (target) mask passes through

    def build(self, query_shape, memory_shape):
        query_dim, memory_dim = query_shape[-1], memory_shape[-1]
        if self.score == "bahdanau":
            units = self.units or query_dim
            self.query_kernel = self.add_weight(
                name="query_kernel", shape=(query_dim, units), initializer="glorot_uniform"
            )
            self.memory_kernel = self.add_weight(
                name="memory_kernel", shape=(memory_dim, units), initializer="glorot_uniform"
            )
            self.bias = self.add_weight(name="bias", shape=(units,), initializer="zeros")
            self.score_vector = self.add_weight(
                name="score_vector", shape=(units,), initializer="glorot_uniform"
            )
        elif self.use_projection:
            self.kernel = self.add_weight(
                name="kernel", shape=(query_dim, memory_dim), initializer="glorot_uniform"
            )
        elif query_dim != memory_dim:
            raise ValueError(
                "The dot score (use_projection=False) needs equal query and memory depths. "
                f"Received: query_shape={query_shape}, memory_shape={memory_shape}"
            )

    def memory_keys(self, memory):
        """What the scores compare queries with: [batch, src_time, key_dim]."""
        if self.score == "bahdanau":
            return ops.matmul(memory, self.memory_kernel) + self.bias
        return memory

    def call(self, query, memory, memory_mask=None, keys=None):
        one_step = len(query.shape) == 2
        if one_step:
            query = ops.expand_dims(query, 1)  # [batch, 1, query_dim]
        if keys is None:
            keys = self.memory_keys(memory)
        scores = self._scores(query, keys)  # [batch, tgt_time, src_time]
        if memory_mask is not None:
            memory_mask = ops.expand_dims(memory_mask, 1)  # [batch, 1, src_time]
        weights = masked_softmax(scores, memory_mask)
        context = ops.matmul(weights, memory)  # [batch, tgt_time, memory_dim]
        if one_step:
            return ops.squeeze(context, 1), ops.squeeze(weights, 1)
        return context, weights

    def _scores(self, query, keys):
        if self.score == "bahdanau":
            projected = ops.matmul(query, self.query_kernel)  # [batch, tgt, units]
            hidden = ops.tanh(ops.expand_dims(projected, 2) + ops.expand_dims(keys, 1))
            return ops.sum(hidden * self.score_vector, axis=-1)
        if self.use_projection:
            query = ops.matmul(query, self.kernel)  # [batch, tgt, memory_dim]
        if self.scale_scores:
            query = query * ops.cast(keys.shape[-1] ** -0.5, query.dtype)
        return ops.matmul(query, ops.transpose(keys, (0, 2, 1)))

    def get_config(self):
        config = super().get_config()
        config.update(score=self.score, units=self.units, use_projection=self.use_projection,
                      scale_scores=self.scale_scores)
        return config


@keras.saving.register_keras_serializable(package="seq2seq")
class FeedForwardAttention(keras.layers.Layer):
    """Feed-forward attention pooling (Raffel & Ellis, 2015).

    `e_t = tanh(h_t . w + b)` with a learned vector `w` and scalar `b`,
    `a = masked_softmax(e)` and `context = sum_t a_t h_t`. Works for any
    sequence length; padded steps (mask False) get exactly 0 weight.

    Call args:
        inputs: [batch, time, features].
        mask: optional bool [batch, time], True at real steps (taken from the
            inputs' Keras mask when not given).

    Returns:
        context [batch, features], or `(context, attention [batch, time])`
        when `return_attention=True`.
    """

    def __init__(self, return_attention=False, **kwargs):
        super().__init__(**kwargs)
        self.return_attention = bool(return_attention)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], 1), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(name="bias", shape=(), initializer="zeros")

    def call(self, inputs, mask=None):
        scores = ops.tanh(ops.squeeze(ops.matmul(inputs, self.kernel), -1) + self.bias)
        attention = masked_softmax(scores, mask)  # [batch, time]
        context = ops.sum(inputs * ops.expand_dims(attention, -1), axis=1)
        if self.return_attention:
            return context, attention
        return context

    def compute_mask(self, inputs, mask=None):
        return None  # the time axis is pooled away

    def get_config(self):
        config = super().get_config()
        config.update(return_attention=self.return_attention)
        return config
