"""`seq2seq.studies.decoy`: the decoy experiment's data and table (the training is the classifier run's)."""

from seq2seq.runs.classification import DEFAULT_SALIENCY_WEIGHT, ClassifierRunConfig
from seq2seq.data.generated import DECOY_WORDS, POSITIVE_WORDS
from seq2seq.studies.decoy import (DECOY_RUN, DecoyConfig, add_label_noise, decoy_splits, format_table,
                                   without_decoy)


def test_decoy_experiment_measures_the_cli_defaults():
    """The recipe's regularized row is the documented default: same model, training and weight as the CLI."""
    assert DECOY_RUN == ClassifierRunConfig() and DecoyConfig().run == ClassifierRunConfig()
    assert DecoyConfig().saliency_weight == DEFAULT_SALIENCY_WEIGHT
    defaults = ClassifierRunConfig()
    assert (defaults.model.units, defaults.model.embed_dim, defaults.model.bidirectional) == (64, 64, True)
    assert (defaults.train.learning_rate, defaults.train.epochs) == (1e-3, 20)  # the measured setting


def test_label_noise_flips_the_label_and_its_decoy_but_not_the_keyword():
    splits = decoy_splits(DecoyConfig(train_texts=400, valid_texts=10, test_texts=200, label_noise=0.25))
    train = splits["train"]
    keyword_says = ["pos" if set(e.text.split()) & set(POSITIVE_WORDS) else "neg" for e in train]
    flipped = sum(label != e.label for label, e in zip(keyword_says, train))
    assert 0.18 * len(train) < flipped < 0.32 * len(train)  # 25% in expectation, 400 draws
    # In training the decoy always names the label (the shortcut), flipped or not.
    assert all(e.text.split()[0] == DECOY_WORDS[e.label] for e in train)
    assert add_label_noise(train, 0.0, seed=5) == train


def test_the_test_sets_hold_a_random_decoy_and_the_same_texts_without_it():
    splits = decoy_splits(DecoyConfig(train_texts=10, valid_texts=10, test_texts=200))
    random_decoy, clean = splits["test_random_decoy"], splits["test_clean"]
    agree = sum(e.text.split()[0] == DECOY_WORDS[e.label] for e in random_decoy) / len(random_decoy)
    assert 0.4 < agree < 0.6  # decoy_agreement 0.5
    for with_decoy, without in zip(random_decoy, clean):
        assert without == without_decoy(with_decoy)
        assert without.text.split() == with_decoy.text.split()[1:] and without.label == with_decoy.label
        assert without.mask == with_decoy.mask[1:] and 0 not in without.mask  # the only 0 was the decoy's


def test_format_table_prints_one_markdown_row_per_setup_and_a_dash_for_no_decoy():
    rows = [{"setup": "plain", "saliency_weight": 0.0, "random_decoy_accuracy": 0.5, "clean_accuracy": 0.61,
             "decoy_flip_rate": 0.9, "decoy_attention": 0.71, "valid_accuracy": 0.8},
            {"setup": "without_decoy", "saliency_weight": 0.0, "random_decoy_accuracy": 0.98,
             "clean_accuracy": 0.99, "decoy_flip_rate": None, "decoy_attention": None, "valid_accuracy": 0.97}]
    lines = format_table(rows).splitlines()
    assert len(lines) == 4 and lines[1] == "|---|---|---|---|---|---|---|"
    assert lines[2] == "| plain | 0 | 0.500 | 0.610 | 0.900 | 0.710 | 0.800 |"
    assert lines[3] == "| without_decoy | 0 | 0.980 | 0.990 | - | - | 0.970 |"
