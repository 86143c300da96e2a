"""Numeric cases of seq2seq.metrics that must hold on every Keras backend.

Run like tests/loss_cases.py: one subprocess per backend through
`run_backend_cases.py`, each `case_*` reported as a test by
tests/test_backends.py. No backend library is imported here.
"""

import tempfile
from pathlib import Path

import keras
import numpy as np
from keras import ops

from seq2seq.metrics import MaskedAccuracy, SequenceExactMatch
from seq2seq.tokens import END_ID, PAD_ID

VOCAB = 7
TARGETS = np.array([
    [4, 5, END_ID, PAD_ID],
    [6, 4, 5, END_ID],
    [5, END_ID, PAD_ID, PAD_ID],
])  # [batch=3, time=4]
PREDICTED = np.array([
    [4, 5, END_ID, 6],  # right; the wrong guess is on padding
    [6, 1, 5, END_ID],  # one wrong token
    [5, END_ID, 4, 4],  # right
])


def logits_for(ids):
    return np.eye(VOCAB, dtype="float32")[ids] * 3.0


def result(metric):
    return float(ops.convert_to_numpy(metric.result()))


def case_accuracy_counts_real_tokens_and_pools_batches():
    metric = MaskedAccuracy()
    metric.update_state(TARGETS, logits_for(PREDICTED))
    np.testing.assert_allclose(result(metric), 8 / 9, rtol=1e-6)
    metric.reset_state()
    metric.update_state(TARGETS[:1], logits_for(PREDICTED[:1]))  # 3 / 3
    metric.update_state(TARGETS[1:2], logits_for(PREDICTED[1:2]))  # 3 / 4
    np.testing.assert_allclose(result(metric), 6 / 7, rtol=1e-6)  # not (1 + 0.75) / 2


def case_accuracy_sample_weight_per_token_and_per_sequence():
    hit = (PREDICTED == TARGETS) & (TARGETS != PAD_ID)
    real = TARGETS != PAD_ID
    for sample_weight in (np.array([1.0, 2.0, 0.0]),
                          np.linspace(0, 1, TARGETS.size).reshape(TARGETS.shape)):
        token_weight = np.broadcast_to(sample_weight.reshape(3, -1), TARGETS.shape)
        metric = MaskedAccuracy()
        metric.update_state(TARGETS, logits_for(PREDICTED), sample_weight=sample_weight)
        expected = (token_weight * hit).sum() / (token_weight * real).sum()
        np.testing.assert_allclose(result(metric), expected, rtol=1e-6)


def case_accuracy_honours_the_keras_mask_and_one_hot_targets():
    source = TARGETS.copy()
    source[1, 1] = PAD_ID  # the Keras mask hides this real target
    output = keras.layers.Embedding(VOCAB, VOCAB, mask_zero=True)(source)
    predicted = ops.convert_to_numpy(output).argmax(-1)
    metric = MaskedAccuracy()
    metric.update_state(np.eye(VOCAB)[TARGETS] * (TARGETS != PAD_ID)[..., None], output)
    counted = (TARGETS != PAD_ID) & (source != PAD_ID)
    np.testing.assert_allclose(result(metric), (predicted == TARGETS)[counted].mean(), rtol=1e-6)


def case_all_padding_gives_zero_not_nan():
    for metric in (MaskedAccuracy(), SequenceExactMatch()):
        metric.update_state(np.zeros_like(TARGETS), logits_for(PREDICTED))
        assert result(metric) == 0.0, metric.name


def case_exact_match_ignores_padding_and_weights():
    metric = SequenceExactMatch()
    metric.update_state(np.vstack([TARGETS, [PAD_ID] * 4]), logits_for(np.vstack([PREDICTED, [1] * 4])))
    np.testing.assert_allclose(result(metric), 2 / 3, rtol=1e-6)  # the all-padding row is skipped
    per_sequence = SequenceExactMatch()
    per_sequence.update_state(TARGETS, logits_for(PREDICTED), sample_weight=np.array([1.0, 3.0, 0.0]))
    np.testing.assert_allclose(result(per_sequence), 1 / 4, rtol=1e-6)
    token_mask = (TARGETS != PAD_ID).astype("float32")
    token_mask[1, 1] = 0.0  # ignore the one wrong token
    per_token = SequenceExactMatch()
    per_token.update_state(TARGETS, logits_for(PREDICTED), sample_weight=token_mask)
    assert result(per_token) == 1.0


def case_compiled_metrics_survive_keras_save_and_load():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), dtype="int32")
    hidden = keras.layers.Embedding(VOCAB, 8, mask_zero=True)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(VOCAB)(hidden))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[MaskedAccuracy(), SequenceExactMatch()])
    model.fit(TARGETS, TARGETS, epochs=2, verbose=0)
    before = model.evaluate(TARGETS, TARGETS, verbose=0, return_dict=True)
    reference = MaskedAccuracy()
    reference.update_state(TARGETS, model.predict(TARGETS, verbose=0))
    np.testing.assert_allclose(before["masked_accuracy"], result(reference), rtol=1e-6)
    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder) / "model.keras")
        loaded = keras.saving.load_model(Path(folder) / "model.keras")
    assert loaded.evaluate(TARGETS, TARGETS, verbose=0, return_dict=True) == before
