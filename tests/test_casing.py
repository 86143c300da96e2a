"""First-word casing: which words are learned, how sources and translations are rewritten."""

import numpy as np
import pytest
import tensorflow as tf

from seq2seq.casing import FirstWordCasing

# "open" 4 times, "Open" once; "save" 3 times, "Save" never; "Failed" 3 times,
# "failed" 3 times; "close" once; "été" 3 times.
SOURCES = [
    "Open files", "open a file", "cannot open it", "open now", "will open",
    "save it", "do not save", "save", "Failed to open", "Failed once", "Failed", "it failed",
    "has failed", "failed", "close", "été chaud", "un été", "été",
]


def strings(tensor):
    return [text.decode("utf-8") for text in np.asarray(tensor).tolist()]


def test_learns_the_words_seen_rarely_capitalised_and_often_in_lowercase():
    casing = FirstWordCasing.learn(SOURCES, max_capitalised=2, min_ratio=3)
    # open: 4 >= 3 x 1; save and it: 3 >= 3 x max(0, 1); été: 3 >= 3. Not: close (1 < 3),
    # failed ("Failed" seen 3 times, not fewer than 2), files, now, ... (once each).
    assert casing.words == ["It", "Open", "Save", "Été"]


def test_lowers_a_listed_first_word_only():
    casing = FirstWordCasing(["Open", "Été"])
    texts = ["Open file", "Open", "Opened file", "file Open", "Été chaud", "", "Close  the  window"]
    cased, lowered = casing.lower_first_words(texts)
    assert strings(cased) == ["open file", "open", "Opened file", "file Open", "été chaud", "",
                              "Close  the  window"]
    assert lowered.numpy().tolist() == [True, True, False, False, True, False, False]


def test_raises_the_first_letter_of_the_lowered_rows_only():
    raised = FirstWordCasing.raise_first_letters(
        ["fichier d'ouverture", "été", "", "fichier"], [True, True, True, False])
    assert strings(raised) == ["Fichier d'ouverture", "Été", "", "fichier"]


def test_without_words_nothing_changes():
    cased, lowered = FirstWordCasing().lower_first_words(["Open file"])
    assert strings(cased) == ["Open file"] and not lowered.numpy().any()


def test_survives_a_saved_model_round_trip(tmp_path):
    module = tf.Module()
    module.casing = FirstWordCasing(["Open"])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def lower(texts):
        return module.casing.lower_first_words(texts)[0]

    module.lower = lower
    tf.saved_model.save(module, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    assert strings(loaded.lower(tf.constant(["Open file", "Close"]))) == ["open file", "Close"]


def test_rejects_words_that_are_not_title_case():
    with pytest.raises(ValueError, match="OPEN"):
        FirstWordCasing(["OPEN"])
