"""The best checkpoint by a validation measure: SelectionScorer, TrainingState's monitor, train.best_metric."""

import json
import struct

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import GENERATED_TOKENIZER, train_in_process
from seq2seq.callbacks import SelectionScorer
from seq2seq.cli.main import main
from seq2seq.models.classifier import Classifier
from seq2seq.training import TrainConfig, train

# ----------------------------------------------------------------------------- SelectionScorer

SOURCES = ["s1", "s2"]
REFERENCES = ["a b c d e", "f g h i j"]


def scored(translations, log_dir=None, samples=3):
    """The logs of one epoch end of a SelectionScorer whose decoder returns `translations`."""
    scorer = SelectionScorer(lambda sources: translations, SOURCES, REFERENCES, log_dir=log_dir, samples=samples)
    logs = {}
    scorer.on_epoch_end(0, logs)
    scorer.on_train_end()
    return logs


def test_the_references_themselves_score_100_and_unrelated_words_0():
    assert scored(REFERENCES) == pytest.approx({"val_bleu": 100.0, "val_chrf": 100.0})
    assert scored(["x y z w v", "v w x y z"]) == pytest.approx({"val_bleu": 0.0, "val_chrf": 0.0})


def test_bleu_of_correct_but_short_translations_is_the_brevity_penalty():
    # Every n-gram of "a b c d" / "f g h i" is right: BLEU = 100 * exp(1 - 10 reference / 8 hypothesis words).
    logs = scored(["a b c d", "f g h i"])
    assert logs["val_bleu"] == pytest.approx(100 * np.exp(1 - 10 / 8), rel=1e-6)


def test_sample_translations_go_to_tensorboard_as_text(tmp_path):
    scored(["a b c d", "f | g"], log_dir=str(tmp_path), samples=1)
    texts = []
    for path in (tmp_path / "validation").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == "translations":
                    assert value.metadata.plugin_data.plugin_name == "text"
                    texts.append((event.step, tf.make_ndarray(value.tensor).item().decode("utf-8")))
    assert len(texts) == 1 and texts[0][0] == 1
    table = texts[0][1].splitlines()
    assert table[0] == "| source | reference | translation |"
    assert table[2:] == ["| s1 | a b c d e | a b c d |"]  # one sample: the second (with "|") is not shown


def test_a_sample_without_one_reference_per_source_is_refused():
    with pytest.raises(ValueError, match="2 sources and 1 references"):
        SelectionScorer(lambda sources: sources, SOURCES, REFERENCES[:1])


# ----------------------------------------------------------------------------- TrainingState's monitor

STEPS = 4  # batches per epoch
SCORES = [1.0, 3.0, 2.0, 2.5, 4.0, 5.0]  # the scripted validation measure per epoch: best at epoch 2


def dataset(n=32):
    rng = np.random.default_rng(0)
    tokens = rng.integers(4, 20, (n, 6)).astype(np.int32)
    labels = (tokens[:, 0] >= 12).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((tokens, labels)).batch(n // STEPS)


class ScriptedScore(keras.callbacks.Callback):
    """Adds SCORES[epoch] as `val_score` to each epoch's logs and keeps the weights at each epoch end."""

    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        logs["val_score"] = SCORES[epoch]
        self.weights[epoch + 1] = [w.copy() for w in self.model.get_weights()]


class InterruptAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise KeyboardInterrupt


def scored_run(out_dir, *extra):
    keras.utils.set_random_seed(0)
    model = Classifier(vocab_size=20, num_classes=2, embed_dim=4, units=4, bidirectional=False)
    score = ScriptedScore()
    summary = train(model, dataset(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    out_dir=str(out_dir), epochs=len(SCORES), patience=2, learning_rate=0.05, progress=False,
                    monitor="val_score", monitor_mode="max", checkpoint_every_steps=3,
                    callbacks=[score, *extra])
    return model, summary, score


def test_a_higher_is_better_measure_picks_the_best_epoch_stops_early_and_restores_it(tmp_path):
    model, summary, score = scored_run(tmp_path)
    assert summary["history"]["val_score"] == SCORES[:4]  # epochs 3 and 4 are not better than 2: stop
    assert (summary["best_epoch"], summary["best_metric"], summary["best_value"]) == (2, "val_score", 3.0)
    assert summary["epochs"] == 4 and summary["stopped_early"]
    assert summary["best_val_loss"] is None  # no validation data: no loss to report
    for expected, actual in zip(score.weights[2], model.get_weights()):
        np.testing.assert_array_equal(actual, expected)


def test_the_selection_state_resumes_exactly(tmp_path):
    model, summary, _ = scored_run(tmp_path / "uninterrupted")
    # Inside epoch 4, after the best (epoch 2) and one epoch without improvement (3).
    with pytest.raises(KeyboardInterrupt):
        scored_run(tmp_path / "interrupted", InterruptAt(3 * STEPS + 2))
    resumed, resumed_summary, _ = scored_run(tmp_path / "interrupted")
    assert resumed_summary == summary
    for expected, actual in zip(model.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(actual, expected)


def test_an_unknown_monitor_mode_and_keep_checkpoints_below_1_are_refused():
    with pytest.raises(ValueError, match="monitor_mode='highest'"):
        TrainConfig(out_dir="runs/x", monitor_mode="highest")
    with pytest.raises(ValueError, match="keep_checkpoints=0"):
        TrainConfig(out_dir="runs/x", keep_checkpoints=0)


# ----------------------------------------------------------------------------- train.best_metric

TINY = f"""
[data]
corpus = "generated"
task = "copy"
generated_pairs = 400

[tokenizer]
model = "{GENERATED_TOKENIZER}"

[model]
embed_dim = 8
units = 8

[train]
epochs = 3
steps_per_epoch = 6
learning_rate = 0.05
patience = 3
best_metric = "chrf"
selection_sentences = 8

[decode]
beam_size = 1
max_length = 8
"""


@pytest.fixture(scope="module")
def chrf_run(tmp_path_factory):
    return train_in_process(tmp_path_factory.mktemp("selection"), TINY)


def test_the_history_and_metrics_hold_the_measure_and_the_best_epoch_has_the_highest(chrf_run):
    history = json.loads((chrf_run / "history.json").read_text())
    assert len(history["val_chrf"]) == len(history["val_bleu"]) == 3
    training = json.loads((chrf_run / "metrics.json").read_text())["training"]
    assert training["best_metric"] == "val_chrf"
    assert training["best_epoch"] == int(np.argmax(history["val_chrf"])) + 1  # the first of equal bests
    assert training["best_value"] == max(history["val_chrf"])
    assert training["best_val_loss"] == history["val_loss"][training["best_epoch"] - 1]


def test_model_keras_translates_the_selection_sample_with_the_best_score(chrf_run):
    from sacrebleu.metrics import CHRF

    from seq2seq.runs.translation import load_run, load_splits, translate_texts

    run = load_run(chrf_run)
    sample = load_splits(run.config, log=lambda message: None).valid[:8]
    translations = translate_texts(run, [pair.source for pair in sample], beam_size=1)
    score = CHRF().corpus_score(translations, [[pair.target for pair in sample]]).score
    assert score == pytest.approx(json.loads((chrf_run / "metrics.json").read_text())["training"]["best_value"])


def test_tensorboard_has_the_measures_the_sample_translations_and_their_attention_each_epoch(chrf_run):
    steps, pictures = {}, []
    for path in (chrf_run / "logs" / "validation").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
                if value.tag == "attention":
                    pictures.append(tf.make_ndarray(value.tensor))
    for tag in ("epoch_bleu", "epoch_chrf", "translations", "attention"):
        assert sorted(steps[tag]) == [1, 2, 3], tag
    width, height, png = pictures[0]
    assert png.startswith(b"\x89PNG")
    assert (int(width), int(height)) == struct.unpack(">II", png[16:24])


@pytest.mark.parametrize("override, message", [
    ("train.best_metric=blue", "Expected train.best_metric in ('loss', 'bleu', 'chrf')"),
    ("train.selection_sentences=0", "selection_sentences=0"),
    ("train.keep_checkpoints=0", "keep_checkpoints=0"),
])
def test_a_bad_selection_setting_is_a_clear_error(tmp_path, capsys, override, message):
    assert main(["train", "--out", str(tmp_path / "x"), "--set", override]) == 2
    assert message in capsys.readouterr().err
