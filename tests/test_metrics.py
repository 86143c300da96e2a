"""seq2seq.metrics: configuration and arguments.

The numeric cases (padding-free token accuracy and sequence exact match,
pooling across batches, sample_weight, Keras masks, all-padding batches,
`.keras` round trips) live in tests/metric_cases.py and run on every installed
Keras backend, TensorFlow included, through tests/test_backends.py (one
subprocess per backend).
"""

import json

import keras
import pytest

from seq2seq.metrics import MaskedAccuracy, SequenceExactMatch


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
