"""`seq2seq bench saliency-quality`: argument checks, the row's arithmetic, the flip rate, one tiny task end to end."""

import argparse
import random

import numpy as np
import pytest

from seq2seq.runs import classification
from seq2seq.bench import saliency_quality as bench
from seq2seq.bench.decoy_tasks import TaskSizes, build_task
from seq2seq.runs.classification import ClassifierRunConfig, with_overrides
from seq2seq.data.reader import LabeledText
from seq2seq.errors import UserError


def parse(*argv):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_tasks_and_seeds_are_checked():
    assert bench._parse_lists(parse()) == (["program", "language", "program_words"], [0, 1, 2])
    assert bench._parse_lists(parse("--tasks", "language", "--seeds", "4")) == (["language"], [4])
    with pytest.raises(UserError, match="--tasks takes names from program, language, program_words; received 'x,program'"):
        bench._parse_lists(parse("--tasks", "x,program"))
    with pytest.raises(UserError, match="received '0,one'"):
        bench._parse_lists(parse("--seeds", "0,one"))


def test_the_selection_rule_is_the_cli_default_unless_asked():
    assert bench._base_config(parse()).train.select_on_swapped is True
    assert bench._base_config(parse("--select-on-val-loss")).train.select_on_swapped is False
    assert bench._base_config(parse()).model == ClassifierRunConfig().model


def scores(clean, plain, penalized, plain_flips, penalized_flips):
    return {"clean": {"clean_test_accuracy": clean},
            "plain": {"random_decoy_accuracy": plain, "flip_rate": plain_flips},
            "penalized": {"random_decoy_accuracy": penalized, "flip_rate": penalized_flips}}


def test_a_row_holds_the_ratios_to_the_clean_model_and_the_targets():
    row = bench.summarize("program", 1, 1000.0, scores(0.8, 0.4, 0.79, 0.7, 0.01))
    assert (row["plain_ratio"], row["penalized_ratio"]) == (0.5, 0.9875)
    assert row["targets_met"] and row["penalized_flip_rate"] == 0.01 and row["plain_flip_rate"] == 0.7
    assert not bench.summarize("t", 0, 1.0, scores(0.8, 0.4, 0.78, 0.7, 0.01))["targets_met"]  # 0.975 < 0.98
    assert not bench.summarize("t", 0, 1.0, scores(0.8, 0.49, 0.8, 0.7, 0.01))["targets_met"]  # plain 0.6125
    assert not bench.summarize("t", 0, 1.0, scores(0.8, 0.4, 0.8, 0.7, 0.03))["targets_met"]  # flips


def test_the_flip_rate_counts_predictions_changed_by_swapping_only_the_decoys(monkeypatch):
    # A stand-in classifier that reads the decoy "db" only: label 1 iff "db" is in the text.
    monkeypatch.setattr(classification, "classify_texts",
                        lambda run, texts: {"labels": np.array([int("db" in t.split()) for t in texts])})
    rng = random.Random(0)
    pool = ["da", "db", "dc", "dd"]
    examples = [LabeledText("a", f"w{i} {decoy} x", (1, 0, 1)) for i, decoy in
                enumerate(rng.choice(pool) for _ in range(400))]
    flips = bench.decoy_flip_rate(None, examples, pool, seed=3)
    # "db" always flips (to another word); the others flip when they become "db": 1 in 3.
    with_db = sum("db" in e.text for e in examples) / 400
    assert flips == pytest.approx(with_db + (1 - with_db) / 3, abs=0.05)
    assert bench.decoy_flip_rate(None, [LabeledText("a", "w db", (1, 1))], pool, seed=3) == 0.0  # no decoy


def test_run_task_trains_three_setups_and_scores_them(tmp_path, capsys):
    words = [f"w{i}" for i in range(12)]
    rng = random.Random(0)
    texts = {label: [f"{key} " + " ".join(rng.choice(words) for _ in range(4)) + f" n{i}" for i in range(40)]
             for label, key in (("a", "alpha"), ("b", "beta"))}
    task = build_task("tiny", texts, {"a": ("da",), "b": ("db",)}, TaskSizes(40, 10, 20, seed=0))
    config = with_overrides(ClassifierRunConfig(), tokenizer={"vocab_size": 60},
                            model={"units": 8, "embed_dim": 8, "bidirectional": False},
                            train={"epochs": 3, "learning_rate": 0.05})
    row = bench.run_task(task, 0, tmp_path, config=config, penalized_weight=5.0)
    assert row["clean_accuracy"] >= 0.9  # the keyword decides
    assert row["plain_ratio"] == round(row["plain_accuracy"] / row["clean_accuracy"], 4)
    assert 0 <= row["penalized_flip_rate"] <= 1 and row["penalized_weight"] == 5.0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clean", "penalized", "plain"]
    assert classification.load_run(tmp_path / "penalized").classifier.saliency_weight == 5.0
    assert classification.load_run(tmp_path / "clean").config.train.seed == 0
    assert capsys.readouterr().out == ""  # stdout holds the benchmark's JSON only
