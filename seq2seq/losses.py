"""Masked sequence losses that drop into any Keras 3 model's `compile()`.

Shapes: targets are token ids `[batch, time]` (or one-hot `[batch, time, vocab]`),
predictions are `[batch, time, vocab]` logits (or probabilities with
`from_logits=False`). Everything is written with `keras.ops` and no Python
branching on tensor values, so the losses run eagerly and under
`tf.function(jit_compile=True)`, and on every Keras backend: TensorFlow, JAX
(also under `jax.jit`) and PyTorch; importing this module does not import
TensorFlow on the other two. See docs/backends.md for how that is tested.

Why these losses reduce themselves. Keras 3.15's `Loss.__call__` multiplies the
per-token values by `sample_weight` and divides the sum by *all* `batch * time`
elements; only a Keras mask (`_keras_mask` on `y_pred`) is renormalised to the
count of unmasked positions. So padding passed as `sample_weight` (or zeroed
inside `call`) shrinks the loss with the padding fraction. The kit's losses
keep the Keras contract (`call` returns per-token values; the Keras mask and
`sample_weight` are honoured) but `__call__` divides by the positions that
count, and `sum_and_normalizer` exposes both halves for trainers that
accumulate over steps or replicas (as OpenNMT-tf does).
"""

import keras
import numpy as np
from keras import ops

from seq2seq.tokens import END_ID, PAD_ID, START_ID

try:
    # Private in Keras 3.15 (no public accessor exists), used by the built-in
    # `Loss.__call__` itself. A JAX tracer (inside `jax.jit`, where Keras'
    # fit and evaluate run) cannot carry attributes, so Keras keeps its mask
    # in a global table that only this function reads.
    from keras.src.backend import get_keras_mask as _keras_get_mask
except ImportError:  # Keras moved it; tests/test_backends.py fails loudly on this.
    _keras_get_mask = None

NORMALIZE_OPTIONS = ("tokens", "weights")
BASE_LOSSES = ("crossentropy", "mae")


class _MaskedTokenLoss(keras.losses.Loss):
    """Shared reduction of the kit's per-token losses.

    A position *counts* when it is not padding, is not dropped by the loss's
    own rule, is True in `y_pred`'s Keras mask (if any) and has a nonzero
    `sample_weight` (if given). Its weight is `class_weight * sample_weight`.

    - `sum_and_normalizer(...)` returns `(sum of weight * loss, normalizer)`,
      where the normalizer is the number of counted positions
      (`normalize="tokens"`) or the sum of their weights (`"weights"`).
    - `loss(y_true, y_pred, sample_weight)` returns `sum / normalizer`, and 0
      (not NaN) when nothing counts; under `tf.distribute` it is also scaled
      by 1 / replicas, like every built-in Keras mean.
    - `call(y_true, y_pred)` returns the weighted per-token values
      `[batch, time]`, 0 where a position does not count (Keras mask and
      `sample_weight` not applied).

    `sample_weight` may be per sequence (`[batch]`, `[batch, 1]`) or per token
    (`[batch, time]`, `[batch, time, 1]`).
    """

    normalize = "tokens"

    def __init__(self, pad_id, from_logits, name, dtype):
        super().__init__(name=name, reduction="sum_over_batch_size", dtype=dtype)
        self.pad_id = _check_int("pad_id", pad_id)
        self.from_logits = bool(from_logits)

    def _per_token(self, y_true, y_pred):
        """Returns `(values, keep, weights)`, each `[batch, time]`."""
        raise NotImplementedError

    def call(self, y_true, y_pred):
        y_true, y_pred = self._standardize(y_true, y_pred)
        values, keep, weights = self._per_token(y_true, y_pred)
        return values * weights * ops.cast(keep, self.dtype)

    def sum_and_normalizer(self, y_true, y_pred, sample_weight=None, mask=None):
        """Returns the scalars `(loss sum, normalizer)`; mean = sum / normalizer.

        `mask` (`[batch, time]` bool) defaults to `y_pred`'s Keras mask. The
        sums are not scaled for `tf.distribute`: divide the all-reduced sum by
        the all-reduced normalizer.
        """
        if mask is None:
            mask = _keras_mask(y_pred)
        y_true, y_pred = self._standardize(y_true, y_pred)
        values, keep, weights = self._per_token(y_true, y_pred)
        if mask is not None:
            keep = ops.logical_and(keep, ops.cast(mask, "bool"))
        if sample_weight is not None:
            sample_weight = _per_token_weights(sample_weight, values, self.dtype)
            keep = ops.logical_and(keep, ops.not_equal(sample_weight, 0))
            weights = weights * sample_weight
        kept = ops.cast(keep, self.dtype)
        weights = weights * kept
        total = ops.sum(values * weights)
        normalizer = ops.sum(kept if self.normalize == "tokens" else weights)
        return total, normalizer

    def __call__(self, y_true, y_pred, sample_weight=None):
        with keras.name_scope(self.name):
            total, normalizer = self.sum_and_normalizer(y_true, y_pred, sample_weight)
            return _scale_for_replicas(ops.divide_no_nan(total, normalizer))

    def _standardize(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        return ops.convert_to_tensor(y_true), y_pred

    def get_config(self):
        return {"name": self.name, "dtype": self._dtype_policy.name,
                "pad_id": self.pad_id, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="seq2seq")
class MaskedSparseCrossentropy(_MaskedTokenLoss):
    """Cross-entropy over real tokens only.

    Args:
        pad_id: target id that means "no token here"; contributes nothing.
        from_logits: whether `y_pred` holds logits (True) or probabilities.
        label_smoothing: in [0, 1); the target becomes
            `(1 - label_smoothing) * one_hot + label_smoothing / vocab`.
        class_weights: optional per-id weights, length `vocab`, gathered per
            target token (see `end_token_class_weights`). This is the path that
            works for sequence targets, where Keras' `fit(class_weight=...)`
            does not (it makes one weight per *sequence*; do not combine it
            with this loss).
        normalize: `"tokens"`: the mean divides by the number of counted tokens
            (not padding, True in the Keras mask, nonzero `sample_weight`);
            `"weights"`: by the sum of their applied weights
            (`class_weight * sample_weight`), a weighted average.

    Shapes: `y_true` `[batch, time]` ids (or one-hot `[batch, time, vocab]`,
    read through argmax; an all-zero row is padding), `y_pred`
    `[batch, time, vocab]`. Returns a scalar; an all-padding batch gives 0.
    `sum_and_normalizer` returns the two halves of the mean.
    """

    def __init__(self, pad_id=PAD_ID, from_logits=True, label_smoothing=0.0,
                 class_weights=None, normalize="tokens",
                 name="masked_sparse_crossentropy", dtype=None):
        super().__init__(pad_id, from_logits, name, dtype)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError("Expected 0 <= label_smoothing < 1. "
                             f"Received: label_smoothing={label_smoothing!r}")
        if normalize not in NORMALIZE_OPTIONS:
            raise ValueError(f"Expected normalize in {NORMALIZE_OPTIONS}. "
                             f"Received: normalize={normalize!r}")
        self.label_smoothing = float(label_smoothing)
        self.class_weights = _check_class_weights(class_weights)
        self.normalize = normalize

    def _per_token(self, y_true, y_pred):
        ids, is_pad = _target_ids(y_true, y_pred, self.pad_id)
        values = _crossentropy(ids, y_pred, self.from_logits, self.label_smoothing)
        weights = ops.ones_like(values)
        if self.class_weights is not None:
            _check_vocab("class_weights", len(self.class_weights), y_pred)
            table = ops.convert_to_tensor(self.class_weights, dtype=self.dtype)
            weights = ops.take(table, ids)
        return values, ops.logical_not(is_pad), weights

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "class_weights": self.class_weights, "normalize": self.normalize}


@keras.saving.register_keras_serializable(package="seq2seq")
class BoundaryAwareLoss(_MaskedTokenLoss):
    """A per-token loss that ignores start/end tokens the model already gets right.

    Per position: if the true token is `start_id` or `end_id` and
    `argmax(y_pred)` equals it, the position is dropped (contributes 0 and is
    not counted); otherwise it contributes the base loss. Padding is dropped
    too. Written with argmax/equal/cast/multiply only, so it is graph-safe and
    its gradient is exactly 0 at dropped positions.

    Args:
        base: `"crossentropy"`, or `"mae"`: the mean absolute error between the
            one-hot target and the predicted probabilities (mean over vocab).
        start_id, end_id, pad_id: the special ids; must be distinct.
        from_logits: whether `y_pred` holds logits (True) or probabilities.

    Shapes: `y_true` `[batch, time]` ids or one-hot `[batch, time, vocab]`
    (read through argmax; an all-zero row is padding), `y_pred`
    `[batch, time, vocab]`. The mean divides by the number of counted positions:
    not padding, not a matched start/end, True in the Keras mask, nonzero
    `sample_weight`. Nothing counted gives 0.
    """

    def __init__(self, base="crossentropy", start_id=START_ID, end_id=END_ID,
                 pad_id=PAD_ID, from_logits=True, name="boundary_aware_loss",
                 dtype=None):
        super().__init__(pad_id, from_logits, name, dtype)
        if base not in BASE_LOSSES:
            raise ValueError(f"Expected base in {BASE_LOSSES}. Received: base={base!r}")
        self.base = base
        self.start_id = _check_int("start_id", start_id)
        self.end_id = _check_int("end_id", end_id)
        ids = {"start_id": self.start_id, "end_id": self.end_id, "pad_id": self.pad_id}
        if len(set(ids.values())) != 3:
            raise ValueError("Expected distinct start_id, end_id and pad_id (pad "
                             "with a dedicated id, never the end token). "
                             f"Received: {ids}")

    def _per_token(self, y_true, y_pred):
        ids, is_pad = _target_ids(y_true, y_pred, self.pad_id)
        if self.base == "crossentropy":
            values = _crossentropy(ids, y_pred, self.from_logits, 0.0)
        else:
            probs = ops.softmax(y_pred, axis=-1) if self.from_logits else y_pred
            one_hot = ops.one_hot(ids, _vocab_size(y_pred), dtype=self.dtype)
            values = ops.mean(ops.abs(one_hot - probs), axis=-1)
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), ids.dtype)
        is_boundary = ops.logical_or(ops.equal(ids, self.start_id),
                                     ops.equal(ids, self.end_id))
        matched = ops.logical_and(is_boundary, ops.equal(predicted, ids))
        keep = ops.logical_not(ops.logical_or(is_pad, matched))
        return values, keep, ops.ones_like(values)

    def get_config(self):
        return {**super().get_config(), "base": self.base,
                "start_id": self.start_id, "end_id": self.end_id}


def end_token_class_weights(targets, vocab_size, end_id=END_ID, pad_id=PAD_ID):
    """Class weights that down-weight the end token, per the classic recipe.

    Counts the ids in `targets` (an iterable of id arrays, e.g. a
    `[num, time]` array or a list of ragged rows; `pad_id` excluded) and
    returns a float32 vector `[vocab_size]` of ones except at `end_id`, where
    the weight is (mean count of the other classes that occur) / (count of
    `end_id`). Pass it as `MaskedSparseCrossentropy(class_weights=...)`.
    """
    _check_int("end_id", end_id)
    counts = _count_classes(targets, vocab_size, pad_id)
    if not 0 <= end_id < vocab_size or end_id == pad_id:
        raise ValueError(f"Expected 0 <= end_id < vocab_size={vocab_size} and "
                         f"end_id != pad_id={pad_id}. Received: end_id={end_id}")
    others = np.delete(counts, end_id)
    others = others[others > 0]
    if counts[end_id] == 0 or others.size == 0:
        raise ValueError("Expected targets holding the end token and at least one "
                         f"other class. Received counts: end_id={end_id} occurs "
                         f"{counts[end_id]} times, {others.size} other classes occur")
    weights = np.ones(vocab_size, dtype=np.float32)
    weights[end_id] = others.mean() / counts[end_id]
    return weights


def end_padding_weights(targets, end_weight, end_id=END_ID, pad_id=PAD_ID):
    """Per-token weights that down-weight END padding but not each target's real end.

    In targets padded with the end token, `[12, 7, END, END, END]`, a row's
    first END is its real end, the token the model must learn to emit to stop;
    the ENDs after it are padding. `end_token_class_weights` gives every END one
    weight, so a small one also teaches the model not to stop. Here only the
    padding gets it. Returns float32 weights of `targets`' shape `[batch, time]`:

        targets  [12, 7, END, END, END]   [5, END, 0]
        weights  [ 1, 1,  1,  w,   w  ]   [1,  1,  0]

    1.0 at every token and at each row's first END, `end_weight` (`w`) at every
    later END, 0.0 at `pad_id`. Pass them as the per-token `sample_weight` of
    `MaskedSparseCrossentropy` (the third element of a dataset's batches); the
    user's recipe for `end_weight` is `end_token_class_weights(targets,
    vocab_size)[end_id]`. Written with `keras.ops` (a cumulative count of END
    along time), so it runs on NumPy arrays, in `tf.data.Dataset.map` and
    inside `tf.function`.
    """
    _check_int("end_id", end_id)
    _check_int("pad_id", pad_id)
    if not 0.0 <= end_weight < float("inf"):
        raise ValueError(f"Expected a finite end_weight >= 0. Received: end_weight={end_weight!r}")
    ids = ops.convert_to_tensor(targets)
    if len(ids.shape) != 2:
        raise ValueError("Expected targets of shape [batch, time] (token ids). "
                         f"Received: shape={ids.shape}")
    is_end = ops.equal(ids, end_id)
    ends_so_far = ops.cumsum(ops.cast(is_end, "int32"), axis=-1)
    padding = ops.logical_and(is_end, ops.greater(ends_so_far, 1))
    weights = ops.where(padding, ops.cast(end_weight, "float32"), ops.cast(1.0, "float32"))
    return ops.where(ops.equal(ids, pad_id), ops.zeros_like(weights), weights)


def inverse_frequency_class_weights(targets, vocab_size, smoothing=1.0,
                                    max_weight=10.0, pad_id=PAD_ID):
    """Per-class weights inversely proportional to how often each id occurs.

    `weight[c] = (mean_count + smoothing) / (count[c] + smoothing)`, clipped to
    at most `max_weight`, where `count` is taken over `targets` (an iterable of
    id arrays, `pad_id` excluded) and `mean_count` over the classes that occur.
    With `smoothing=0` the token-weighted mean weight is 1, so the loss keeps
    its scale. Classes that never occur get `max_weight`; `pad_id` gets 1.0
    (padding never counts anyway). Returns float32 `[vocab_size]`.
    """
    if not smoothing >= 0:
        raise ValueError(f"Expected smoothing >= 0. Received: smoothing={smoothing!r}")
    if not max_weight > 0:
        raise ValueError(f"Expected max_weight > 0. Received: max_weight={max_weight!r}")
    counts = _count_classes(targets, vocab_size, pad_id).astype(np.float64)
    if not counts.any():
        raise ValueError("Expected targets with at least one non-padding token. "
                         f"Received only pad_id={pad_id} (or nothing)")
    mean_count = counts[counts > 0].mean()
    with np.errstate(divide="ignore"):
        weights = (mean_count + smoothing) / (counts + smoothing)
    weights = np.minimum(weights, max_weight)
    if 0 <= pad_id < vocab_size:
        weights[pad_id] = 1.0
    return weights.astype(np.float32)


def _count_classes(targets, vocab_size, pad_id):
    """Counts each id in an iterable of id arrays, padding excluded."""
    _check_int("vocab_size", vocab_size)
    if vocab_size < 1:
        raise ValueError(f"Expected vocab_size >= 1. Received: vocab_size={vocab_size}")
    counts = np.zeros(vocab_size, dtype=np.int64)
    for row in targets:
        ids = np.asarray(row).astype(np.int64).ravel()
        ids = ids[ids != pad_id]
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            bad = ids[(ids < 0) | (ids >= vocab_size)][0]
            raise ValueError(f"Expected target ids in [0, vocab_size={vocab_size}). "
                             f"Received: id {bad}")
        counts += np.bincount(ids, minlength=vocab_size)
    return counts


def _keras_mask(x):
    """Returns the Keras mask `[batch, time]` carried by `x`, or None.

    Keras' own accessor when it is importable (it finds masks on every
    backend); otherwise the `_keras_mask` attribute, which TensorFlow and
    PyTorch tensors and eager JAX arrays carry but JAX tracers cannot, so
    masks are lost inside `jax.jit` (in a JAX model's fit and evaluate).
    """
    if _keras_get_mask is not None:
        return _keras_get_mask(x)
    return getattr(x, "_keras_mask", None)


def _scale_for_replicas(value):
    """Scales by 1 / replicas under `tf.distribute`, as Keras' built-in means do.

    The same rule as Keras 3.15's private `scale_loss_for_distribution`: only
    the TensorFlow backend scales, so TensorFlow is imported only there.
    """
    if keras.backend.backend() != "tensorflow":
        return value
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        value = ops.multiply(value, ops.cast(1.0 / replicas, value.dtype))
    return value


def _target_ids(y_true, y_pred, pad_id):
    """Returns `(ids [batch, time] int32, is_pad [batch, time] bool)`.

    `y_true` is `[batch, time]` ids, `[batch, time, 1]` ids or one-hot
    `[batch, time, vocab]`; an all-zero one-hot row counts as padding.
    """
    pred_rank, true_rank = len(y_pred.shape), len(y_true.shape)
    if true_rank == pred_rank and y_true.shape[-1] == 1:
        y_true, true_rank = ops.squeeze(y_true, axis=-1), true_rank - 1
    if true_rank == pred_rank - 1:
        ids = ops.cast(y_true, "int32")
        is_pad = ops.equal(ids, pad_id)
    elif true_rank == pred_rank:
        ids = ops.cast(ops.argmax(y_true, axis=-1), "int32")
        empty = ops.less_equal(ops.max(y_true, axis=-1), 0)
        is_pad = ops.logical_or(ops.equal(ids, pad_id), empty)
    else:
        raise ValueError("Expected y_true of shape [batch, time] (ids) or "
                         "[batch, time, vocab] (one-hot) for y_pred of shape "
                         "[batch, time, vocab]. Received: "
                         f"y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}")
    # pad_id may lie outside the vocabulary (e.g. -1): put an in-range index
    # at padding so gathers stay valid; those positions never count.
    return ops.where(is_pad, ops.zeros_like(ids), ids), is_pad


def _crossentropy(ids, y_pred, from_logits, label_smoothing):
    """Per-token cross-entropy `[batch, time]` of ids under `y_pred`."""
    if from_logits:
        log_probs = ops.log_softmax(y_pred, axis=-1)
    else:
        probs = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
        log_probs = ops.log(ops.clip(probs, keras.backend.epsilon(), 1.0))
    picked = ops.take_along_axis(log_probs, ops.expand_dims(ids, -1), axis=-1)
    nll = -ops.squeeze(picked, axis=-1)
    if label_smoothing == 0.0:
        return nll
    uniform = -ops.mean(log_probs, axis=-1)
    return (1.0 - label_smoothing) * nll + label_smoothing * uniform


def _per_token_weights(sample_weight, values, dtype):
    """Broadcasts `[batch]`, `[batch, 1]`, `[batch, time(, 1)]` to `values`."""
    sample_weight = ops.convert_to_tensor(sample_weight, dtype=dtype)
    if len(sample_weight.shape) == 3:
        sample_weight = ops.squeeze(sample_weight, axis=-1)
    if len(sample_weight.shape) == 1:
        sample_weight = ops.expand_dims(sample_weight, axis=-1)
    if len(sample_weight.shape) != 2:
        raise ValueError("Expected sample_weight of shape [batch], [batch, 1] or "
                         f"[batch, time]. Received: shape={sample_weight.shape}")
    return sample_weight * ops.ones_like(values)


def _vocab_size(y_pred):
    vocab = y_pred.shape[-1]
    if vocab is None:
        raise ValueError("Expected y_pred with a known last (vocab) dimension. "
                         f"Received: y_pred.shape={y_pred.shape}")
    return vocab


def _check_vocab(name, size, y_pred):
    if y_pred.shape[-1] is not None and y_pred.shape[-1] != size:
        raise ValueError(f"Expected {name} of length vocab={y_pred.shape[-1]} "
                         f"(y_pred.shape={y_pred.shape}). Received: length {size}")


def _check_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"Expected an integer {name}. Received: {name}={value!r}")
    return int(value)


def _check_class_weights(class_weights):
    """Returns the weights as a plain list of floats (serializable), or None."""
    if class_weights is None:
        return None
    weights = np.asarray(class_weights, dtype=np.float64)
    if weights.ndim != 1 or weights.size == 0 or not np.all(np.isfinite(weights)) \
            or np.any(weights < 0):
        raise ValueError("Expected class_weights as a non-empty 1-D vector of finite, "
                         f"non-negative floats (one per id). Received: {class_weights!r}")
    return [float(w) for w in weights]
