"""Classifier: one pass gives probabilities and attention, padding, fast predict, saving, sharing."""

import keras
import numpy as np
import pytest

from seq2seq.models.classifier import Classifier
from seq2seq.models.translator import Translator
from seq2seq.tokens import PAD_ID

VOCAB, CLASSES = 30, 3
SMALL = dict(vocab_size=VOCAB, num_classes=CLASSES, embed_dim=8, units=8)


def padded_ids(rng, lengths, width=None):
    ids = np.zeros((len(lengths), width or max(lengths)), np.int32)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(4, VOCAB, size=length)
    return ids


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def model():
    return Classifier(**SMALL, encoder_layers=2)


def numpy_outputs(outputs):
    return {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}


def test_one_pass_gives_probabilities_and_attention(model, rng):
    ids = padded_ids(rng, [4, 9, 1])
    outputs = numpy_outputs(model(ids))
    assert outputs["logits"].shape == outputs["probabilities"].shape == (3, CLASSES)
    assert outputs["attention"].shape == (3, 9)
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(outputs["attention"].sum(axis=-1), 1.0, rtol=1e-6)
    assert np.all(outputs["attention"][ids == PAD_ID] == 0.0)


def test_padding_changes_nothing(model, rng):
    """Variable lengths: a sequence gives the same outputs however far it is padded."""
    ids = padded_ids(rng, [5, 2])
    short, long = numpy_outputs(model(ids)), numpy_outputs(model(np.pad(ids, ((0, 0), (0, 7)))))
    np.testing.assert_allclose(long["probabilities"], short["probabilities"], atol=1e-6)
    np.testing.assert_allclose(long["attention"][:, :5], short["attention"], atol=1e-6)
    assert np.all(long["attention"][:, 5:] == 0.0)


def test_annotation_is_split_off(model, rng):
    ids = padded_ids(rng, [3, 4])
    annotation = np.ones(ids.shape, "float32")
    assert model.split_inputs((ids, annotation))[1] is annotation
    assert model.split_inputs(ids) == (ids, None)
    np.testing.assert_array_equal(model((ids, annotation))["probabilities"], model(ids)["probabilities"])
    with pytest.raises(ValueError, match="length 3"):
        model.split_inputs((ids, annotation, annotation))


@pytest.mark.parametrize("jit_compile, batch_size", [(False, 16), (True, 64)])
def test_predict_with_attention_equals_call(model, rng, jit_compile, batch_size):
    ids = padded_ids(rng, rng.integers(1, 20, size=37), width=24)  # sorted, cut and padded inside
    expected = numpy_outputs(model(ids))
    got = model.predict_with_attention(ids, batch_size=batch_size, jit_compile=jit_compile)
    assert set(got) == {"labels", "probabilities", "attention"}
    np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-6)
    np.testing.assert_allclose(got["attention"], expected["attention"], atol=1e-6)
    np.testing.assert_array_equal(got["labels"], expected["probabilities"].argmax(axis=-1))
    assert np.all(got["attention"][ids == PAD_ID] == 0.0)


def test_predict_with_attention_edge_cases(model):
    assert model.predict_with_attention(np.zeros((0, 5), np.int32))["attention"].shape == (0, 5)
    single = model.predict_with_attention([[5, 6, 7]])
    assert single["probabilities"].shape == (1, CLASSES) and single["attention"].shape == (1, 3)
    with pytest.raises(ValueError, match=r"Received shape: \(3,\)"):
        model.predict_with_attention([5, 6, 7])


def test_use_cudnn_and_config_round_trip():
    assert Classifier(**SMALL).use_cudnn == "auto"
    model = Classifier(**SMALL, bidirectional=False, dropout=0.3, saliency_weight=2.0)
    config = model.get_config()
    assert config["use_cudnn"] is False and config["bidirectional"] is False
    assert Classifier.from_config(config).get_config() == config
    with pytest.raises(ValueError, match="use_cudnn='auto'"):
        Classifier(**SMALL, saliency_weight=1.0, use_cudnn="auto")
    with pytest.raises(ValueError, match="num_classes=0"):
        Classifier(vocab_size=VOCAB, num_classes=0)


def test_keras_save_and_load_gives_identical_outputs(rng, tmp_path):
    model = Classifier(**SMALL, dropout=0.2, saliency_weight=1.0)
    ids = padded_ids(rng, [6, 2, 4])
    before = numpy_outputs(model(ids))
    path = tmp_path / "classifier.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, Classifier) and loaded.get_config() == model.get_config()
    after = numpy_outputs(loaded(ids))
    for key in ("logits", "probabilities", "attention"):
        np.testing.assert_array_equal(before[key], after[key])
    assert all(lstm.forward_layer.use_cudnn is False and lstm.backward_layer.use_cudnn is False
               for lstm in loaded.encoder.lstms)
    np.testing.assert_allclose(loaded.predict_with_attention(ids)["probabilities"],
                               before["probabilities"], atol=1e-6)


def test_from_translator_shares_the_encoder(rng, tmp_path):
    translator = Translator(vocab_size=VOCAB, embed_dim=8, units=4, bidirectional=True)
    model = Classifier.from_translator(translator, num_classes=2)
    assert model.source_embedding is translator.source_embedding
    assert model.encoder is translator.encoder
    assert model.get_config()["units"] == 4 and model.get_config()["bidirectional"]
    ids = padded_ids(rng, [3, 5])
    before = numpy_outputs(model(ids))
    embeddings = translator.source_embedding.embeddings
    embeddings.assign(embeddings + 0.5)  # training the translator moves the classifier too
    changed = numpy_outputs(model(ids))
    assert not np.allclose(changed["probabilities"], before["probabilities"])
    path = tmp_path / "shared.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # reloads alone, with its own copy
    np.testing.assert_array_equal(numpy_outputs(loaded(ids))["attention"], changed["attention"])
    with pytest.raises(ValueError, match="use_cudnn=False"):
        Classifier.from_translator(translator, num_classes=2, saliency_weight=1.0)
    penalized = Translator(vocab_size=VOCAB, embed_dim=8, units=4, saliency_weight=1.0)
    assert Classifier.from_translator(penalized, 2, saliency_weight=1.0).use_cudnn is False
    assert Classifier.from_translator(penalized, 2).use_cudnn is False  # follows the encoder


def test_a_bfloat16_classifier_reloads_with_bfloat16_layers(rng, tmp_path):
    model = Classifier(**SMALL, dtype="mixed_bfloat16")
    assert {layer.dtype_policy.name for layer in model._flatten_layers()} == {"mixed_bfloat16"}
    ids = padded_ids(rng, [6, 2, 4])
    before = numpy_outputs(model(ids))
    path = tmp_path / "classifier.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert {layer.dtype_policy.name for layer in loaded._flatten_layers()} == {"mixed_bfloat16"}
    np.testing.assert_array_equal(before["probabilities"], numpy_outputs(loaded(ids))["probabilities"])
