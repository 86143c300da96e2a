"""Translator: shapes, source masking, incremental == teacher-forced, config and .keras round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq import decoding
from seq2seq.models.translator import Translator
from seq2seq.tokens import END_ID, PAD_ID, START_ID

VOCAB, TARGET_VOCAB = 30, 25
SMALL = dict(vocab_size=VOCAB, target_vocab_size=TARGET_VOCAB, embed_dim=8, units=8)


def batch(rng, source_lengths=(3, 6, 1), target_lengths=(4, 2, 5)):
    """Right-padded (source_ids, target_in) with the given real lengths."""
    source = np.zeros((len(source_lengths), max(source_lengths)), np.int32)
    target = np.zeros((len(target_lengths), max(target_lengths)), np.int32)
    for row, length in enumerate(source_lengths):
        source[row, :length] = rng.integers(4, VOCAB, size=length)
        source[row, length - 1] = END_ID
    for row, length in enumerate(target_lengths):
        target[row, :length] = rng.integers(4, TARGET_VOCAB, size=length)
        target[row, 0] = START_ID
    return source, target


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_outputs_shapes_and_source_mask(rng, bidirectional, attention):
    model = Translator(**SMALL, bidirectional=bidirectional, attention=attention)
    source, target = batch(rng)
    outputs = model((source, target))
    assert tuple(outputs["logits"].shape) == (3, 5, TARGET_VOCAB)
    weights = keras.ops.convert_to_numpy(outputs["attention"])
    assert weights.shape == (3, 5, 6)
    padding = np.broadcast_to((source == PAD_ID)[:, None, :], weights.shape)
    assert np.all(weights[padding] == 0.0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)


def test_annotation_is_split_off(rng):
    model = Translator(**SMALL)
    source, target = batch(rng)
    annotation = (source != PAD_ID).astype("float32")
    inputs, split = model.split_inputs((source, target, annotation))
    assert split is annotation and inputs[0] is source and inputs[1] is target
    assert model.split_inputs((source, target))[1] is None
    np.testing.assert_array_equal(model((source, target, annotation))["logits"],
                                  model((source, target))["logits"])
    with pytest.raises(ValueError, match="length 1"):
        model.split_inputs((source,))


def teacher_forced_and_stepped(model, source, target):
    outputs = model((source, target))
    state = model.encode(source)
    step_logits, step_attention = [], []
    for t in range(target.shape[1]):
        logits, state, attention = model.decode_step(target[:, t], state)
        step_logits.append(logits)
        step_attention.append(attention)
    return outputs, np.stack(step_logits, axis=1), np.stack(step_attention, axis=1)


@pytest.mark.parametrize("config", [
    dict(attention="luong"),
    dict(attention="bahdanau", bidirectional=True, encoder_layers=2),
    dict(attention="luong", bidirectional=True, encoder_layers=1, decoder_layers=2),
    dict(attention="luong", input_feeding=True),
    dict(attention="bahdanau", input_feeding=True, bidirectional=True, decoder_layers=2),
    dict(attention="luong", memory_embeddings=True, input_feeding=True),
    dict(attention="bahdanau", memory_embeddings=True, bidirectional=True),
    dict(attention="luong", memory_embeddings=True, scaled_attention=True),
    dict(attention="luong", scaled_attention=True, input_feeding=True),
])
def test_decode_step_equals_teacher_forcing(rng, config):
    model = Translator(**SMALL, **config)
    source, target = batch(rng)
    outputs, logits, attention = teacher_forced_and_stepped(model, source, target)
    real = target != PAD_ID  # positions after a target's end are not compared
    np.testing.assert_allclose(logits[real], keras.ops.convert_to_numpy(outputs["logits"])[real],
                               atol=1e-5)
    np.testing.assert_allclose(attention[real], keras.ops.convert_to_numpy(outputs["attention"])[real],
                               atol=1e-6)
    assert np.all(attention[np.broadcast_to((source == PAD_ID)[:, None], attention.shape)] == 0)


def test_state_has_a_leading_batch_axis_and_tiles(rng):
    model = Translator(**SMALL, bidirectional=True, decoder_layers=2, attention="bahdanau")
    source, _ = batch(rng)
    state = model.encode(source)
    assert set(state) == {"memory", "memory_keys", "memory_mask", "context",
                          "h_0", "c_0", "h_1", "c_1"}
    assert all(value.shape[0] == 3 for value in state.values())
    assert tuple(state["h_0"].shape) == (3, 16)  # bidirectional: 2 * units
    tokens = np.full((3,), START_ID, np.int32)
    logits, new_state, _ = model.decode_step(tokens, state)
    assert set(new_state) == set(state)
    tiled = {key: keras.ops.repeat(value, 2, axis=0) for key, value in state.items()}  # beam of 2
    tiled_logits, _, _ = model.decode_step(np.repeat(tokens, 2), tiled)
    np.testing.assert_allclose(tiled_logits, np.repeat(logits, 2, axis=0), atol=1e-6)


def test_decode_step_runs_in_a_graph_loop(rng):
    """Greedy decoding as a tf.while_loop over decode_step gives the eager result."""
    model = Translator(**SMALL, attention="bahdanau")
    source, _ = batch(rng)

    def greedy(source, steps):
        state = model.encode(source)
        tokens = tf.fill([tf.shape(source)[0]], START_ID)
        output = tf.TensorArray(tf.int32, size=steps)

        def body(t, tokens, state, output):
            logits, state, _ = model.decode_step(tokens, state)
            tokens = tf.argmax(logits, axis=-1, output_type=tf.int32)
            return t + 1, tokens, state, output.write(t, tokens)

        _, _, _, output = tf.while_loop(lambda t, *_: t < steps, body, (0, tokens, state, output))
        return tf.transpose(output.stack())

    np.testing.assert_array_equal(tf.function(greedy)(source, 4), greedy(source, 4))


def test_use_cudnn_follows_saliency_weight():
    assert Translator(**SMALL).use_cudnn == "auto"
    assert Translator(**SMALL, saliency_weight=1.0).use_cudnn is False
    assert Translator(**SMALL, use_cudnn=False).use_cudnn is False
    with pytest.raises(ValueError, match="use_cudnn=True"):
        Translator(**SMALL, saliency_weight=1.0, use_cudnn=True)
    with pytest.raises(ValueError, match="use_cudnn='yes'"):
        Translator(**SMALL, use_cudnn="yes")


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="score='dot'"):
        Translator(**SMALL, attention="dot")
    with pytest.raises(ValueError, match="dropout=1.5"):
        Translator(**SMALL, dropout=1.5)
    with pytest.raises(ValueError, match="vocab_size=0"):
        Translator(vocab_size=0)


def test_config_round_trip():
    model = Translator(**SMALL, encoder_layers=2, bidirectional=True, attention="bahdanau",
                       dropout=0.1, saliency_weight=0.5, saliency_reduction="sum_squared")
    config = model.get_config()
    assert config["use_cudnn"] is False and config["decoder_layers"] == 2
    assert config["attention"] == "bahdanau" and config["saliency_weight"] == 0.5
    assert Translator.from_config(config).get_config() == config


def test_scaled_attention_is_saved_and_a_config_without_it_loads_unscaled():
    model = Translator(**SMALL, scaled_attention=True)
    config = model.get_config()
    assert config["scaled_attention"] is True and model.attention.scale_scores is True
    older = {key: value for key, value in config.items() if key != "scaled_attention"}  # saved before the option
    assert Translator.from_config(older).attention.scale_scores is False


def all_lstms(model):
    lstms = list(model.decoder_lstms)
    for layer in model.encoder.lstms:
        lstms += [layer.forward_layer, layer.backward_layer] if model.bidirectional else [layer]
    return lstms


def test_keras_save_and_load_gives_identical_outputs(rng, tmp_path):
    model = Translator(**SMALL, bidirectional=True, attention="bahdanau", dropout=0.2,
                       saliency_weight=1.0)
    source, target = batch(rng)
    before = model((source, target))
    path = tmp_path / "translator.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, Translator) and loaded.get_config() == model.get_config()
    after = loaded((source, target))
    for key in ("logits", "attention"):
        np.testing.assert_array_equal(before[key], after[key])
    assert loaded.use_cudnn is False
    assert all(lstm.use_cudnn is False for lstm in all_lstms(loaded))
    step_before, _, _ = model.decode_step(target[:, 0], model.encode(source))
    step_after, _, _ = loaded.decode_step(target[:, 0], loaded.encode(source))
    np.testing.assert_array_equal(step_before, step_after)


def test_built_at_construction_so_it_saves_and_encodes_before_any_call(rng, tmp_path):
    source, target = batch(rng)
    assert set(Translator(**SMALL).encode(source)) >= {"memory", "h_0", "c_0"}
    path = tmp_path / "fresh.keras"
    Translator(**SMALL).save(path)
    assert tuple(keras.saving.load_model(path)((source, target))["logits"].shape) == (3, 5, TARGET_VOCAB)


def test_decoder_features_project_to_the_logits(rng):
    model = Translator(**SMALL)
    source, target = batch(rng)
    embedded = model.embed_source((source, target))
    features, attention = model.decoder_features((source, target), embedded)
    assert tuple(features.shape) == (3, 5, 8)
    outputs = model.forward((source, target), embedded)
    np.testing.assert_array_equal(model.project(features), outputs["logits"])
    np.testing.assert_array_equal(attention, outputs["attention"])


def compiled_pair(project_real_only_values=(True, False)):
    """Translators with identical weights, one per `project_real_only` value, compiled alike."""
    from seq2seq.losses import MaskedSparseCrossentropy

    models = []
    for value in project_real_only_values:
        keras.utils.set_random_seed(0)
        model = Translator(**SMALL, project_real_only=value)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=MaskedSparseCrossentropy())
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    return models


def target_out_of(target):
    """target_out for `batch`'s target_in: shifted left, same padding."""
    out = np.zeros_like(target)
    out[:, :-1] = target[:, 1:]
    out[target == PAD_ID] = PAD_ID
    out[(target != PAD_ID) & (out == PAD_ID)] = END_ID
    return out


def test_real_positions_step_matches_the_padded_step(rng):
    """Projecting only real positions gives the padded step's loss, metrics and updates."""
    gathered, padded = compiled_pair()
    source, target = batch(rng)
    target_out = target_out_of(target)
    for model in (gathered, padded):
        model.train_on_batch((source, target), target_out)
    metrics = [model.test_on_batch((source, target), target_out, return_dict=True) for model in (gathered, padded)]
    for key in ("loss", "accuracy", "tokens"):
        np.testing.assert_allclose(metrics[0][key], metrics[1][key], rtol=1e-5)
    assert metrics[0]["tokens"] == np.count_nonzero(target_out)
    for a, b in zip(gathered.get_weights(), padded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_real_positions_step_falls_back_for_sample_weights_and_saliency(rng):
    model = Translator(**SMALL, saliency_weight=1.0, project_real_only=True)
    source, target = batch(rng)
    annotation = (source != PAD_ID).astype("float32")
    target_out = target_out_of(target)
    real = np.count_nonzero(target_out)

    def loss_sees_positions(translator, x, sample_weight=None):
        from seq2seq.losses import MaskedSparseCrossentropy

        translator.compile(loss=MaskedSparseCrossentropy())
        inputs, annotation = translator.split_inputs(x)
        outputs, _, _, _, _ = translator._forward_and_losses(inputs, annotation, target_out, sample_weight,
                                                             training=False)
        return tuple(outputs["logits"].shape[:2])

    assert model.project_real_only
    assert loss_sees_positions(model, (source, target, annotation)) == target_out.shape  # penalty: all
    assert loss_sees_positions(model, (source, target)) == (1, real)  # gathered real positions
    assert loss_sees_positions(model, (source, target), np.ones(3, "float32")) == target_out.shape
    unprojected = Translator(**SMALL)  # the default: every position
    assert loss_sees_positions(unprojected, (source, target)) == target_out.shape


def test_a_bfloat16_translator_computes_in_bfloat16_and_reloads_as_it_was(rng, tmp_path):
    model = Translator(**SMALL, bidirectional=True, dtype="mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left alone
    layers = [layer for layer in model._flatten_layers() if layer is not model]
    assert {layer.dtype_policy.name for layer in layers} == {"mixed_bfloat16"}
    assert all(variable.dtype == "float32" for variable in model.trainable_variables)
    source, target = batch(rng)
    before = model((source, target))
    assert before["logits"].dtype == "float32"  # cast up for the softmax and the loss
    path = tmp_path / "translator.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert {layer.dtype_policy.name for layer in loaded._flatten_layers()} == {"mixed_bfloat16"}
    np.testing.assert_array_equal(before["logits"], loaded((source, target))["logits"])


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_beam_search_reads_each_sources_memory_once_with_the_same_result(rng, attention):
    model = Translator(**SMALL, bidirectional=True, attention=attention)
    source, _ = batch(rng)
    shared = decoding.encode_and_decode(model, source, beam_size=3, max_length=7)
    model.per_source_state = ()  # every entry tiled per beam slot
    tiled = decoding.encode_and_decode(model, source, beam_size=3, max_length=7)
    np.testing.assert_array_equal(shared.token_ids, tiled.token_ids)
    np.testing.assert_allclose(shared.log_probs, tiled.log_probs, atol=1e-5)
    np.testing.assert_allclose(shared.attention, tiled.attention, atol=1e-6)
