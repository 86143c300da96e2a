"""Classifier runs: saliency-weight default, labels, masks into the dataset, per-word attention, run dir round trip."""

from pathlib import Path

import numpy as np
import pytest

from seq2seq.runs import classification
from seq2seq.runs.classification import (DEFAULT_SALIENCY_WEIGHT, ClassifierRunConfig, label_vocabulary,
                                    resolve_saliency_weight, with_overrides)
from seq2seq.data.generated import generate_labeled
from seq2seq.data.reader import LabeledText
from seq2seq.errors import UserError

TOKENIZER = str(Path(__file__).resolve().parents[1] / "tokenizers" / "generated.model")
MASKED = [LabeledText("pos", "alfa sunel bata", (0, 1, 1)), LabeledText("neg", "omeg grumok", (0, 1))]
UNMASKED = [LabeledText("pos", "alfa sunel bata"), LabeledText("neg", "omeg grumok")]


def test_default_weight_applies_only_to_masked_data():
    assert DEFAULT_SALIENCY_WEIGHT > 0
    assert resolve_saliency_weight(None, MASKED) == DEFAULT_SALIENCY_WEIGHT
    assert resolve_saliency_weight(None, UNMASKED) == 0.0
    assert resolve_saliency_weight(0.0, MASKED) == 0.0  # an explicit 0 turns the penalty off
    assert resolve_saliency_weight(3, UNMASKED) == 3.0
    with pytest.raises(UserError, match="-1"):
        resolve_saliency_weight(-1.0, MASKED)


def test_labels_are_sorted_and_need_two_classes():
    assert label_vocabulary(MASKED + [LabeledText("maybe", "x")]) == ["maybe", "neg", "pos"]
    with pytest.raises(UserError, match="at least 2 labels"):
        label_vocabulary(MASKED[:1])
    with pytest.raises(UserError, match="'maybe'"):
        classification.label_ids(["neg", "pos"], [LabeledText("maybe", "x")])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run on masked data, trained and loaded back from its directory.

    Weight 0: tracing the double-backprop step costs tens of seconds; the CLI test trains with the penalty.
    """
    config = with_overrides(ClassifierRunConfig(), tokenizer={"model": TOKENIZER},
                            model={"units": 4, "embed_dim": 4, "bidirectional": False, "saliency_weight": 0.0},
                            train={"epochs": 1})
    out = tmp_path_factory.mktemp("run")
    metrics = classification.train_run(config, generate_labeled(40, seed=1), generate_labeled(10, seed=2), out,
                                       progress=False, log=lambda message: None)
    return metrics, classification.load_run(out)


def test_masks_become_the_annotation_of_the_decoy_pieces(run):
    _, loaded = run
    dataset = classification.make_dataset(MASKED, loaded.labels, loaded.tokenizer, loaded.config, training=False)
    rows = {}
    for (ids, annotation), labels in dataset.as_numpy_iterator():
        for row_ids, row_annotation, label in zip(ids, annotation, labels):
            rows[int(label)] = (row_ids, row_annotation)
    ids, annotation = rows[loaded.labels.index("neg")]  # "omeg grumok" + END
    decoy_pieces = len(loaded.tokenizer.tokenize(["omeg"]).numpy()[0])
    real = ids != 0
    np.testing.assert_array_equal(annotation[real], [0.0] * decoy_pieces + [1.0] * (real.sum() - decoy_pieces))


def test_run_directory_round_trip(run):
    metrics, loaded = run
    assert loaded.labels == ["neg", "pos"] and loaded.config.model.bidirectional is False
    assert loaded.classifier.bidirectional is False and loaded.classifier.units == 4
    assert metrics["valid"]["examples"] == 10
    texts = [e.text for e in generate_labeled(8, seed=3)]
    ids, _ = classification._encode_with_words(loaded, texts)
    reloaded = classification.load_run(loaded.directory)
    np.testing.assert_allclose(reloaded.classifier(ids)["probabilities"], loaded.classifier(ids)["probabilities"],
                               atol=1e-6)
    assert classification.evaluate_examples(reloaded, generate_labeled(10, seed=2)) == metrics["valid"]


def test_word_attention_sums_the_pieces_of_each_word(run):
    _, loaded = run
    texts = ["alfa zzqxwv sunel", "omeg  grumok\tbata"]  # an unknown word splits into several pieces
    ids, piece_words = classification._encode_with_words(loaded, texts)
    assert len(piece_words[0]) > 3 and sorted(set(piece_words[0])) == [0, 1, 2]
    result = classification.classify_texts(loaded, texts)
    attention = loaded.classifier(ids)["attention"].numpy()
    for row, words in enumerate(piece_words):
        expected = np.bincount(words, weights=attention[row, :len(words)], minlength=len(texts[row].split()))
        np.testing.assert_allclose(result["word_attention"][row], expected, atol=1e-5)
        assert result["word_attention"][row].sum() + result["end_attention"][row] == pytest.approx(1.0, abs=1e-5)


def test_the_default_weight_is_the_recommended_one():
    """classification writes the number out (its import must not start TensorFlow); saliency owns it."""
    from seq2seq.saliency import RECOMMENDED_WEIGHTS

    reduction = ClassifierRunConfig().model.saliency_reduction
    assert DEFAULT_SALIENCY_WEIGHT == RECOMMENDED_WEIGHTS[reduction]
