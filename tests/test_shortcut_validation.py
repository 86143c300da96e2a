"""Swapped validation: the swap itself, the callback's figures, selection on them, and the classifier run's default."""

import json
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.runs import classification
from seq2seq.runs.classification import ClassifierRunConfig, with_overrides
from seq2seq.data.generated import generate_labeled
from seq2seq.data.reader import LabeledText
from seq2seq.models.classifier import Classifier
from seq2seq.runs.classification import swapped_selection
from seq2seq.shortcut_validation import SwappedValidation, has_masked_words, masked_words, swap_masked_words
from seq2seq.training import train

TOKENIZER = str(Path(__file__).resolve().parents[1] / "tokenizers" / "generated.model")
TRAIN = [LabeledText("a", "alfa sunel bata", (0, 1, 1)), LabeledText("b", "kivi omeg grumok", (1, 0, 1)),
         LabeledText("a", "sunel zeta", (1, 0)), LabeledText("b", "grumok", None)]


def test_the_pool_is_the_distinct_mask_0_words():
    assert masked_words(TRAIN) == ["alfa", "omeg", "zeta"]
    assert has_masked_words(TRAIN) and not has_masked_words([LabeledText("a", "x y", (1, 1)), TRAIN[3]])


def test_swapped_words_come_from_the_rest_of_the_pool_and_the_others_stay():
    valid = [LabeledText("a", "bata alfa sunel", (1, 0, 1)), LabeledText("b", "grumok"),
             LabeledText("b", "omeg omeg kivi", (0, 0, 1))] * 50
    swapped = swap_masked_words(valid, masked_words(TRAIN), seed=3)
    replacements = Counter()
    for before, after in zip(valid, swapped):
        assert after.label == before.label and after.mask == before.mask
        if before.mask is None:
            assert after == before
            continue
        for old, new, keep in zip(before.text.split(), after.text.split(), before.mask):
            if keep:
                assert new == old
            else:
                assert new != old and new in {"alfa", "omeg", "zeta"}
                replacements[old, new] += 1
    # Uniform over the two other words: 50 draws each for "alfa", 100 for "omeg".
    assert set(replacements) == {("alfa", "omeg"), ("alfa", "zeta"), ("omeg", "alfa"), ("omeg", "zeta")}
    assert 15 <= replacements["alfa", "omeg"] <= 35 and 35 <= replacements["omeg", "alfa"] <= 65
    assert swap_masked_words(valid, masked_words(TRAIN), seed=3) == swapped  # seeded
    assert swap_masked_words(valid, masked_words(TRAIN), seed=4) != swapped


def test_a_word_with_no_other_in_the_pool_is_removed_with_its_mask_entry():
    swapped = swap_masked_words([LabeledText("a", "alfa sunel alfa", (0, 1, 0))], ["alfa"], seed=0)
    assert swapped == [LabeledText("a", "sunel", (1,))]


# ---------------------------------------------------------------- the callback and the selection

STEPS = 4


def dataset(seed=0, n=32, flip=False):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, 20, (n, 6)).astype(np.int32)
    labels = (tokens[:, 0] >= 12).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((tokens, 1 - labels if flip else labels)).batch(n // STEPS)


def classifier():
    keras.utils.set_random_seed(0)
    return Classifier(vocab_size=20, num_classes=2, embed_dim=4, units=4, bidirectional=False)


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def test_the_callback_logs_the_swapped_loss_and_accuracy(tmp_path, capsys):
    model, swapped = classifier(), dataset(seed=5)
    summary = train(model, dataset(), dataset(seed=1), loss=LOSS, out_dir=str(tmp_path), epochs=1,
                    progress=True, learning_rate=0.05, callbacks=[SwappedValidation(swapped.filter(lambda x, y: True))])
    assert "val_swapped_loss=" in capsys.readouterr().err  # in the progress bar
    tokens, labels = (np.concatenate(part) for part in zip(*swapped.as_numpy_iterator()))
    logits = model(tokens)["logits"].numpy().astype(np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["val_swapped_loss"][0] == pytest.approx(-log_probs[np.arange(32), labels].mean(), rel=1e-4)
    assert history["val_swapped_accuracy"][0] == pytest.approx((logits.argmax(axis=1) == labels).mean())
    assert summary["best_metric"] == "val_loss"


class Scripted(keras.callbacks.Callback):
    """Writes a scripted `val_swapped_loss` into each epoch's logs and keeps each epoch's weights."""

    def __init__(self, values):
        super().__init__()
        self.values, self.weights = values, []

    def on_epoch_end(self, epoch, logs=None):
        logs["val_swapped_loss"] = self.values[epoch]
        self.weights.append([w.copy() for w in self.model.get_weights()])


def test_early_stopping_and_the_best_weights_follow_the_monitor(tmp_path, capsys):
    # The real validation loss falls all along (same task); the monitored figure is best at epoch 2.
    model, scripted = classifier(), Scripted([3.0, 1.0, 2.0, 4.0, 0.5, 0.1])
    summary = train(model, dataset(), dataset(seed=1), loss=LOSS, out_dir=str(tmp_path), epochs=6, patience=2,
                    progress=False, learning_rate=0.05, monitor="val_swapped_loss", callbacks=[scripted])
    assert (summary["best_epoch"], summary["epochs"], summary["stopped_early"]) == (2, 4, True)
    assert summary["best_value"] == 1.0 and summary["best_metric"] == "val_swapped_loss"
    assert "val_swapped_loss has not improved" in capsys.readouterr().out
    for best, restored in zip(scripted.weights[1], model.get_weights()):
        np.testing.assert_array_equal(best, restored)


def test_a_resumed_run_computes_the_same_swapped_figures(tmp_path):
    def run(out_dir, epochs):
        model = classifier()
        return train(model, dataset(), dataset(seed=1, flip=True), loss=LOSS, out_dir=str(out_dir), epochs=epochs,
                     progress=False, learning_rate=0.05, monitor="val_swapped_loss", patience=None,
                     callbacks=[SwappedValidation(dataset(seed=5))])

    straight = run(tmp_path / "straight", 3)
    run(tmp_path / "resumed", 2)
    resumed = run(tmp_path / "resumed", 3)
    assert resumed["history"] == straight["history"]
    assert len(straight["history"]["val_swapped_loss"]) == 3
    assert resumed["best_epoch"] == straight["best_epoch"]


# ---------------------------------------------------------------- classifier runs

def tiny_config(weight=0.0, **train):
    return with_overrides(ClassifierRunConfig(), tokenizer={"model": TOKENIZER},
                          model={"units": 4, "embed_dim": 4, "bidirectional": False, "saliency_weight": weight},
                          train={"epochs": 1, **train})


def unmasked(examples):
    return [LabeledText(e.label, e.text) for e in examples]


def test_by_default_a_masked_classifier_run_selects_on_the_swapped_loss(tmp_path):
    messages = []
    metrics = classification.train_run(tiny_config(weight=2.0), generate_labeled(40, seed=1),
                                       generate_labeled(10, seed=2), tmp_path, progress=False, log=messages.append)
    history = json.loads((tmp_path / "history.json").read_text())
    assert metrics["training"]["best_metric"] == "val_swapped_loss"
    assert len(history["val_swapped_loss"]) == 1 and "val_loss" in history
    # The swapped texts keep their annotation: the selection figure is the training objective, penalty included.
    assert history["val_swapped_loss"][0] > history["val_swapped_task_loss"][0]
    assert any(message.startswith("selection: val_swapped_loss") for message in messages)


def test_with_the_option_off_a_masked_run_reports_the_swapped_loss_and_selects_on_val_loss(tmp_path):
    metrics = classification.train_run(tiny_config(weight=2.0, select_on_swapped=False), generate_labeled(40, seed=1),
                                       generate_labeled(10, seed=2), tmp_path, progress=False, log=lambda m: None)
    history = json.loads((tmp_path / "history.json").read_text())
    assert metrics["training"]["best_metric"] == "val_loss"
    assert len(history["val_swapped_loss"]) == 1 and len(history["val_loss"]) == 1


@pytest.mark.parametrize("config, train, valid", [
    (tiny_config(select_on_swapped=True), unmasked(generate_labeled(8, seed=1)), generate_labeled(4, seed=2)),  # no masks
    (tiny_config(select_on_swapped=True), generate_labeled(8, seed=1), unmasked(generate_labeled(4, seed=2))),
])
def test_otherwise_the_selection_is_on_val_loss(config, train, valid):
    assert swapped_selection(config, train, valid, ["neg", "pos"], tokenizer=None) == ([], "val_loss")
