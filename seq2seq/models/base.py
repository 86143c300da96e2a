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

`call(inputs)` is `forward(inputs, embed_source(inputs))`, so the saliency
step and plain inference run the same code.
"""

import keras

SALIENCY_TARGETS = ("log_max_prob", "sum_log_prob")
SALIENCY_REDUCTIONS = ("sum_squared", "squared_l2", "grad_times_input")


@keras.saving.register_keras_serializable(package="seq2seq")
class SaliencyModel(keras.Model):
    """Base of the kit's models: owns the saliency options and the train step.

    Args:
        saliency_weight: lambda in `task_loss + lambda * penalty`; 0 skips the
            inner tape entirely.
        saliency_target: what is differentiated w.r.t. the embedded source:
            `"log_max_prob"` (log of the max class probability; translator: sum
            over target positions) or `"sum_log_prob"`.
        saliency_reduction: how a token's gradient [embed_dim] becomes one
            number: `"sum_squared"` (the original: sum over the embedding, then
            square), `"squared_l2"` or `"grad_times_input"`.
    """

    def __init__(
        self,
        saliency_weight: float = 0.0,
        saliency_target: str = "log_max_prob",
        saliency_reduction: str = "squared_l2",
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
        self.saliency_weight = float(saliency_weight)
        self.saliency_target = saliency_target
        self.saliency_reduction = saliency_reduction

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

    def call(self, inputs, training=False):
        inputs, _ = self.split_inputs(inputs)
        return self.forward(inputs, self.embed_source(inputs, training=training), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            saliency_weight=self.saliency_weight,
            saliency_target=self.saliency_target,
            saliency_reduction=self.saliency_reduction,
        )
        return config
