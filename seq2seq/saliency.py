"""The input-gradient ("right for the right reasons") penalty, as small functions.

Ross, Hughes and Doshi-Velez (IJCAI 2017) add to the task loss

    lambda * sum over tokens with Z == 0 of reduce(d target / d embedding)

where Z is a per-token annotation (1 = the model may rely on this token,
0 = it should ignore it) and the gradient is taken with respect to the
*embedded* source, [batch, src_time, embed_dim], never the integer ids.
`SaliencyModel.train_step` wires these functions together by double
backpropagation (`penalized_forward`): an inner tape watches the embedding and
gives the saliency; the outer tape (the train step's) records the penalty with
the task loss and differentiates both with respect to the weights.

Targets (what is differentiated, `saliency_target`):
- `"log_max_prob"`: log of the largest class probability. Its gradient is
  largest while the model is unsure (factor 1 - p_max) and vanishes as it
  grows confident.
- `"sum_log_prob"`: sum over classes of log p_k (Ross et al.'s choice). With
  two classes its gradient is 0 at p = (0.5, 0.5): it does not resist a
  shortcut while the model is still unsure, when shortcuts are learned.
For the translator's [batch, tgt_time, vocab] logits the per-position target
is summed over real target positions (y != PAD_ID), under teacher forcing.

Reductions (one number per token from its gradient g [embed_dim],
`saliency_reduction`):
- `"sum_squared"`: (sum_e g_e)^2, the original formulation. Signs cancel across
  embedding dimensions: any gradient orthogonal to (1, ..., 1) costs nothing,
  and a learned embedding finds that direction at once.
- `"squared_l2"`: sum_e g_e^2; zero only when the token has no first-order
  influence at all.
- `"grad_times_input"`: (sum_e g_e * x_e)^2 with x the token's embedding; a
  learned embedding can make it vanish by turning orthogonal to its gradient.

Normalizations (one number per example, `annotation_penalty`):
- `"none"`: the sum over forbidden tokens, as in the paper. Its scale follows
  the model's overall input sensitivity, so the useful lambda moves with model
  size and learning rate, and a lambda large enough to stop the shortcut early
  often makes the model insensitive to every token (it stops learning).
- `"share"`: that sum divided by the saliency summed over the example's real
  tokens: the fraction of the example's saliency on forbidden tokens, in
  [0, 1]. Scaling all gradients does not change it, so it cannot be lowered by
  going numb, only by moving the model's attention to allowed tokens.

The one loophole no local-gradient penalty closes: with learned embeddings a
model can push a shortcut token into a saturated region of the LSTM gates,
where the gradient is ~0 but the token still decides the output. On the decoy
task below, plain training moves the decoy embeddings to norm ~6-7 (other
words ~0.2-0.8) and drives every weak variant's penalty to 1e-8..1e-10 while
the decoy still decides. What works is a penalty strong enough, early enough,
that the shortcut is never learned in the first place.

Measured (decoy task: label = more positive than negative words, 20% label
noise; in training a decoy token tied to the label at a random position, Z = 0
on it; at test the decoy is random; BiLSTM classifier, embed 16, 16 units,
Adam 1e-2, 15 epochs, 2,000 sentences; accuracy on the decoy test set).
Plain training: 0.542; trained without a decoy: 0.889.

    normalization  reduction         target        lambda: accuracy
    none           sum_squared       both          100, 1000: 0.542 (evaded)
    none           squared_l2        log_max_prob  1-300: 0.542; 1000: 0.973-0.996
                                                   (3 seeds); 3000: 0.985-0.996
    none           squared_l2        sum_log_prob  1-1000: 0.542
    none           grad_times_input  log_max_prob  1-300: 0.542; 1000: 1 seed of 3;
                                                   3000-10000: 0.94-0.99
    none           grad_times_input  sum_log_prob  1-1000: 0.542
    share          sum_squared       both          10-1000: 0.542 (evaded)
    share          squared_l2        log_max_prob  10: 0.542; 100: 0.980-0.987;
                                                   300: 0.985-0.988; 1000: 0.985
    share          squared_l2        sum_log_prob  10: 0.542; 100: 0.981; 1000: 0.985
    share          grad_times_input  both          10: 0.542; 100: 0.79-0.87; 1000: 0.98

At the Classifier's default size (BiLSTM, embed 64, 64 units) with Adam 1e-3,
20 epochs (plain 0.542, without a decoy 0.949) the window of `"none"` moves
(300 evaded, 1000 reached 0.87, 3000 and 10000 stopped learning: 0.49), while `"share"` with `squared_l2` and `log_max_prob` gave
0.965-0.988 for lambda 100, 300 and 1000 (15-20 epochs). Hence the defaults:
`squared_l2`, `log_max_prob`, `share`. The weight: on the classifier CLI's own
decoy recipe (`seq2seq.studies.decoy`; every training text starts with a decoy, 20%
label noise, BiLSTM 64, Adam 1e-3, 20 epochs) lambda 300 removed the shortcut
after 10 epochs but was evaded by epoch 20 (random-decoy 0.48), while 1000 held
(random-decoy 0.975 and 0.982, seeds 0 and 1; a model trained without the
decoy: 0.994 and 1.000). `RECOMMENDED_SALIENCY_WEIGHT` is therefore 1000, the
top of the range that worked in both experiments.
"""

import tensorflow as tf

from seq2seq.tokens import PAD_ID

SALIENCY_TARGETS = ("log_max_prob", "sum_log_prob")
SALIENCY_REDUCTIONS = ("sum_squared", "squared_l2", "grad_times_input")
SALIENCY_NORMALIZATIONS = ("share", "none")

# lambda for classifiers trained with annotations, per reduction, with the default target
# ("log_max_prob") and normalization ("share"): "squared_l2" measured on generated text (the
# table above), "grad_times_input" on real text and generated text alike (docs/saliency-real-text.md;
# the classifier CLI's default).
RECOMMENDED_WEIGHTS = {"squared_l2": 1000.0, "grad_times_input": 100.0}
# The weight for the models' default reduction ("squared_l2").
RECOMMENDED_SALIENCY_WEIGHT = RECOMMENDED_WEIGHTS["squared_l2"]


def saliency_target(logits, kind, y_true=None):
    """The scalar whose gradient w.r.t. the embedded source is the saliency.

    Args:
        logits: [batch, classes] (classifier) or [batch, tgt_time, vocab]
            (translator, teacher-forced).
        kind: one of `SALIENCY_TARGETS`.
        y_true: [batch, tgt_time] target ids; with rank-3 logits, only
            positions where `y_true != PAD_ID` count. Ignored for rank 2.

    Returns:
        The per-example targets summed over the batch (each example's
        embedding only influences its own term, so the gradient of the sum is
        the per-example gradient).
    """
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    if kind == "log_max_prob":
        per_position = tf.reduce_max(log_probs, axis=-1)
    elif kind == "sum_log_prob":
        per_position = tf.reduce_sum(log_probs, axis=-1)
    else:
        raise ValueError(f"Expected `kind` in {SALIENCY_TARGETS}. Received: kind={kind!r}")
    if logits.shape.rank == 3 and y_true is not None:
        real = tf.cast(tf.not_equal(y_true, PAD_ID), per_position.dtype)
        per_position = per_position * real
    return tf.reduce_sum(per_position)


def reduce_token_saliency(gradient, embedding, reduction):
    """Turns each token's gradient into one non-negative number.

    Args:
        gradient: [batch, src_time, embed_dim], d target / d embedding.
        embedding: [batch, src_time, embed_dim], the embedded source (used by
            `"grad_times_input"` only).
        reduction: one of `SALIENCY_REDUCTIONS`.

    Returns:
        [batch, src_time] token saliencies.
    """
    if reduction == "sum_squared":
        return tf.square(tf.reduce_sum(gradient, axis=-1))
    if reduction == "squared_l2":
        return tf.reduce_sum(tf.square(gradient), axis=-1)
    if reduction == "grad_times_input":
        return tf.square(tf.reduce_sum(gradient * embedding, axis=-1))
    raise ValueError(f"Expected `reduction` in {SALIENCY_REDUCTIONS}. Received: reduction={reduction!r}")


def annotation_penalty(token_saliency, annotation, source_mask=None, normalization="none"):
    """The saliency on forbidden tokens (Z == 0, not padding), averaged over the batch.

    Args:
        token_saliency: [batch, src_time] from `reduce_token_saliency`.
        annotation: [batch, src_time] Z; 1 = may rely on, 0 = should ignore.
        source_mask: optional [batch, src_time] bool, False on padding; padded
            positions never count whatever their annotation.
        normalization: per example, `"none"` takes the sum of the saliency
            over forbidden tokens (Ross et al.); `"share"` divides that sum by
            the saliency summed over all real tokens of the example, giving
            the fraction of the example's saliency that sits on forbidden
            tokens, in [0, 1] (0 for an example whose saliency is all 0).

    Returns:
        A scalar: the per-example values summed and divided by the number of
        examples in the batch (all of them, penalised tokens or not), so it
        does not depend on how the batch is padded. 0 for an empty batch.
    """
    if normalization not in SALIENCY_NORMALIZATIONS:
        raise ValueError(
            f"Expected `normalization` in {SALIENCY_NORMALIZATIONS}. Received: normalization={normalization!r}"
        )
    dtype = token_saliency.dtype
    real = tf.ones_like(token_saliency) if source_mask is None else tf.cast(source_mask, dtype)
    forbidden = (1.0 - tf.cast(annotation, dtype)) * real
    per_example = tf.reduce_sum(token_saliency * forbidden, axis=-1)
    if normalization == "share":
        per_example = tf.math.divide_no_nan(per_example, tf.reduce_sum(token_saliency * real, axis=-1))
    batch_size = tf.cast(tf.shape(token_saliency)[0], dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(per_example), batch_size)


def penalized_forward(forward, embedding, annotation, *, y_true, target, reduction, normalization="none",
                      source_mask=None):
    """Runs `forward(embedding)` under an inner tape and returns (outputs, penalty).

    Call it inside the outer (weights) tape: the inner gradient is then
    recorded by the outer tape, so the penalty is differentiable w.r.t. the
    weights (double backpropagation). The target is computed *inside* the inner
    tape; computed after it, the inner gradient would be None.

    Args:
        forward: `embedding -> dict` with "logits", the rest of the model.
        embedding: [batch, src_time, embed_dim], the embedded source.
        annotation: [batch, src_time] Z.
        y_true: the targets (used to mask translator positions).
        target, reduction, normalization: see `saliency_target`,
            `reduce_token_saliency` and `annotation_penalty`.
        source_mask: optional [batch, src_time] bool, False on padding.

    Returns:
        `(outputs, penalty)`: the forward outputs (reused for the task loss, so
        the forward pass runs once) and the scalar `annotation_penalty`.
    """
    with tf.GradientTape() as inner_tape:
        inner_tape.watch(embedding)
        outputs = forward(embedding)
        scalar = saliency_target(outputs["logits"], target, y_true)
    gradient = inner_tape.gradient(scalar, embedding)
    if gradient is None:
        raise ValueError(
            "The saliency target does not depend on the embedding passed to `forward`: "
            "`forward` must compute the logits from that tensor (not re-embed the ids)."
        )
    token_saliency = reduce_token_saliency(gradient, embedding, reduction)
    return outputs, annotation_penalty(token_saliency, annotation, source_mask, normalization)
