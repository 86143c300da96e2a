"""`seq2seq.scoring`: teacher-forced log-probabilities of given translations.

Each expectation is computed apart from `score_pairs`: from the translator's
logits with NumPy (log-softmax, gather, sum), on inputs encoded by hand.
"""

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.casing import FirstWordCasing
from seq2seq.data.generated import generate_sentences
from seq2seq.models.translator import Translator
from seq2seq.placeholders import protect_pair, reserved_ids
from seq2seq.scoring import score_ids, score_pairs
from seq2seq.tokenizer import SentencePieceTokenizer, train_sentencepiece_from_sentences
from seq2seq.tokens import END_ID, START_ID

MAX_SOURCE_LEN = 12


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    tf.random.set_seed(0)  # before the tokenizer: seeding clears the kernel cache that holds its resource
    sentences = generate_sentences(300, seed=0)
    tokenizer = SentencePieceTokenizer.from_file(
        train_sentencepiece_from_sentences(sentences, tmp_path_factory.mktemp("spm"), vocab_size=60, num_threads=1))
    translator = Translator(tokenizer.vocab_size, embed_dim=8, units=8)
    rng = np.random.default_rng(0)
    translator.set_weights([rng.normal(size=w.shape).astype("float32") for w in translator.get_weights()])
    return translator, tokenizer


def expected_log_prob(translator, tokenizer, source, target):
    """The NumPy reference: sum of log-softmax(logits)[target_out] of one teacher-forced pair."""
    source_ids = list(tokenizer.tokenize([source]).numpy()[0][: MAX_SOURCE_LEN - 1]) + [END_ID]
    pieces = list(tokenizer.tokenize([target]).numpy()[0])
    logits = translator((np.array([source_ids]), np.array([[START_ID] + pieces])))["logits"].numpy()[0]
    log_softmax = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    per_token = log_softmax[np.arange(len(pieces) + 1), pieces + [END_ID]]
    return per_token.sum(), per_token


def test_each_pair_gets_the_log_prob_of_its_target_pieces_and_end_token(model):
    translator, tokenizer = model
    sources = ["hiro gam", "rin", "kivi lon mus hike yoke wal devi"]
    targets = ["gam hiro", "rin rin rin", "lon"]
    results = score_pairs(translator, tokenizer, sources, targets, max_source_len=MAX_SOURCE_LEN, batch_size=2,
                          per_token=True)
    for result, source, target in zip(results, sources, targets):
        total, per_token = expected_log_prob(translator, tokenizer, source, target)
        assert (result["source"], result["target"]) == (source, target)
        assert result["tokens"] == len(per_token)
        np.testing.assert_allclose(result["log_prob"], total, atol=1e-4)
        np.testing.assert_allclose(result["token_log_probs"], per_token, atol=1e-4)


def test_placeholders_are_protected_as_in_training_and_casing_lowers_the_target(model):
    translator, tokenizer = model
    assert reserved_ids(tokenizer)  # the tokenizer holds the placeholder tokens
    casing = FirstWordCasing(["Hiro"])
    [protected] = score_pairs(translator, tokenizer, ["open %s now"], ["%s gam"], max_source_len=MAX_SOURCE_LEN)
    total, _ = expected_log_prob(translator, tokenizer, *protect_pair("open %s now", "%s gam"))
    np.testing.assert_allclose(protected["log_prob"], total, atol=1e-4)
    assert protected["target"] == "%s gam"  # reported as given
    [cased] = score_pairs(translator, tokenizer, ["Hiro gam"], ["Gam hiro"], max_source_len=MAX_SOURCE_LEN,
                          casing=casing)
    np.testing.assert_allclose(cased["log_prob"], expected_log_prob(translator, tokenizer, "hiro gam", "gam hiro")[0],
                               atol=1e-4)


def test_score_ids_traces_once_across_batch_shapes(model):
    translator, _ = model
    rng = np.random.default_rng(1)
    for batch, src, tgt in ((2, 3, 4), (5, 7, 2)):
        target_out = rng.integers(4, 60, size=[batch, tgt])
        target_in = np.concatenate([np.full([batch, 1], START_ID), target_out[:, :-1]], axis=1)
        log_probs, per_token = score_ids(translator, rng.integers(4, 60, size=[batch, src]), target_in, target_out)
        assert log_probs.shape == (batch,) and per_token.shape == (batch, tgt)
    traced = score_ids.__globals__["_SCORE_FUNCTIONS"][translator]
    assert traced.experimental_get_tracing_count() == 1


def test_sources_and_targets_of_different_lengths_are_refused(model):
    with pytest.raises(ValueError, match="2 sources and 1 targets"):
        score_pairs(*model, ["a", "b"], ["a"], max_source_len=MAX_SOURCE_LEN)
