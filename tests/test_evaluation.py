import pytest

from seq2seq.evaluation import evaluate_translations

# BLEU needs 4-grams, so each reference has at least four tokens.
REFERENCES = [
    "Ouvrir le fichier demandé .",
    "Enregistrer le document sous ...",
    "Quitter le programme maintenant .",
]


def test_identical_translations_score_100_everywhere():
    metrics = evaluate_translations(REFERENCES, REFERENCES)
    assert metrics == {
        "bleu": pytest.approx(100),
        "chrf": pytest.approx(100),
        "exact_match": 1.0,
        "sentences": 3,
    }


def test_exact_match_counts_whole_sentences_ignoring_surrounding_whitespace():
    hypotheses = [
        "Ouvrir le fichier demandé . ",  # matches once stripped
        "Enregistrer le document",
        "quitter le programme maintenant .",  # case differs
    ]
    metrics = evaluate_translations(hypotheses, REFERENCES)
    assert metrics["exact_match"] == pytest.approx(1 / 3)
    assert 0 < metrics["bleu"] < 100 and 0 < metrics["chrf"] < 100
    assert metrics["sentences"] == 3


def test_unrelated_translations_score_near_zero():
    metrics = evaluate_translations(["xyz qqq", "zzz", "www vvv"], REFERENCES)
    assert metrics["bleu"] < 1 and metrics["exact_match"] == 0.0


def test_a_length_mismatch_names_both_counts():
    with pytest.raises(ValueError, match="2 hypotheses and 3 references"):
        evaluate_translations(REFERENCES[:2], REFERENCES)


def test_an_empty_corpus_is_an_error():
    with pytest.raises(ValueError, match="at least one"):
        evaluate_translations([], [])


def test_with_sources_the_placeholder_rate_is_reported():
    sources = ["Open %s now", "Save {0} as %d", "Quit"]
    hypotheses = ["Ouvrir %s maintenant", "Enregistrer %d", "Quitter %s"]
    metrics = evaluate_translations(hypotheses, REFERENCES, sources=sources)
    # Two sources hold placeholders; only the first translation keeps exactly its source's.
    assert metrics["placeholder_sentences"] == 2
    assert metrics["placeholder_rate"] == 0.5
    assert "placeholder_rate" not in evaluate_translations(hypotheses, REFERENCES)
    assert evaluate_translations(hypotheses, REFERENCES, sources=["a", "b", "c"])["placeholder_rate"] is None
