"""The one saliency-regularized train step shared by the Classifier and the Translator."""

import numpy as np
import pytest
import keras
import tensorflow as tf

import seq2seq.models.base as base
from seq2seq.losses import MaskedSparseCrossentropy
from seq2seq.models.classifier import Classifier
from seq2seq.models.translator import Translator
from seq2seq.saliency import RECOMMENDED_SALIENCY_WEIGHT

from helpers import classifier_data, translator_data

METRICS = {"loss", "task_loss", "saliency_penalty", "accuracy", "tokens"}


# Eager by default: tracing a double-backprop graph costs seconds, one small batch does not.
def make_classifier(weight=0.0, seed=0, run_eagerly=True, **kwargs):
    keras.utils.set_random_seed(seed)
    model = Classifier(vocab_size=20, num_classes=3, embed_dim=6, units=4, bidirectional=False,
                       saliency_weight=weight, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.5), run_eagerly=run_eagerly,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def make_translator(weight=0.0, seed=0, run_eagerly=True):
    keras.utils.set_random_seed(seed)
    model = Translator(vocab_size=16, embed_dim=6, units=4, saliency_weight=weight)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=MaskedSparseCrossentropy(), run_eagerly=run_eagerly)
    return model


def weights(model):
    return [v.numpy().copy() for v in model.trainable_variables]


# --- what the step reports -----------------------------------------------------


def test_classifier_step_reports_the_loss_terms():
    tokens, annotation, labels = classifier_data()
    model = make_classifier(weight=2.0)
    logs = model.train_on_batch((tokens, annotation), labels, return_dict=True)
    assert set(logs) == METRICS
    assert logs["saliency_penalty"] > 0
    assert logs["loss"] == pytest.approx(logs["task_loss"] + 2.0 * logs["saliency_penalty"], rel=1e-5)
    assert logs["tokens"] == (tokens != 0).sum()
    evaluated = model.evaluate((tokens, annotation), labels, verbose=0, return_dict=True)
    assert set(evaluated) == METRICS
    assert evaluated["loss"] == pytest.approx(evaluated["task_loss"] + 2.0 * evaluated["saliency_penalty"], rel=1e-5)
    predicted = model.predict_on_batch(tokens)["logits"].argmax(-1)
    assert evaluated["accuracy"] == pytest.approx((predicted == labels).mean())


def test_translator_step_reports_the_loss_terms_and_masked_token_accuracy():
    source, target_in, target_out, annotation = translator_data()
    model = make_translator(weight=1.0)
    logs = model.train_on_batch((source, target_in, annotation), target_out, return_dict=True)
    assert set(logs) == METRICS
    assert logs["saliency_penalty"] > 0
    assert logs["tokens"] == (target_out != 0).sum()
    evaluated = model.evaluate((source, target_in, annotation), target_out, verbose=0, return_dict=True)
    predicted = model.predict_on_batch((source, target_in))["logits"].argmax(-1)
    real = target_out != 0
    assert evaluated["accuracy"] == pytest.approx((predicted == target_out)[real].mean())


def test_penalty_is_zero_when_every_token_may_be_relied_on():
    tokens, annotation, labels = classifier_data()
    model = make_classifier(weight=5.0)
    logs = model.train_on_batch((tokens, np.ones_like(annotation)), labels, return_dict=True)
    assert logs["saliency_penalty"] == 0.0
    assert logs["loss"] == logs["task_loss"]


def test_saliency_options_survive_get_config_and_bad_ones_name_the_value():
    model = Classifier(vocab_size=20, num_classes=3, embed_dim=6, units=4, saliency_weight=3.0,
                       saliency_target="sum_log_prob", saliency_reduction="grad_times_input",
                       saliency_normalization="none")
    clone = Classifier.from_config(model.get_config())
    for name in ("saliency_weight", "saliency_target", "saliency_reduction", "saliency_normalization"):
        assert getattr(clone, name) == getattr(model, name)
    with pytest.raises(ValueError, match="saliency_normalization='l1'"):
        Classifier(vocab_size=20, num_classes=3, saliency_normalization="l1")


# --- gradients -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["classifier", "translator"])
def test_total_loss_has_a_gradient_for_every_weight(kind):
    if kind == "classifier":
        tokens, annotation, labels = classifier_data()
        model, inputs, y = make_classifier(weight=1.0), tokens, labels
    else:
        source, target_in, target_out, annotation = translator_data()
        model, inputs, y = make_translator(weight=1.0), (source, target_in), target_out
    if not model.built:
        model.build()
    with tf.GradientTape(persistent=True) as tape:
        _, _, _, task_loss, penalty = model._forward_and_losses(inputs, annotation, y, None, training=True)
        loss = task_loss + model.saliency_weight * penalty
    names = [v.path for v in model.trainable_variables]
    missing = [n for n, g in zip(names, tape.gradient(loss, model.trainable_variables)) if g is None]
    assert not missing
    # The penalty alone reaches the embedding and the encoder: double backprop is connected
    # (the user's single-tape version raised "No gradients provided for any variable").
    penalty_grads = dict(zip(names, tape.gradient(penalty, model.trainable_variables)))
    reached = [n for n, g in penalty_grads.items() if g is not None and np.any(tf.convert_to_tensor(g).numpy())]
    assert any("source_embedding" in n for n in reached)
    assert any("encoder" in n for n in reached)


def test_weight_zero_is_exactly_the_plain_keras_step():
    class PlainStep(Classifier):
        train_step = keras.Model.train_step  # Keras 3.15's own TensorFlow train step

    tokens, annotation, labels = classifier_data(n=32)
    dataset = tf.data.Dataset.from_tensor_slices(((tokens, annotation), labels)).batch(8)
    ours = make_classifier(weight=0.0, run_eagerly=False)
    keras.utils.set_random_seed(0)
    plain = PlainStep(vocab_size=20, num_classes=3, embed_dim=6, units=4, bidirectional=False)
    plain.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for m in (plain, ours):
        if not m.built:
            m.build()
    plain.set_weights(ours.get_weights())
    ours.fit(dataset, epochs=2, verbose=0, shuffle=False)
    plain.fit(dataset, epochs=2, verbose=0, shuffle=False)
    for a, b in zip(weights(ours), weights(plain)):
        np.testing.assert_array_equal(a, b)


def test_inner_tape_runs_only_with_a_weight_and_an_annotation(monkeypatch):
    calls = []
    real = base.penalized_forward
    monkeypatch.setattr(base, "penalized_forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    tokens, annotation, labels = classifier_data()
    make_classifier(weight=0.0).train_on_batch((tokens, annotation), labels)
    make_classifier(weight=1.0).train_on_batch(tokens, labels)  # no annotation in the batch
    assert calls == []
    make_classifier(weight=1.0).train_on_batch((tokens, annotation), labels)
    assert calls


# --- tf.distribute ------------------------------------------------------------------

DISTRIBUTED_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf

# Two logical CPU devices; must run before TensorFlow initialises its devices.
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
sys.path.insert(0, sys.argv[1])
from helpers import classifier_data, translator_data
from seq2seq.losses import MaskedSparseCrossentropy
from seq2seq.models.classifier import Classifier
from seq2seq.models.translator import Translator


def run(kind, strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        if kind == "classifier":
            tokens, annotation, labels = classifier_data(n=16)
            data = ((tokens, annotation), labels)
            model = Classifier(vocab_size=20, num_classes=3, embed_dim=6, units=4, bidirectional=False,
                               saliency_weight=5.0)
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        else:
            source, target_in, target_out, annotation = translator_data(n=16)
            # The same number of real target tokens on each replica's half of a batch, so
            # that the mean over tokens per replica equals the global one.
            target_out[:, -1], target_in[target_in == 0] = 3, 5
            data = ((source, target_in, annotation), target_out)
            model = Translator(vocab_size=16, embed_dim=6, units=4, saliency_weight=5.0)
            loss = MaskedSparseCrossentropy()
        # SGD: an update linear in the gradient, so any scaling error shows in the weights.
        # Eager: the same step code and all-reduce, without seconds of tracing per replica.
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss, run_eagerly=True)
        dataset = tf.data.Dataset.from_tensor_slices(data).batch(8)
        history = model.fit(dataset, epochs=1, verbose=0, shuffle=False).history
    return {"history": history, "weights": [w.tolist() for w in model.get_weights()],
            "replicas": strategy.num_replicas_in_sync}


# One MirroredStrategy for both models: two instances in a process can clash on collective keys.
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
result = {kind: {"one": run(kind, tf.distribute.get_strategy()), "two": run(kind, mirrored)}
          for kind in ("classifier", "translator")}
print("RESULT" + json.dumps(result))
"""


def test_two_replica_mirrored_strategy_matches_one_replica(tmp_path):
    import json
    import os
    import subprocess
    import sys

    tests_dir = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    completed = subprocess.run([sys.executable, "-c", DISTRIBUTED_SCRIPT, tests_dir], env=env,
                               capture_output=True, text=True, timeout=600)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT"):])
    for kind in ("classifier", "translator"):
        one, two = result[kind]["one"], result[kind]["two"]
        assert (one["replicas"], two["replicas"]) == (1, 2)
        assert min(two["history"]["saliency_penalty"]) > 0
        for name in ("loss", "task_loss", "saliency_penalty", "accuracy", "tokens"):
            np.testing.assert_allclose(two["history"][name], one["history"][name], rtol=1e-4, err_msg=name)
        for a, b in zip(two["weights"], one["weights"]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# --- the decoy task ---------------------------------------------------------------------

DECOY_VOCAB = 42  # 4 special ids, positive words 4-7, negative 8-11, fillers 12-39, decoys 40-41


def decoy_task(n, seed, decoy="tied", label_noise=0.0):
    """A sentiment-like task with a shortcut, after Ross et al.'s decoy MNIST.

    The label is 1 when a sentence has more positive than negative words.
    `decoy="tied"` inserts token 40 + label at a random position (a perfect
    predictor, unlike the noisy real rule), `"random"` a random one of the two,
    `"none"` nothing. Z is 0 on the decoy, 1 elsewhere. Returns
    `(tokens [n, 13], annotation [n, 13], labels [n])`.
    """
    rng = np.random.default_rng(seed)
    tokens = np.zeros((n, 13), np.int32)
    annotation = np.ones((n, 13), np.float32)
    labels = np.zeros(n, np.int32)
    for i in range(n):
        n_pos, n_neg = rng.choice(4, 2, replace=False)
        words = list(rng.integers(12, 40, rng.integers(6, 13) - n_pos - n_neg))
        words += list(rng.integers(4, 8, n_pos)) + list(rng.integers(8, 12, n_neg))
        rng.shuffle(words)
        label = int(n_pos > n_neg)
        label = 1 - label if rng.random() < label_noise else label
        if decoy != "none":
            position = rng.integers(len(words) + 1)
            words.insert(position, 40 + (label if decoy == "tied" else rng.integers(2)))
            annotation[i, position] = 0.0
        tokens[i, : len(words)] = words
        labels[i] = label
    return tokens, annotation, labels


def train_decoy_classifier(weight, decoy="tied", seed=0):
    """Trains a small Classifier on 1,000 decoy-task sentences (20% label noise on the
    real rule, so the decoy is the better predictor); returns its decoy-test accuracy."""
    tokens, annotation, labels = decoy_task(1000, seed=1, decoy=decoy, label_noise=0.2)
    keras.utils.set_random_seed(seed)
    model = Classifier(DECOY_VOCAB, 2, embed_dim=16, units=16, bidirectional=False, saliency_weight=weight)
    model.compile(optimizer=keras.optimizers.Adam(1e-2, global_clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit((tokens, annotation), labels, batch_size=50, epochs=10, verbose=0)
    test_tokens, test_annotation, test_labels = decoy_task(500, seed=2, decoy="random")
    predicted = model.predict_with_attention(test_tokens)["labels"]
    return float((predicted == test_labels).mean())


def test_penalty_removes_a_decoy_shortcut():
    plain = train_decoy_classifier(weight=0.0)
    # The defaults: squared_l2, log_max_prob, share, and the recommended lambda.
    regularized = train_decoy_classifier(weight=RECOMMENDED_SALIENCY_WEIGHT)
    without_decoy = train_decoy_classifier(weight=0.0, decoy="random")
    print(f"decoy-test accuracy: plain {plain:.3f}, regularized {regularized:.3f}, "
          f"trained without the decoy {without_decoy:.3f}")
    assert plain < 0.7  # the plain model took the shortcut
    assert regularized > plain + 0.25
    assert regularized > without_decoy - 0.08
