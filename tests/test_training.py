"""The training driver: checkpoints and resume, early stopping, NaN, logs, progress."""

import json
import os
import warnings

import numpy as np
import pytest
import keras
import tensorflow as tf

from seq2seq.errors import UserError
from seq2seq.models.classifier import Classifier
from seq2seq.training import TrainConfig, TrainingDivergedError, train

STEPS = 4  # batches per epoch


def dataset(seed=0, flip=False, n=32, sample_weight=None):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, 20, (n, 6)).astype(np.int32)
    labels = (tokens[:, 0] >= 12).astype(np.int32)
    if flip:
        labels = 1 - labels
    parts = (tokens, labels) if sample_weight is None else (tokens, labels, sample_weight)
    return tf.data.Dataset.from_tensor_slices(parts).batch(n // STEPS)


def classifier():
    keras.utils.set_random_seed(0)
    return Classifier(vocab_size=20, num_classes=2, embed_dim=4, units=4, bidirectional=False)


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def run(out_dir, model=None, **overrides):
    overrides = {"progress": False, "learning_rate": 0.05, **overrides}
    model = model or classifier()
    return model, train(model, dataset(), overrides.pop("valid", None), loss=LOSS, out_dir=str(out_dir), **overrides)


def test_resume_continues_the_epoch_count_and_the_optimizer(tmp_path):
    first, summary = run(tmp_path, epochs=2)
    assert summary["epochs"] == 2 and len(summary["history"]["loss"]) == 2
    saved = [w.copy() for w in first.get_weights()]

    second, summary = run(tmp_path, epochs=2)  # nothing left to do: weights come back as saved
    assert int(second.optimizer.iterations.numpy()) == 2 * STEPS
    for a, b in zip(saved, second.get_weights()):
        np.testing.assert_array_equal(a, b)

    third, summary = run(tmp_path, epochs=3)
    assert summary["epochs"] == 3
    assert len(summary["history"]["loss"]) == 3  # the history spans both runs
    assert int(third.optimizer.iterations.numpy()) == 3 * STEPS


def test_interrupted_epoch_is_redone_from_the_last_checkpoint(tmp_path):
    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations.numpy() == STEPS + 2:  # inside epoch 2
                raise KeyboardInterrupt

    model = classifier()
    real_fit = model.fit
    model.fit = lambda *a, callbacks=(), **k: real_fit(*a, callbacks=[*callbacks, Interrupt()], **k)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, model=model, epochs=3)
    _, summary = run(tmp_path, epochs=3)
    assert summary["epochs"] == 3
    assert len(summary["history"]["loss"]) == 3


def test_early_stopping_restores_the_best_weights(tmp_path):
    # Validating on flipped labels: the validation loss rises as training learns.
    model, summary = run(tmp_path, epochs=8, patience=2, valid=dataset(flip=True))
    assert summary["stopped_early"]
    assert summary["best_epoch"] == 1
    assert summary["epochs"] == 3
    val = model.evaluate(dataset(flip=True), verbose=0, return_dict=True)
    assert val["loss"] == pytest.approx(summary["best_val_loss"], rel=1e-5)


def test_nan_loss_stops_with_a_message_naming_the_step(tmp_path):
    weights = np.ones(32, np.float32)
    weights[2 * 8] = np.nan  # first example of the third batch
    model = classifier()
    with pytest.raises(TrainingDivergedError, match=r"optimizer step 3 \(epoch 1, batch 3\)") as error:
        train(model, dataset(sample_weight=weights), loss=LOSS, out_dir=str(tmp_path), epochs=2, progress=False)
    assert isinstance(error.value, UserError)  # the CLI prints it as one line
    assert "Lower the learning rate" in str(error.value)
    assert not os.path.exists(tmp_path / "checkpoints" / "checkpoint")  # no poisoned checkpoint


def test_logs_history_and_progress_bar(tmp_path, capsys):
    # A validation set of unknown length (as the pipeline's): validated on exactly its batches,
    # without Keras' "Your input ran out of data" warning.
    valid = dataset(seed=1).filter(lambda x, y: True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, summary = run(tmp_path, epochs=2, progress=True, valid=valid)
    assert not [w for w in caught if "ran out of data" in str(w.message)]
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "task_loss=" in err and "tok/s=" in err and "val_loss=" in err
    assert "saliency_penalty=" not in err  # a model without a penalty shows no penalty column
    with open(tmp_path / "history.json") as f:
        assert json.load(f) == summary["history"]
    assert set(summary["final"]) >= {"loss", "task_loss", "saliency_penalty", "accuracy", "val_loss"}
    tags = {}
    for split in ("train", "validation"):
        for name in os.listdir(tmp_path / "logs" / split):
            for event in tf.compat.v1.train.summary_iterator(str(tmp_path / "logs" / split / name)):
                for value in event.summary.value:
                    tags.setdefault(split, set()).add((value.tag, event.step))
    assert ("epoch_loss", 2) in tags["train"] and ("epoch_saliency_penalty", 1) in tags["train"]
    assert ("epoch_loss", 2) in tags["validation"]


def test_the_progress_bar_shows_the_penalty_of_a_model_that_has_one(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    model = Classifier(vocab_size=20, num_classes=2, embed_dim=4, units=4, bidirectional=False, saliency_weight=0.5)
    run(tmp_path, model=model, epochs=1, progress=True)
    assert "saliency_penalty=" in capsys.readouterr().err


@pytest.mark.parametrize("field, value", [("epochs", 0), ("learning_rate", 0.0), ("clipnorm", -1.0),
                                          ("patience", 0), ("out_dir", "")])
def test_bad_config_names_the_field_and_value(field, value):
    arguments = {"out_dir": "runs/x", field: value}
    with pytest.raises(ValueError, match=f"{field}={value!r}"):
        TrainConfig(**arguments)


class RecordRate(keras.callbacks.Callback):
    """The learning rate of each optimizer step (read before the step)."""

    rates: dict = {}

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.rates[step] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def test_cosine_schedule_anneals_over_every_epoch_and_continues_after_a_resume(tmp_path):
    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations.numpy() == STEPS + 2:  # inside epoch 2
                raise KeyboardInterrupt

    RecordRate.rates = {}
    with pytest.raises(KeyboardInterrupt):
        train(classifier(), dataset(), loss=LOSS, out_dir=str(tmp_path), epochs=3, learning_rate=0.05,
              lr_schedule="cosine", progress=False, checkpoint_every_steps=1, callbacks=[RecordRate(), Interrupt()])
    train(classifier(), dataset(), loss=LOSS, out_dir=str(tmp_path), epochs=3, learning_rate=0.05,
          lr_schedule="cosine", progress=False, checkpoint_every_steps=1, callbacks=[RecordRate()])
    steps = np.arange(3 * STEPS)
    expected = 0.05 * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * steps / (3 * STEPS))))
    assert sorted(RecordRate.rates) == list(steps)  # every step ran once, some before the interruption
    np.testing.assert_allclose([RecordRate.rates[s] for s in steps], expected, rtol=1e-5)


def test_unknown_lr_schedule_names_the_value():
    with pytest.raises(ValueError, match="lr_schedule='linear'"):
        TrainConfig(out_dir="runs/x", lr_schedule="linear")


# ----------------------------------------------------------------------------- exact resume


def reshuffled_dataset():
    """48 examples, shuffled anew on each pass (seeded), 8 a batch, of unknown length (like the pipeline's)."""
    tokens, labels = dataset(n=48).unbatch().batch(48).get_single_element()
    examples = tf.data.Dataset.from_tensor_slices((tokens, labels)).shuffle(48, seed=5)
    return examples.batch(8).filter(lambda x, y: True)


class InterruptAt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt (as a kill would stop the run) after optimizer step `step`,
    or during the validation that follows it."""

    def __init__(self, step, in_validation=False):
        super().__init__()
        self.step, self.in_validation = step, in_validation

    def on_train_batch_end(self, batch, logs=None):
        if not self.in_validation and int(self.model.optimizer.iterations.numpy()) == self.step:
            raise KeyboardInterrupt

    def on_test_batch_end(self, batch, logs=None):
        if self.in_validation and int(self.model.optimizer.iterations.numpy()) == self.step:
            raise KeyboardInterrupt


def seeded_run(out_dir, interrupt=None):
    """3 epochs of 6 steps, dropout on, a checkpoint every 4 steps; the model and data built as a new
    process would (same seed); returns (final weights, summary)."""
    keras.utils.set_random_seed(0)
    model = Classifier(vocab_size=20, num_classes=2, embed_dim=4, units=4, bidirectional=False, dropout=0.3)
    summary = train(model, reshuffled_dataset(), dataset(seed=1), loss=LOSS, out_dir=str(out_dir), epochs=3,
                    learning_rate=0.05, checkpoint_every_steps=4, progress=False,
                    callbacks=[interrupt] if interrupt else [])
    return model.get_weights(), summary


def test_a_run_interrupted_anywhere_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    weights, summary = seeded_run(tmp_path / "uninterrupted")
    # Inside epoch 1 (resumes from step 4), in epoch 2's validation (from step 8, four steps into
    # epoch 2) and inside epoch 3 (from 16; epoch 2's end was saved).
    for interrupt in (InterruptAt(5), InterruptAt(12, in_validation=True), InterruptAt(17)):
        with pytest.raises(KeyboardInterrupt):
            seeded_run(tmp_path / "interrupted", interrupt)
    resumed_weights, resumed_summary = seeded_run(tmp_path / "interrupted")
    for expected, actual in zip(weights, resumed_weights):
        np.testing.assert_array_equal(actual, expected)
    assert resumed_summary == summary
    history = json.loads((tmp_path / "interrupted" / "history.json").read_text())
    assert history == json.loads((tmp_path / "uninterrupted" / "history.json").read_text())
    assert history["tokens"] == [48 * 6] * 3  # every epoch counts all of its steps, resumed ones too
