"""LSTMEncoder: output sizes, final states at the last real token, the fused inference path."""

import keras
import numpy as np
import pytest

from seq2seq.layers.encoder import LSTMEncoder
from seq2seq.tokens import PAD_ID


def padded_ids(rng, lengths, vocab=30):
    ids = np.zeros((len(lengths), max(lengths)), np.int32)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(4, vocab, size=length)
    return ids


@pytest.mark.parametrize("bidirectional, num_layers", [(False, 1), (True, 1), (False, 2), (True, 2)])
def test_infer_equals_call_at_real_tokens(bidirectional, num_layers):
    rng = np.random.default_rng(0)
    embedding = keras.layers.Embedding(30, 8, mask_zero=True)
    encoder = LSTMEncoder(6, num_layers=num_layers, bidirectional=bidirectional)
    ids = padded_ids(rng, [5, 1, 9, 3])
    outputs, states = encoder(embedding(ids), mask=ids != PAD_ID)
    assert tuple(outputs.shape) == (4, 9, encoder.output_dim)
    assert encoder.output_dim == (12 if bidirectional else 6) and len(states) == num_layers
    real = ids != PAD_ID
    for lookup_table in (True, False):
        fused = keras.ops.convert_to_numpy(encoder.infer(ids, embedding, lookup_table=lookup_table))
        np.testing.assert_allclose(fused[real], keras.ops.convert_to_numpy(outputs)[real], atol=1e-6)


def test_final_states_are_taken_at_the_last_real_token():
    rng = np.random.default_rng(1)
    embedding = keras.layers.Embedding(30, 8, mask_zero=True)
    encoder = LSTMEncoder(6, bidirectional=True)
    ids = padded_ids(rng, [2, 7])
    outputs, [(h, c)] = encoder(embedding(ids), mask=ids != PAD_ID)
    outputs, h = keras.ops.convert_to_numpy(outputs), keras.ops.convert_to_numpy(h)
    assert tuple(c.shape) == (2, 12)
    np.testing.assert_allclose(h[0, :6], outputs[0, 1, :6], atol=1e-6)  # forward: last real token
    np.testing.assert_allclose(h[0, 6:], outputs[0, 0, 6:], atol=1e-6)  # backward: first token
    alone, [(h_alone, _)] = encoder(embedding(ids[:1, :2]), mask=ids[:1, :2] != PAD_ID)
    np.testing.assert_allclose(h_alone[0], h[0], atol=1e-6)  # padding changes nothing


def test_config_round_trip_and_bad_arguments():
    encoder = LSTMEncoder(4, num_layers=2, bidirectional=True, dropout=0.1, use_cudnn=False)
    config = encoder.get_config()
    assert {"units": 4, "num_layers": 2, "bidirectional": True, "use_cudnn": False}.items() <= config.items()
    rebuilt = LSTMEncoder.from_config(config)
    assert rebuilt.get_config() == config
    assert all(lstm.forward_layer.use_cudnn is False and lstm.backward_layer.use_cudnn is False
               for lstm in rebuilt.lstms)
    with pytest.raises(ValueError, match="use_cudnn='no'"):
        LSTMEncoder(4, use_cudnn="no")
    with pytest.raises(ValueError, match="num_layers=0"):
        LSTMEncoder(4, num_layers=0)
