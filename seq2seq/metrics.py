"""Sequence metrics that skip padding, for any Keras 3 model's `compile()`.

Shapes: `y_true` is `[batch, time]` ids (or one-hot `[batch, time, vocab]`),
`y_pred` is `[batch, time, vocab]` logits or probabilities (only the argmax is
used). Padding (`pad_id`, an all-zero one-hot row) and positions that are False
in `y_pred`'s Keras mask never count. They run on every Keras backend
(TensorFlow, JAX, PyTorch); see docs/backends.md.
"""

import keras
from keras import ops

from seq2seq.losses import _check_int, _keras_mask, _target_ids
from seq2seq.tokens import PAD_ID


class _PaddedSequenceMetric(keras.metrics.Metric):
    """Holds `pad_id` and finds the positions that count."""

    def __init__(self, pad_id, name, dtype):
        super().__init__(name=name, dtype=dtype)
        self.pad_id = _check_int("pad_id", pad_id)

    def _hits_and_keep(self, y_true, y_pred):
        """Returns `(hit, keep)`, both `[batch, time]` bool."""
        mask = _keras_mask(y_pred)
        y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
        ids, is_pad = _target_ids(y_true, y_pred, self.pad_id)
        keep = ops.logical_not(is_pad)
        if mask is not None:
            keep = ops.logical_and(keep, ops.cast(mask, "bool"))
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), ids.dtype)
        return ops.equal(predicted, ids), keep

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}


@keras.saving.register_keras_serializable(package="seq2seq")
class MaskedAccuracy(_PaddedSequenceMetric):
    """Token accuracy over non-padding positions, accumulated across batches.

    `result() = correct / total`, both summed over every batch seen since the
    last reset (so a batch counts in proportion to its real tokens, not as one
    batch mean). `sample_weight`: `[batch]` (per sequence) or `[batch, time]`
    (per token) weights both sums. No counted token gives 0, not NaN.
    """

    def __init__(self, pad_id=PAD_ID, name="masked_accuracy", dtype=None):
        super().__init__(pad_id, name, dtype)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        hit, keep = self._hits_and_keep(y_true, y_pred)
        weight = ops.cast(keep, self.dtype)
        if sample_weight is not None:
            sample_weight = ops.convert_to_tensor(sample_weight, dtype=self.dtype)
            if len(sample_weight.shape) == 3:
                sample_weight = ops.squeeze(sample_weight, axis=-1)
            if len(sample_weight.shape) == 1:
                sample_weight = ops.expand_dims(sample_weight, axis=-1)
            weight = weight * sample_weight
        self.correct.assign_add(ops.sum(weight * ops.cast(hit, self.dtype)))
        self.total.assign_add(ops.sum(weight))

    def result(self):
        return ops.divide_no_nan(self.correct, self.total)


@keras.saving.register_keras_serializable(package="seq2seq")
class SequenceExactMatch(_PaddedSequenceMetric):
    """Fraction of sequences whose every non-padding position is right.

    `result() = matched / sequences`, accumulated across batches. Sequences
    with no counted position (all padding) are not counted at all.
    `sample_weight`: `[batch]` or `[batch, 1]` weights each sequence;
    `[batch, time]` is read as a per-token mask (zero = ignore that position).
    No counted sequence gives 0, not NaN.
    """

    def __init__(self, pad_id=PAD_ID, name="sequence_exact_match", dtype=None):
        super().__init__(pad_id, name, dtype)
        self.matched = self.add_variable(shape=(), initializer="zeros", name="matched")
        self.sequences = self.add_variable(shape=(), initializer="zeros", name="sequences")

    def update_state(self, y_true, y_pred, sample_weight=None):
        hit, keep = self._hits_and_keep(y_true, y_pred)
        sequence_weight = None
        if sample_weight is not None:
            sample_weight = ops.convert_to_tensor(sample_weight, dtype=self.dtype)
            if len(sample_weight.shape) == 3:
                sample_weight = ops.squeeze(sample_weight, axis=-1)
            if len(sample_weight.shape) == 2 and sample_weight.shape[-1] != 1:
                keep = ops.logical_and(keep, ops.not_equal(sample_weight, 0))
            else:
                sequence_weight = ops.reshape(sample_weight, (-1,))
        wrong = ops.logical_and(keep, ops.logical_not(hit))
        exact = ops.cast(ops.logical_not(ops.any(wrong, axis=-1)), self.dtype)
        counted = ops.cast(ops.any(keep, axis=-1), self.dtype)
        if sequence_weight is not None:
            counted = counted * sequence_weight
        self.matched.assign_add(ops.sum(counted * exact))
        self.sequences.assign_add(ops.sum(counted))

    def result(self):
        return ops.divide_no_nan(self.matched, self.sequences)
