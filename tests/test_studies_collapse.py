"""`seq2seq.studies.collapse_setups` and `seq2seq.studies.collapse_study`: the end-token collapse study."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from seq2seq.studies import collapse_setups
from seq2seq.studies import collapse_study
from seq2seq.data.generated import generate_pairs
from seq2seq.losses import BoundaryAwareLoss, MaskedSparseCrossentropy, end_token_class_weights
from seq2seq.tokens import END_ID, PAD_ID, START_ID

REPO = Path(__file__).resolve().parents[1]
GENERATED_MODEL = REPO / "tokenizers" / "generated.model"
VOCAB = 8


def tokenizer():
    from seq2seq.tokenizer import SentencePieceTokenizer

    return SentencePieceTokenizer.from_file(GENERATED_MODEL)


def study_batches(pairs, pad_length=8):
    from seq2seq.data.pipeline import make_translation_dataset

    config = collapse_study.batching_config(collapse_study.StudyConfig(pad_length=pad_length, batch_size=len(pairs)))
    return make_translation_dataset([p.source for p in pairs], [p.target for p in pairs], tokenizer(),
                                    config, training=False)


# --------------------------------------------------------------------------- END padding


def test_end_pad_is_the_users_padding():
    target_in = np.array([[START_ID, 12, 7, PAD_ID, PAD_ID], [START_ID, 5, 6, 9, PAD_ID]])
    target_out = np.array([[12, 7, END_ID, PAD_ID, PAD_ID], [5, 6, 9, END_ID, PAD_ID]])
    assert collapse_setups.end_pad(target_in).numpy().tolist() == [[START_ID, 12, 7, END_ID, END_ID],
                                                                   [START_ID, 5, 6, 9, END_ID]]
    assert collapse_setups.end_pad(target_out).numpy().tolist() == [[12, 7, END_ID, END_ID, END_ID],
                                                                    [5, 6, 9, END_ID, END_ID]]


def test_end_padded_dataset_replaces_only_the_target_padding():
    pairs = generate_pairs("dedup", 6, seed=0)
    zero_padded = list(study_batches(pairs).as_numpy_iterator())
    end_padded = list(collapse_setups.end_padded_dataset(study_batches(pairs)).as_numpy_iterator())
    assert len(zero_padded) == len(end_padded) == 1
    ((source, target_in), target_out), ((source_e, target_in_e), target_out_e) = zero_padded[0], end_padded[0]
    assert target_out.shape == (6, 8)  # one padded length for every row
    np.testing.assert_array_equal(source_e, source)  # the source keeps its 0 padding
    np.testing.assert_array_equal(target_in_e, np.where(target_in == PAD_ID, END_ID, target_in))
    np.testing.assert_array_equal(target_out_e, np.where(target_out == PAD_ID, END_ID, target_out))
    # Row by row: [START, pieces..., END, END, ...] in, [pieces..., END, END, ...] out.
    pieces = tokenizer().tokenize([p.target for p in pairs]).to_list()
    for row, ids in enumerate(pieces):
        assert target_in_e[row].tolist() == [START_ID, *ids] + [END_ID] * (8 - 1 - len(ids))
        assert target_out_e[row].tolist() == [*ids] + [END_ID] * (8 - len(ids))


# --------------------------------------------------------------------------- losses


def setup(name):
    return {s.name: s for s in collapse_setups.SETUPS + collapse_setups.EXTRA_SETUPS}[name]


def log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def test_naive_loss_counts_the_end_padding_and_the_masked_loss_does_not():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, VOCAB)).astype("float32")
    zero_padded = np.array([[4, 5, END_ID, 0, 0], [6, END_ID, 0, 0, 0]])
    end_padded = collapse_setups.end_pad(zero_padded).numpy()
    nll = -np.take_along_axis(log_softmax(logits), end_padded[..., None], axis=-1)[..., 0]
    naive = collapse_setups.make_loss(setup("naive"), end_padded, VOCAB)
    masked = collapse_setups.make_loss(setup("masked"), zero_padded, VOCAB)
    assert float(naive(end_padded, logits)) == pytest.approx(nll.mean(), rel=1e-5)  # all 10 positions
    real = zero_padded != 0
    assert float(masked(zero_padded, logits)) == pytest.approx(nll[real].mean(), rel=1e-5)  # 5 tokens
    # Changing the logits where the targets are padding moves only the naive loss.
    changed = logits.copy()
    changed[~real] += 3.0 * rng.normal(size=changed[~real].shape).astype("float32")
    assert float(naive(end_padded, changed)) != pytest.approx(float(naive(end_padded, logits)))
    assert float(masked(zero_padded, changed)) == pytest.approx(float(masked(zero_padded, logits)))


def test_always_end_beats_a_uniform_guess_only_under_the_naive_loss():
    """The cheap way to lower the naive loss: put most of the probability on END everywhere."""
    zero_padded = np.array([[4, 5, 6, END_ID] + [0] * 12])  # 4 real tokens, 12 padding
    end_padded = collapse_setups.end_pad(zero_padded).numpy()
    uniform = np.zeros((1, 16, VOCAB), "float32")
    always_end = np.zeros((1, 16, VOCAB), "float32")
    always_end[..., END_ID] = 4.0
    naive = collapse_setups.make_loss(setup("naive"), end_padded, VOCAB)
    masked = collapse_setups.make_loss(setup("masked"), zero_padded, VOCAB)
    assert float(naive(end_padded, always_end)) < float(naive(end_padded, uniform))
    assert float(masked(zero_padded, always_end)) > float(masked(zero_padded, uniform))


def test_end_weighted_is_the_plain_loss_with_the_users_end_weight():
    zero_padded = np.array([[4, 5, END_ID, 0, 0, 0], [6, 4, 4, 5, END_ID, 0]])
    end_padded = collapse_setups.end_pad(zero_padded).numpy()
    loss = collapse_setups.make_loss(setup("end_weighted"), end_padded, VOCAB)
    counts = np.bincount(end_padded.ravel(), minlength=VOCAB)  # END: 6 (2 real + 4 padding)
    others = counts[(np.arange(VOCAB) != END_ID) & (counts > 0)]
    assert loss.class_weights[END_ID] == pytest.approx(others.mean() / counts[END_ID])
    assert loss.class_weights[END_ID] == pytest.approx(end_token_class_weights(end_padded, VOCAB)[END_ID])
    # With END-padded targets nothing is masked: weights of 1 give the plain Keras mean.
    logits = np.random.default_rng(1).normal(size=(2, 6, VOCAB)).astype("float32")
    unweighted = MaskedSparseCrossentropy(class_weights=np.ones(VOCAB))
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert float(unweighted(end_padded, logits)) == pytest.approx(float(plain(end_padded, logits)), rel=1e-5)


def test_end_pad_weighted_gives_the_users_weight_to_the_end_padding_only():
    zero_padded = np.array([[4, 5, END_ID, 0, 0, 0], [6, 4, 4, 5, END_ID, 0]])
    end_padded = collapse_setups.end_pad(zero_padded).numpy()
    fix = setup("end_pad_weighted")
    weight = collapse_setups.end_weight(fix, end_padded, VOCAB)
    assert weight == pytest.approx(end_token_class_weights(end_padded, VOCAB)[END_ID])
    assert weight == collapse_setups.end_weight(setup("end_weighted"), end_padded, VOCAB)
    assert collapse_setups.end_weight(setup("boundary"), end_padded, VOCAB) == 1.0
    loss = collapse_setups.make_loss(fix, end_padded, VOCAB)
    assert isinstance(loss, MaskedSparseCrossentropy) and loss.class_weights is None
    import tensorflow as tf

    inputs = (np.zeros((2, 3), "int32"), np.zeros((2, 6), "int32"))
    dataset = tf.data.Dataset.from_tensors((inputs, end_padded))
    weighted = collapse_setups.weighted_dataset(fix, dataset, end_padded, VOCAB)
    [(_, target_out, weights)] = list(weighted.as_numpy_iterator())
    np.testing.assert_array_equal(target_out, end_padded)
    w = weight
    np.testing.assert_allclose(weights, [[1, 1, 1, w, w, w], [1, 1, 1, 1, 1, w]], rtol=1e-6)
    # Every other setup trains on the batches as they are.
    assert collapse_setups.weighted_dataset(setup("end_weighted"), dataset, end_padded, VOCAB) is dataset


def test_the_fixes_losses():
    targets = np.array([[4, END_ID, END_ID]])
    assert isinstance(collapse_setups.make_loss(setup("boundary"), targets, VOCAB), BoundaryAwareLoss)
    masked_weighted = collapse_setups.make_loss(setup("masked_end_weighted"), np.array([[4, 5, END_ID, 0]]), VOCAB)
    assert masked_weighted.class_weights[END_ID] == pytest.approx(1.0)  # 4, 5 and END once each
    assert [s.name for s in collapse_setups.SETUPS] == ["naive", "masked", "end_pad_weighted", "boundary",
                                                        "end_weighted"]
    assert [s.end_padded for s in collapse_setups.SETUPS] == [True, False, True, True, True]


def test_study_config_refuses_bad_values():
    with pytest.raises(ValueError, match="corpus='wmt'"):
        collapse_study.StudyConfig(corpus="wmt")
    with pytest.raises(ValueError, match="pad_length=1"):
        collapse_study.StudyConfig(pad_length=1)


# --------------------------------------------------------------------------- end to end


def test_tiny_study_writes_reports_and_end_dominates_only_the_naive_targets(tmp_path):
    config = collapse_study.StudyConfig(tokenizer_model=str(GENERATED_MODEL), train_pairs=64, test_pairs=8,
                                        pad_length=12, batch_size=32, embed_dim=8, units=8, epochs=1,
                                        probe_size=4, deterministic=False)
    results = collapse_study.run_study(config, tmp_path, setups=("naive", "masked", "end_pad_weighted"),
                                       log=lambda _: None)
    naive, masked, weighted = results
    assert naive["target_end_share"] > 0.5 > masked["target_end_share"]
    assert naive["end_weight"] == 1.0 and 0 < weighted["end_weight"] < 0.1  # trained with sample weights
    assert naive["verdict_with_targets"] != "healthy"  # END-padded, unmasked targets
    assert len(naive["epoch_verdicts"]) == 1
    report = json.loads((tmp_path / "results.json").read_text())
    assert [r["setup"] for r in report["results"]] == ["naive", "masked", "end_pad_weighted"]
    for name in ("naive", "masked"):
        diagnosis = json.loads((tmp_path / name / "diagnosis.json").read_text())
        assert diagnosis["kind"] == "ids" and diagnosis["num_outputs"] == 8
        assert (tmp_path / name / "end_by_position.png").exists()
    assert "naive" in collapse_study.results_table(results)
