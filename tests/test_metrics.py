"""seq2seq.metrics: padding-free token accuracy and sequence exact match."""

import json

import keras
import numpy as np
import pytest

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


def test_accuracy_counts_real_tokens_only():
    metric = MaskedAccuracy()
    metric.update_state(TARGETS, logits_for(PREDICTED))
    assert float(metric.result()) == pytest.approx(8 / 9)


def test_accuracy_pools_tokens_across_batches():
    metric = MaskedAccuracy()
    metric.update_state(TARGETS[:1], logits_for(PREDICTED[:1]))  # 3 / 3
    metric.update_state(TARGETS[1:2], logits_for(PREDICTED[1:2]))  # 3 / 4
    assert float(metric.result()) == pytest.approx(6 / 7)  # not (1 + 0.75) / 2
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_accuracy_sample_weight_per_token_and_per_sequence():
    hit = (PREDICTED == TARGETS) & (TARGETS != PAD_ID)
    real = TARGETS != PAD_ID
    for sample_weight in (np.array([1.0, 2.0, 0.0]),
                          np.linspace(0, 1, TARGETS.size).reshape(TARGETS.shape)):
        token_weight = np.broadcast_to(sample_weight.reshape(3, -1), TARGETS.shape)
        metric = MaskedAccuracy()
        metric.update_state(TARGETS, logits_for(PREDICTED), sample_weight=sample_weight)
        expected = (token_weight * hit).sum() / (token_weight * real).sum()
        assert float(metric.result()) == pytest.approx(expected)


def test_accuracy_honours_the_keras_mask_and_one_hot_targets():
    source = TARGETS.copy()
    source[1, 1] = PAD_ID  # the Keras mask hides this real target
    output = keras.layers.Embedding(VOCAB, VOCAB, mask_zero=True)(source)
    metric = MaskedAccuracy()
    predicted = output.numpy().argmax(-1)
    metric.update_state(np.eye(VOCAB)[TARGETS] * (TARGETS != PAD_ID)[..., None], output)
    counted = (TARGETS != PAD_ID) & (source != PAD_ID)
    assert float(metric.result()) == pytest.approx((predicted == TARGETS)[counted].mean())


@pytest.mark.parametrize("metric", [MaskedAccuracy(), SequenceExactMatch()])
def test_all_padding_gives_zero_not_nan(metric):
    metric.update_state(np.zeros_like(TARGETS), logits_for(PREDICTED))
    assert float(metric.result()) == 0.0


def test_exact_match_ignores_padding_and_skips_empty_sequences():
    targets = np.vstack([TARGETS, [PAD_ID] * 4])
    predicted = np.vstack([PREDICTED, [1] * 4])
    metric = SequenceExactMatch()
    metric.update_state(targets, logits_for(predicted))
    assert float(metric.result()) == pytest.approx(2 / 3)
    metric.update_state(TARGETS[1:2], logits_for(TARGETS[1:2]))
    assert float(metric.result()) == pytest.approx(3 / 4)


def test_exact_match_sample_weight():
    per_sequence = SequenceExactMatch()
    per_sequence.update_state(TARGETS, logits_for(PREDICTED), sample_weight=np.array([1.0, 3.0, 0.0]))
    assert float(per_sequence.result()) == pytest.approx(1 / 4)
    token_mask = (TARGETS != PAD_ID).astype("float32")
    token_mask[1, 1] = 0.0  # ignore the one wrong token
    per_token = SequenceExactMatch()
    per_token.update_state(TARGETS, logits_for(PREDICTED), sample_weight=token_mask)
    assert float(per_token.result()) == 1.0


@pytest.mark.parametrize("cls", [MaskedAccuracy, SequenceExactMatch])
def test_config_round_trip_and_bad_pad_id(cls):
    metric = cls(pad_id=5, name="m")
    config = metric.get_config()
    assert json.loads(json.dumps(config)) == config and config["pad_id"] == 5
    assert cls.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(restored) is cls and restored.get_config() == config
    with pytest.raises(ValueError, match="pad_id='0'"):
        cls(pad_id="0")


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_compiled_metrics_survive_keras_save_and_load(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), dtype="int32")
    hidden = keras.layers.Embedding(VOCAB, 8, mask_zero=True)(inputs)
    hidden = keras.layers.GRU(8, return_sequences=True)(hidden)
    model = keras.Model(inputs, keras.layers.Dense(VOCAB)(hidden))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[MaskedAccuracy(), SequenceExactMatch()])
    model.fit(TARGETS, TARGETS, epochs=2, verbose=0)
    before = model.evaluate(TARGETS, TARGETS, verbose=0, return_dict=True)
    reference = MaskedAccuracy()
    reference.update_state(TARGETS, model.predict(TARGETS, verbose=0))
    assert before["masked_accuracy"] == pytest.approx(float(reference.result()))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.evaluate(TARGETS, TARGETS, verbose=0, return_dict=True) == before
