import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections import Counter

import numpy as np
import pytest
import sentencepiece
import tensorflow as tf

from seq2seq import tokens
from seq2seq.data.batching import BatchingConfig, real_token_fraction
from seq2seq.data.generated import generate_labeled, generate_pairs, generate_sentences
from seq2seq.data.pipeline import (
    encode_sources,
    expected_real_token_fraction,
    make_classification_dataset,
    make_translation_dataset,
    measure_real_token_fraction,
)
from seq2seq.errors import UserError
from seq2seq.tokenizer import SentencePieceTokenizer, train_sentencepiece_from_sentences

PAIRS = generate_pairs("dedup", 300, seed=0, min_words=1, max_words=9)
SOURCES = [pair.source for pair in PAIRS]
TARGETS = [pair.target for pair in PAIRS]
CONFIG = BatchingConfig(max_source_len=12, max_target_len=10, tokens_per_batch=96, bucket_lengths=(4, 6, 8))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    # A small vocabulary splits most words into several pieces.
    return train_sentencepiece_from_sentences(
        generate_sentences(2000, seed=0), tmp_path_factory.mktemp("spm"), name="tiny", vocab_size=48
    )


@pytest.fixture(scope="module")
def tokenizer(model_path):
    return SentencePieceTokenizer.from_file(model_path)


@pytest.fixture(scope="module")
def processor(model_path):
    return sentencepiece.SentencePieceProcessor(model_file=str(model_path))


@pytest.fixture(scope="module")
def batches(tokenizer):
    dataset = make_translation_dataset(SOURCES, TARGETS, tokenizer, CONFIG, training=True, seed=7)
    return list(dataset.as_numpy_iterator())


def _rows(ids: np.ndarray) -> list[tuple[int, ...]]:
    """The non-padding prefix of each row; asserts the rest is all padding."""
    rows = []
    for row in ids:
        length = int(np.count_nonzero(row))
        assert (row[length:] == tokens.PAD_ID).all() and (row[:length] != tokens.PAD_ID).all()
        rows.append(tuple(row[:length].tolist()))
    return rows


def _expected_example(processor, source, target, config=CONFIG):
    source_pieces = processor.encode(source)[: config.max_source_len - 1]
    target_pieces = processor.encode(target)[: config.max_target_len - 1]
    return (
        tuple(source_pieces) + (tokens.END_ID,),
        (tokens.START_ID,) + tuple(target_pieces),
        tuple(target_pieces) + (tokens.END_ID,),
    )


# --------------------------------------------------------------------------- translation


def test_every_example_appears_once_with_shifted_targets(batches, processor):
    found = Counter()
    for (source_ids, target_in), target_out in batches:
        assert source_ids.dtype == target_in.dtype == target_out.dtype == np.int32
        assert target_in.shape == target_out.shape
        found.update(zip(_rows(source_ids), _rows(target_in), _rows(target_out)))
    assert found == Counter(_expected_example(processor, s, t) for s, t in zip(SOURCES, TARGETS))


def test_truncation_keeps_the_end_token(batches):
    assert any(source_ids.shape[1] == CONFIG.max_source_len for (source_ids, _), _ in batches)
    for (source_ids, target_in), target_out in batches:
        for row in _rows(source_ids):
            assert row[-1] == tokens.END_ID and tokens.END_ID not in row[:-1]
            assert len(row) <= CONFIG.max_source_len
        for row_in, row_out in zip(_rows(target_in), _rows(target_out)):
            assert row_in[0] == tokens.START_ID and row_out[-1] == tokens.END_ID
            assert row_in[1:] == row_out[:-1] and len(row_out) <= CONFIG.max_target_len


def test_batches_take_only_the_fixed_shapes(batches):
    allowed = dict(zip(CONFIG.padded_shapes(), CONFIG.boundaries))
    shapes = Counter()
    for (source_ids, target_in), target_out in batches:
        shape = (source_ids.shape[1], target_out.shape[1])
        assert shape in allowed and target_in.shape == target_out.shape
        assert len(source_ids) <= CONFIG.batch_size(allowed[shape])
        shapes[shape] += 1
    assert 1 < len(shapes) <= len(allowed)
    # Full batches: at most one partial batch per bucket.
    assert len(batches) <= sum(-(-n // CONFIG.batch_size(allowed[s])) for s, n in _examples_per_shape(batches).items())


def _examples_per_shape(batches):
    counts = Counter()
    for (source_ids, _), target_out in batches:
        counts[(source_ids.shape[1], target_out.shape[1])] += len(source_ids)
    return counts


def test_real_token_fraction_matches_the_numpy_prediction(batches, processor):
    measured = measure_real_token_fraction(tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature=((tf.TensorSpec([None, None], tf.int32),) * 2, tf.TensorSpec([None, None], tf.int32)),
    ))
    source_counts = [len(processor.encode(s)) for s in SOURCES]
    target_counts = [len(processor.encode(t)) for t in TARGETS]
    expected = real_token_fraction(source_counts, target_counts, CONFIG)
    assert measured == pytest.approx(expected, abs=1e-12)
    assert 0.5 < measured < 1.0


def test_expected_real_token_fraction_counts_with_the_tokenizer(tokenizer, processor):
    expected = real_token_fraction([len(processor.encode(s)) for s in SOURCES], None, CONFIG)
    assert expected_real_token_fraction(SOURCES, None, tokenizer, CONFIG) == pytest.approx(expected)


def test_seeded_shuffle_is_deterministic(tokenizer, batches):
    def first_sources(seed, training=True):
        dataset = make_translation_dataset(SOURCES, TARGETS, tokenizer, CONFIG, training=training, seed=seed)
        return [inputs[0].tolist() for inputs, _ in dataset.take(4).as_numpy_iterator()]

    same = first_sources(7)
    assert same == [inputs[0].tolist() for inputs, _ in batches[:4]]
    assert first_sources(8) != same
    assert first_sources(0, training=False) == first_sources(1, training=False)


def test_padding_is_zero_never_end(tokenizer):
    dataset = make_translation_dataset(["bata"], ["zuro zuro zuro"], tokenizer, CONFIG, training=False)
    (source_ids, target_in), target_out = next(iter(dataset.as_numpy_iterator()))
    assert source_ids.shape[1] > 2 and source_ids[0, -1] == tokens.PAD_ID
    assert list(source_ids[0]).count(tokens.END_ID) == 1
    assert list(target_out[0]).count(tokens.END_ID) == 1


@pytest.fixture
def op_determinism():
    """Turns TensorFlow's op determinism on for one test (as `seq2seq train --seed` does), then off."""
    from tensorflow.python.framework import config as tf_config

    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        tf_config.disable_op_determinism()


def test_op_determinism_gives_the_same_batches(tokenizer, batches, op_determinism):
    dataset = make_translation_dataset(SOURCES, TARGETS, tokenizer, CONFIG, training=True, seed=7)
    again = list(dataset.as_numpy_iterator())
    assert len(again) == len(batches)
    for ((source, target_in), target_out), ((source2, target_in2), target_out2) in zip(batches, again):
        np.testing.assert_array_equal(source, source2)
        np.testing.assert_array_equal(target_in, target_in2)
        np.testing.assert_array_equal(target_out, target_out2)


# --------------------------------------------------------------------------- annotations


ANNOTATED = [
    ("bata kivi munta", [1, 0, 1]),
    ("  sunel\talfa   grumok ", [0, 1, 0]),  # extra and odd whitespace
    ("omeg \u00e9\u00e9 ris", [1, 0, 1]),      # a word made only of unknown characters
    ("lotakiviban", [0]),                   # one long word, cut by max_source_len
    ("", []),
]


def _expected_annotation(processor, text, values, max_len):
    projected = []
    for word, value in zip(text.split(), values):
        projected += [float(value)] * len(processor.encode(word))
    return tuple(projected[: max_len - 1]) + (1.0,)


def test_annotations_are_projected_onto_each_words_pieces(tokenizer, processor):
    config = BatchingConfig(max_source_len=8, max_target_len=8, tokens_per_batch=64, bucket_lengths=(4, 8))
    texts = [text for text, _ in ANNOTATED]
    values = [mask for _, mask in ANNOTATED]
    # The projection assumes a word's pieces are those of the word alone.
    assert all(processor.encode(t) == [i for w in t.split() for i in processor.encode(w)] for t in texts)
    dataset = make_translation_dataset(texts, texts, tokenizer, config, annotations=values, training=False)
    found = {}
    for (source_ids, _, annotation), _ in dataset.as_numpy_iterator():
        assert annotation.dtype == np.float32 and annotation.shape == source_ids.shape
        for ids, row in zip(_rows(source_ids), annotation):
            assert (row[len(ids):] == 0).all()
            found[ids] = tuple(row[: len(ids)].tolist())
    expected = {
        tuple(processor.encode(text)[: config.max_source_len - 1]) + (tokens.END_ID,):
            _expected_annotation(processor, text, mask, config.max_source_len)
        for text, mask in ANNOTATED
    }
    assert found == expected
    assert any(0.0 in row for row in found.values()) and len(expected) == len(ANNOTATED)


def test_annotation_length_must_match_the_words(tokenizer):
    with pytest.raises(UserError, match="annotation 1 has 2 values but its text has 3 whitespace words"):
        make_translation_dataset(["a b", "a b c"], ["x", "y"], tokenizer, CONFIG, annotations=[[1, 1], [1, 0]])


def test_misaligned_or_empty_inputs_are_refused(tokenizer):
    with pytest.raises(UserError, match="got 2 sources and 1 targets"):
        make_translation_dataset(["a", "b"], ["x"], tokenizer, CONFIG)
    with pytest.raises(UserError, match="no examples"):
        make_translation_dataset([], [], tokenizer, CONFIG)


# --------------------------------------------------------------------------- classification and inference


def test_classification_dataset_with_masks(tokenizer, processor):
    examples = generate_labeled(60, seed=0)
    texts = [example.text for example in examples]
    labels = [int(example.label == "pos") for example in examples]
    masks = [example.mask for example in examples]
    dataset = make_classification_dataset(texts, labels, tokenizer, CONFIG, masks=masks, training=True, seed=1)
    found = Counter()
    for (token_ids, annotation), label in dataset.as_numpy_iterator():
        assert token_ids.dtype == np.int32 and label.dtype == np.int32 and label.shape == (len(token_ids),)
        assert token_ids.shape[1] in {s for s, _ in CONFIG.padded_shapes()}
        found.update((ids, tuple(row[: len(ids)].tolist()), int(y))
                     for ids, row, y in zip(_rows(token_ids), annotation, label))
    expected = Counter(
        (_expected_example(processor, text, "")[0], _expected_annotation(processor, text, mask, CONFIG.max_source_len), y)
        for text, mask, y in zip(texts, masks, labels)
    )
    assert found == expected


def test_classification_dataset_without_masks(tokenizer):
    dataset = make_classification_dataset(["bata kivi", "sunel"], [0, 1], tokenizer, CONFIG, training=False)
    batches = list(dataset.as_numpy_iterator())
    assert all(token_ids.ndim == 2 for token_ids, _ in batches)
    assert sorted(y for _, labels in batches for y in labels.tolist()) == [0, 1]
    assert measure_real_token_fraction(dataset) == pytest.approx(
        expected_real_token_fraction(["bata kivi", "sunel"], None, tokenizer, CONFIG)
    )


def test_encode_sources_matches_the_dataset(tokenizer, processor):
    ids = encode_sources(tf.constant(SOURCES[:20]), tokenizer, CONFIG.max_source_len)
    assert [tuple(row) for row in ids.to_list()] == [_expected_example(processor, s, "")[0] for s in SOURCES[:20]]


class CountingTokenizer:
    """`tokenizer` with a counter of the strings it tokenizes (in the graph, through tf.py_function)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.strings = tokenizer, 0

    def _count(self, strings):
        def add(n):
            self.strings += int(n)
            return n

        return tf.py_function(add, [tf.size(strings)], tf.int32)

    def tokenize(self, strings):
        with tf.control_dependencies([self._count(strings)]):
            return self.tokenizer.tokenize(tf.identity(strings))


def test_examples_are_tokenized_once_however_many_epochs_are_read(tokenizer):
    counting = CountingTokenizer(tokenizer)
    dataset = make_translation_dataset(SOURCES, TARGETS, counting, CONFIG, training=True, seed=7)
    epochs = [list(dataset.as_numpy_iterator()) for _ in range(3)]
    assert counting.strings == 2 * len(SOURCES)  # sources and targets, once
    targets = [sorted(row for _, target_out in epoch for row in _rows(target_out)) for epoch in epochs]
    assert targets[0] == targets[1] == targets[2]  # every epoch reads every example
    # ... in another order: each epoch still reshuffles.
    assert epochs[0][0][1].tolist() != epochs[1][0][1].tolist()
