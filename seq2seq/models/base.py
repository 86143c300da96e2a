"""The contract between the kit's models and the one shared train step.

Both `Translator` and `Classifier` subclass `SaliencyModel`. The train step
(`train_step` / `test_step` here, the penalty maths in `seq2seq.saliency`) is
written once and sees a model only through these hooks:

- `split_inputs(x) -> (inputs, annotation | None)`: separates the model's own
  inputs from the optional per-token annotation Z ([batch, src_time], 1 = may
  rely on, 0 = should ignore) that the data pipeline carries beside them.
- `embed_source(inputs) -> [batch, src_time, embed_dim]`: the float tensor the
  saliency is taken with respect to (the embedded source tokens).
- `forward(inputs, source_embedding, training) -> dict`: the rest of the
  forward pass from that embedding; holds at least `"logits"`
  ([batch, classes] or [batch, tgt_time, vocab]) and `"attention"`.
- `source_mask(inputs) -> [batch, src_time] bool | None` (optional; the
  default reads the first integer input as the source ids): False on padded
  source positions, which the penalty then skips whatever their annotation.

`call(inputs)` is `forward(inputs, embed_source(inputs))`, so the saliency
step and plain inference run the same code.
"""

import contextlib

import keras
import tensorflow as tf

from seq2seq.saliency import SALIENCY_NORMALIZATIONS, SALIENCY_REDUCTIONS, SALIENCY_TARGETS, penalized_forward
from seq2seq.tokens import PAD_ID


@keras.saving.register_keras_serializable(package="seq2seq")
class SaliencyModel(keras.Model):
    """Base of the kit's models: owns the saliency options and the train step.

    The train step minimises `task_loss + saliency_weight * penalty`, where the
    penalty is the saliency of the tokens annotated Z == 0 (see
    `seq2seq.saliency`). It reports `loss`, `task_loss`, `saliency_penalty`,
    `accuracy` (per class, or per real target token) and `tokens` (real
    tokens this epoch) in `fit` and `evaluate` alike.

    The defaults are the variant that removed a decoy shortcut on the decoy
    task at two model sizes and learning rates with one lambda range
    (100-1000; `seq2seq.saliency.RECOMMENDED_SALIENCY_WEIGHT` = 1000): the
    original `"sum_squared"` reduction is evaded at every lambda (signs cancel
    across the embedding), and without `"share"` the working lambda moves with
    model size and learning rate, between "evaded" and "stops learning".

    Args:
        saliency_weight: lambda in `task_loss + lambda * penalty`; 0 (the
            default) skips the inner tape, so the step costs what a plain one does.
        saliency_target: what is differentiated w.r.t. the embedded source:
            `"log_max_prob"` (log of the max class probability; translator: sum
            over target positions) or `"sum_log_prob"`.
        saliency_reduction: how a token's gradient [embed_dim] becomes one
            number: `"sum_squared"` (the original: sum over the embedding, then
            square), `"squared_l2"` or `"grad_times_input"`.
        saliency_normalization: `"share"` (the fraction of each example's
            saliency on forbidden tokens) or `"none"` (their summed saliency,
            as in Ross et al.).
    """

    def __init__(
        self,
        saliency_weight: float = 0.0,
        saliency_target: str = "log_max_prob",
        saliency_reduction: str = "squared_l2",
        saliency_normalization: str = "share",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if saliency_weight < 0:
            raise ValueError(
                f"`saliency_weight` must be >= 0. Received: saliency_weight={saliency_weight}"
            )
        if saliency_target not in SALIENCY_TARGETS:
            raise ValueError(
                f"Expected `saliency_target` in {SALIENCY_TARGETS}. "
                f"Received: saliency_target={saliency_target!r}"
            )
        if saliency_reduction not in SALIENCY_REDUCTIONS:
            raise ValueError(
                f"Expected `saliency_reduction` in {SALIENCY_REDUCTIONS}. "
                f"Received: saliency_reduction={saliency_reduction!r}"
            )
        if saliency_normalization not in SALIENCY_NORMALIZATIONS:
            raise ValueError(
                f"Expected `saliency_normalization` in {SALIENCY_NORMALIZATIONS}. "
                f"Received: saliency_normalization={saliency_normalization!r}"
            )
        self.saliency_weight = float(saliency_weight)
        self.saliency_target = saliency_target
        self.saliency_reduction = saliency_reduction
        self.saliency_normalization = saliency_normalization
        # "loss" is Keras' own tracker (created by `compile`); the other terms
        # join it from one variable, updated once per step.
        self.step_totals = StepTotals()

    @contextlib.contextmanager
    def sublayer_dtype_policy(self):
        """Creates the layers made inside it under this model's dtype policy.

        Keras gives a new layer the global policy, not its parent's: a
        `Translator(dtype="mixed_bfloat16")`, or one reloaded from a `.keras`
        file, would otherwise build float32 sublayers. Subclasses create their
        sublayers in this context.
        """
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.dtype_policy)
        try:
            yield
        finally:
            keras.config.set_dtype_policy(previous)

    @property
    def needs_second_derivative(self) -> bool:
        """True when training differentiates twice (cuDNN kernels must be off)."""
        return self.saliency_weight > 0

    # --- hooks every subclass implements -------------------------------------

    def split_inputs(self, x):
        """Returns `(inputs, annotation or None)`; annotation is [batch, src_time]."""
        raise NotImplementedError

    def embed_source(self, inputs, training=False):
        """Returns the embedded source tokens, [batch, src_time, embed_dim]."""
        raise NotImplementedError

    def forward(self, inputs, source_embedding, training=False):
        """Runs the model from the embedded source; returns a dict with "logits" and "attention"."""
        raise NotImplementedError

    def source_mask(self, inputs):
        """[batch, src_time] bool, False on padding, or None for "no padding".

        The default reads the first input tensor (in `tf.nest` order) as the
        source ids when it is an integer tensor (true of the kit's models);
        override it when the source ids are elsewhere.
        """
        ids = tf.convert_to_tensor(tf.nest.flatten(inputs)[0])
        if not ids.dtype.is_integer:
            return None
        return tf.not_equal(ids, tf.cast(PAD_ID, ids.dtype))

    def call(self, inputs, training=False):
        inputs, _ = self.split_inputs(inputs)
        return self.forward(inputs, self.embed_source(inputs, training=training), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            saliency_weight=self.saliency_weight,
            saliency_target=self.saliency_target,
            saliency_reduction=self.saliency_reduction,
            saliency_normalization=self.saliency_normalization,
        )
        return config

    # --- the one train step ---------------------------------------------------

    def train_step(self, data):
        """One optimizer step on `task_loss + saliency_weight * penalty`.

        Follows Keras 3.15's TensorFlow trainer: the compiled loss is already
        divided by the number of replicas (`Loss.__call__` does it), the
        penalty gets the same scaling here, `optimizer.scale_loss` handles
        loss scaling, and `optimizer.apply` all-reduces (sums) the gradients.
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._build_on(x)
        inputs, annotation = self.split_inputs(x)
        with tf.GradientTape() as tape:
            outputs, y, loss, task_loss, penalty = self._forward_and_losses(inputs, annotation, y,
                                                                            sample_weight, training=True)
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        return self._update_metrics(x, inputs, y, outputs, sample_weight, loss, task_loss, penalty)

    def test_step(self, data):
        """Reports the same terms as `train_step`, without updating weights."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._build_on(x)
        inputs, annotation = self.split_inputs(x)
        outputs, y, loss, task_loss, penalty = self._forward_and_losses(inputs, annotation, y, sample_weight,
                                                                        training=False)
        return self._update_metrics(x, inputs, y, outputs, sample_weight, loss, task_loss, penalty)

    def _build_on(self, x):
        """Builds the model through `__call__` the first time, as Keras' own step does.

        The step calls the hooks directly, which builds the sublayers but not
        the model itself; without this, a later `model(x)` would build again.
        The call's outputs are unused (pruned from the traced graph).
        """
        if not self.built:
            self(x, training=False)

    def _forward_and_losses(self, inputs, annotation, y, sample_weight, training):
        """Forward pass; returns (outputs, y, loss, task_loss, penalty or None), losses replica-scaled.

        `y` is the targets the loss and metrics compared `outputs` with: those
        given, or fewer when `task_forward` keeps only some positions.

        The inner tape runs only when the weight is non-zero and the batch
        carries an annotation, a Python-level decision (the weight is a
        constructor constant): otherwise the penalty is None and the step
        traces exactly the plain Keras step.
        """
        embedding = self.embed_source(inputs, training=training)
        if self.saliency_weight > 0 and annotation is not None:
            outputs, penalty = penalized_forward(
                lambda e: self.forward(inputs, e, training=training),
                embedding,
                annotation,
                y_true=y,
                target=self.saliency_target,
                reduction=self.saliency_reduction,
                normalization=self.saliency_normalization,
                source_mask=self.source_mask(inputs),
            )
            penalty = _per_replica(penalty)
        else:
            outputs, y = self.task_forward(inputs, embedding, y, sample_weight, training=training)
            penalty = None
        task_loss = self._compute_loss(x=inputs, y=y, y_pred=outputs, sample_weight=sample_weight, training=training)
        if penalty is None:
            return outputs, y, task_loss, task_loss, None
        penalty = tf.cast(penalty, task_loss.dtype)
        return outputs, y, task_loss + self.saliency_weight * penalty, task_loss, penalty

    def task_forward(self, inputs, source_embedding, y, sample_weight, training=False):
        """The forward pass of a step without the penalty, and the targets its loss compares with.

        Returns `(outputs, y)`. The default runs `forward` at every position; a
        subclass may return fewer positions with the matching targets (the
        translator drops padding before its output projection).
        """
        return self.forward(inputs, source_embedding, training=training), y

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss on the logits (the "attention" output carries no loss)."""
        return super().compute_loss(x, y, _logits(y_pred), sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Compiled metrics see the logits; the kit's own trackers join them."""
        return super().compute_metrics(x, y, _logits(y_pred), sample_weight=sample_weight)

    def _update_metrics(self, x, inputs, y, outputs, sample_weight, loss, task_loss, penalty):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch_size = tf.shape(tf.nest.flatten(x)[0])[0]
        if self._loss_tracker is not None:
            self._loss_tracker.update_state(loss * replicas, sample_weight=batch_size)
        correct, real = _correct_predictions(y, outputs["logits"])
        self.step_totals.update_state(
            task_loss=task_loss * replicas,
            penalty=tf.zeros_like(task_loss) if penalty is None else penalty * replicas,
            batch_size=batch_size,
            correct=correct,
            real=real,
            tokens=self._count_tokens(inputs, outputs["logits"], real),
        )
        return self.compute_metrics(x, y, outputs, sample_weight=sample_weight)

    def _count_tokens(self, inputs, logits, real_targets):
        if logits.shape.rank == 3:
            return tf.reduce_sum(real_targets)
        mask = self.source_mask(inputs)
        if mask is None:
            return tf.cast(tf.size(tf.nest.flatten(inputs)[0]), logits.dtype)
        return tf.reduce_sum(tf.cast(mask, logits.dtype))


def _per_replica(value):
    """Divides by the replica count, as Keras' `Loss` does to the task loss.

    Under `tf.distribute` each replica's gradient is summed across replicas
    (`optimizer.apply` all-reduces with SUM), so a per-replica mean must be
    divided by `num_replicas_in_sync` for the sum to be the global mean.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value / replicas if replicas > 1 else value


def _logits(y_pred):
    return y_pred["logits"] if isinstance(y_pred, dict) else y_pred


def _correct_predictions(y_true, logits):
    """(correct, weight): per-example [batch] or per-real-token [batch, tgt_time] accuracy.

    A prediction is correct when the true class's logit is the largest: one
    max-reduction over the classes, cheaper on a CPU than an argmax (a tie
    with another class, which float logits make vanishingly rare, counts as
    correct).
    """
    if logits.shape.rank == 3:
        y_true = tf.cast(y_true, tf.int32)
        real = tf.not_equal(y_true, PAD_ID)
    else:
        y_true = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        real = tf.ones_like(y_true, dtype=tf.bool)
    true_logit = tf.gather(logits, y_true, batch_dims=logits.shape.rank - 1)
    correct = tf.cast(true_logit >= tf.reduce_max(logits, axis=-1), logits.dtype)
    return correct, tf.cast(real, logits.dtype)


@keras.saving.register_keras_serializable(package="seq2seq")
class StepTotals(keras.metrics.Metric):
    """The train step's own terms, summed in one variable and updated once per step.

    Five `Mean`/`Sum` trackers cost a dozen small ops each per step, a few
    percent of a small model's step; one vector costs one update. `result()`
    is a dict, which Keras spreads into the logs:
    `task_loss`, `saliency_penalty` (means over examples), `accuracy` (over
    real tokens or examples) and `tokens` (real tokens this epoch).
    """

    # Slots of the running sums.
    _TASK, _PENALTY, _EXAMPLES, _CORRECT, _REAL, _TOKENS = range(6)

    def __init__(self, name="step_totals", **kwargs):
        super().__init__(name=name, **kwargs)
        self.totals = self.add_variable(shape=(6,), initializer="zeros", name="totals")

    def update_state(self, task_loss, penalty, batch_size, correct, real, tokens):
        """Per-example means weighted by `batch_size`; `correct`/`real` of any shape, summed."""
        dtype = self.totals.dtype
        examples = tf.cast(batch_size, dtype)
        correct, real = tf.cast(correct, dtype), tf.cast(real, dtype)
        self.totals.assign_add(tf.stack([
            tf.cast(task_loss, dtype) * examples,
            tf.cast(penalty, dtype) * examples,
            examples,
            tf.reduce_sum(correct * real),
            tf.reduce_sum(real),
            tf.cast(tokens, dtype),
        ]))

    def result(self):
        t = self.totals
        return {
            "task_loss": tf.math.divide_no_nan(t[self._TASK], t[self._EXAMPLES]),
            "saliency_penalty": tf.math.divide_no_nan(t[self._PENALTY], t[self._EXAMPLES]),
            "accuracy": tf.math.divide_no_nan(t[self._CORRECT], t[self._REAL]),
            "tokens": t[self._TOKENS],
        }
