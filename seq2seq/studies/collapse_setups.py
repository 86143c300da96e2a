"""The setups of the end-token collapse study: how each pads its targets and which loss it trains with.

The pieces `seq2seq.studies.collapse_study` (and `recipes/end_token_collapse.py`)
combine to reproduce problem 1 of the mission and its fixes. Decoding a run for
`seq2seq diagnose --model` is product code and lives in
`seq2seq.diagnostics.translator`.

The naive setup is the original user's. Their targets were padded with the end
token itself, every target to one length, and trained with a plain loss:

    the kit, 0-padded:     target_in  [START, 12, 7, 0, 0, 0]  target_out [12, 7, END, 0, 0, 0]
    naive, END-padded:     target_in  [START, 12, 7, END, END, END]
                           target_out [12, 7, END, END, END, END]

`end_pad` turns the first into the second, so both come from the same batches of
the kit's pipeline (`seq2seq.data.pipeline`), and `keras.losses.
SparseCategoricalCrossentropy(from_logits=True)` averages over every position,
the END padding included. END is then most of the targets, and predicting it is
the cheapest way to lower the loss.

Each fix changes one thing of the naive setup, so that its row measures that thing:

1. `masked`: 0-padding (the pipeline as is), `Embedding(mask_zero=True)` (the
   Translator's) and `MaskedSparseCrossentropy`: padding costs nothing.
2. `end_pad_weighted`: the same END-padded targets and unmasked mean; END's
   weight is the user's recipe, mean count of the other classes / END count,
   counted over those same targets (`end_token_class_weights`), applied to the
   END padding only: every END after a row's first gets it, the first (the real
   end) keeps weight 1 like any token (`end_padding_weights`, the batches'
   per-token `sample_weight` of `MaskedSparseCrossentropy`). No mask and no 0
   anywhere: the weights alone take the padding out of the loss.
3. `boundary`: the same END-padded targets with `BoundaryAwareLoss`: a START or
   END position whose prediction is already right stops counting, which is what
   the user's custom loss was meant to do, written with tensor ops only.

`end_weighted` is the user's recipe as they wrote it, kept in the table to show
why it is not the fix: the same weight on every END, the real end of each
target included (`MaskedSparseCrossentropy(class_weights=...)`; with no 0 in
the targets it masks nothing). Not in the default run, `masked_end_weighted`
is that weight on top of fix 1, computed over 0-padded targets.

What each setup gives, epoch by epoch, and why a weight on the real ends makes
the model stop late: docs/collapse-study.md.
"""

from dataclasses import dataclass

import numpy as np

from seq2seq.tokens import END_ID, PAD_ID

LOSSES = ("plain", "masked", "end_weighted", "end_pad_weighted", "boundary")


@dataclass(frozen=True)
class Setup:
    """One row of the study: how targets are padded and which loss trains on them."""

    name: str
    end_padded: bool  # targets padded with END (the user's way) instead of 0
    loss: str  # one of LOSSES
    description: str


SETUPS = (
    Setup("naive", True, "plain", "END-padded targets, plain cross-entropy (the original failure)"),
    Setup("masked", False, "masked", "0-padded targets, mask_zero + MaskedSparseCrossentropy"),
    Setup("end_pad_weighted", True, "end_pad_weighted",
          "END-padded targets, the user's END weight on the END padding only (end_padding_weights)"),
    Setup("boundary", True, "boundary", "END-padded targets, BoundaryAwareLoss"),
    Setup("end_weighted", True, "end_weighted",
          "END-padded targets, the user's END weight on every END (the recipe as written: runs long)"),
)
SETUP_NAMES = tuple(setup.name for setup in SETUPS)
# Not in the default run: the END weight on top of fix 1, computed over the 0-padded targets.
MASKED_END_WEIGHTED = Setup("masked_end_weighted", False, "end_weighted",
                            "0-padded targets, mask_zero + MaskedSparseCrossentropy + END class weight")
EXTRA_SETUPS = (MASKED_END_WEIGHTED,)


# --------------------------------------------------------------------------- data


def end_pad(ids, end_id=END_ID, pad_id=PAD_ID):
    """Replaces every `pad_id` with `end_id`: the user's END padding. Works in graph.

    `[START, 12, 7, 0, 0]` -> `[START, 12, 7, END, END]`; `[12, 7, END, 0, 0]` ->
    `[12, 7, END, END, END]`. Shapes and dtype are kept.
    """
    import tensorflow as tf

    ids = tf.convert_to_tensor(ids)
    return tf.where(tf.equal(ids, pad_id), tf.cast(end_id, ids.dtype), ids)


def end_padded_dataset(dataset, end_id=END_ID, pad_id=PAD_ID):
    """`((source_ids, target_in), target_out)` batches with END-padded targets.

    The source keeps its 0 padding (the encoder masks it, as the user's did).
    """
    def transform(inputs, target_out):
        source_ids, target_in = inputs
        return (source_ids, end_pad(target_in, end_id, pad_id)), end_pad(target_out, end_id, pad_id)

    return dataset.map(transform)


def collect_targets(dataset) -> np.ndarray:
    """All `target_out` rows of a dataset of equal-length batches, `[rows, time]`."""
    return np.concatenate([target_out for _, target_out in dataset.as_numpy_iterator()])


def weighted_dataset(setup: Setup, dataset, targets: np.ndarray, vocab_size: int):
    """The setup's training batches: `dataset`, plus per-token sample weights for `end_pad_weighted`.

    `targets` are the `target_out` rows of `dataset`; the weights are
    `end_padding_weights(target_out, end_weight(setup, targets, vocab_size))`.
    """
    if setup.loss != "end_pad_weighted":
        return dataset
    from seq2seq.losses import end_padding_weights

    weight = end_weight(setup, targets, vocab_size)
    return dataset.map(lambda inputs, target_out: (inputs, target_out, end_padding_weights(target_out, weight)))


def end_weight(setup: Setup, targets: np.ndarray, vocab_size: int) -> float:
    """The weight the setup gives to END (padding), by the user's recipe over `targets`; 1.0 if none."""
    from seq2seq.losses import end_token_class_weights

    if setup.loss not in ("end_weighted", "end_pad_weighted"):
        return 1.0
    return float(end_token_class_weights(targets, vocab_size)[END_ID])


def make_loss(setup: Setup, targets: np.ndarray, vocab_size: int):
    """The setup's Keras loss; `targets` are the `target_out` rows it trains on."""
    import keras

    from seq2seq.losses import BoundaryAwareLoss, MaskedSparseCrossentropy, end_token_class_weights

    if setup.loss == "plain":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if setup.loss in ("masked", "end_pad_weighted"):  # end_pad_weighted: weights in the batches
        return MaskedSparseCrossentropy()
    if setup.loss == "end_weighted":
        return MaskedSparseCrossentropy(class_weights=end_token_class_weights(targets, vocab_size))
    if setup.loss == "boundary":
        return BoundaryAwareLoss()
    raise ValueError(f"Expected setup.loss in {LOSSES}. Received: loss={setup.loss!r}")
