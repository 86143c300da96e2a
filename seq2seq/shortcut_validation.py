"""Model selection that does not reward a shortcut: validation with the forbidden words swapped.

When training texts carry masks (one 0/1 per whitespace word; 0 = a word the
model should not rely on), the validation texts usually carry the same
shortcut as the training texts: a model that reads a forbidden word scores
well there, so early stopping and the best checkpoint reward it. This module
makes a second validation set whose mask-0 words are replaced by other mask-0
words of the training set, drawn at random (seeded): there the forbidden words
say nothing about the label, and a model that reads them loses.

- `masked_words(train)`: the replacement pool, the distinct mask-0 words.
- `swap_masked_words(valid, pool, seed)`: the swapped copy of `valid`.
- `SwappedValidation(dataset)`: a Keras callback that scores the model on the
  swapped set after each epoch and adds `val_swapped_loss`,
  `val_swapped_task_loss` and `val_swapped_accuracy` to the epoch's logs, hence
  to `history.json`, TensorBoard and the progress bar;
  `TrainConfig(monitor="val_swapped_loss")` makes it the selection criterion
  (early stopping and the best checkpoint).

`seq2seq.runs.classification.train_run` does all of this by default when its
training data has masks (`[train] select_on_swapped`). The swapped set keeps
its annotation (mask 0 on the swapped words), so `val_swapped_loss` is the
training objective, task loss plus the weighted saliency penalty, as
`val_loss` is, on texts where the shortcut says nothing; selecting on the task
loss alone would stop a penalised run while the penalty still falls and the
task loss has not started to (see docs/saliency-real-text.md).
"""

import random

import keras

from seq2seq.data.reader import LabeledText

# Keys `SwappedValidation` adds to the epoch's logs: the swapped-set figure of each `evaluate` result.
SWAPPED_PREFIX = "val_swapped_"
SWAPPED_FIGURES = ("loss", "task_loss", "accuracy")
# The selection criterion `seq2seq.runs.classification.train_run` uses with masks.
SWAPPED_MONITOR = SWAPPED_PREFIX + "loss"


def masked_words(examples: list[LabeledText]) -> list[str]:
    """The distinct words that carry mask 0 somewhere in `examples`, sorted (the replacement pool)."""
    words = set()
    for example in examples:
        if example.mask is not None:
            words.update(word for word, keep in zip(example.text.split(), example.mask) if not keep)
    return sorted(words)


def has_masked_words(examples: list[LabeledText]) -> bool:
    """Whether any example has a word with mask 0 (something a swap can change)."""
    return any(example.mask is not None and 0 in example.mask for example in examples)


def swap_masked_words(examples: list[LabeledText], pool: list[str], seed: int) -> list[LabeledText]:
    """`examples` with every mask-0 word replaced by a different word of `pool`.

    Each replacement is drawn uniformly from the pool's other words, with a
    generator seeded by `seed` and consumed in example order, so the same
    arguments give the same texts. A mask-0 word that has no other word in the
    pool (a pool of one) is removed together with its mask entry. Words with
    mask 1 and examples without a mask are kept as they are; the replaced
    words keep mask 0.

    Args:
        examples: labeled texts; `mask` has one 0/1 per whitespace word, or is None.
        pool: the replacement words, e.g. `masked_words(train_examples)`.
        seed: seed of the draws.
    Returns:
        New `LabeledText`s, one per example, labels unchanged.
    """
    rng = random.Random(f"swapped-validation/{seed}")
    pool = sorted(set(pool))
    swapped = []
    for example in examples:
        if example.mask is None:
            swapped.append(example)
            continue
        words, mask = [], []
        for word, keep in zip(example.text.split(), example.mask):
            if not keep:
                others = [other for other in pool if other != word]
                if not others:
                    continue
                word = rng.choice(others)
            words.append(word)
            mask.append(keep)
        swapped.append(LabeledText(example.label, " ".join(words), tuple(mask)))
    return swapped


class SwappedValidation(keras.callbacks.Callback):
    """After each epoch, scores the model on `dataset` and adds `val_swapped_{loss,task_loss,accuracy}` to the logs.

    Put it before the callbacks that read the logs (the kit's `train` runs its
    `callbacks=` before the checkpointing, history and progress bar, so it
    needs nothing more). `dataset` is a finite `tf.data.Dataset` of
    `((token_ids, annotation), label)` (or `(token_ids, label)`) batches, typically
    `make_dataset(swap_masked_words(valid, masked_words(train), seed), ...)`.
    Scoring does not touch the weights, the optimizer or any random state, so
    a resumed run computes the same figures.
    """

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset
        self._ready = None

    def on_train_begin(self, logs=None):
        from seq2seq.training import _distributable, _with_known_length

        # As `train` prepares its validation set: split-able between replicas, and of a known
        # length, so that evaluate reads exactly its batches without a warning.
        replicas = self.model.distribute_strategy.num_replicas_in_sync
        self._ready = _with_known_length(_distributable(self.dataset, replicas))

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if self._ready is None:
            self.on_train_begin()
        results = self.model.evaluate(self._ready, verbose=0, return_dict=True)
        for name in SWAPPED_FIGURES:
            if name in results:
                logs[SWAPPED_PREFIX + name] = float(results[name])
