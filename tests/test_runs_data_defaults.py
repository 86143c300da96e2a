"""Settings chosen from the training data: the rules on plain numbers, then a run that uses them."""

import json

import numpy as np
import pytest

from seq2seq.runs import config_io, data_defaults
from seq2seq.cli.main import main
from seq2seq.runs.config import RunConfig


@pytest.mark.parametrize("pairs, characters, expected", [
    (47_737, 276, 1_300),     # 954 word pieces + 276 characters, rounded up to 100
    (37_000, 2_083, 2_900),   # a CJK corpus: room for its characters and for words
    (1_000, 60, 600),         # at least 500 word pieces
    (1_000_000, 300, 8_300),  # at most 8,000 word pieces
])
def test_vocabulary_size_grows_with_pairs_and_characters(pairs, characters, expected):
    size, reason = data_defaults.choose_vocab_size(pairs, characters)
    assert size == expected
    assert f"{expected:,}" in reason and f"{pairs:,} pairs" in reason


def test_characters_are_counted_when_used_often_enough():
    assert data_defaults.count_characters(["aab", "abc"], min_count=2) == 2  # a (3x), b (2x); not c
    assert data_defaults.count_characters([], min_count=1) == 0


def test_length_cut_is_the_98th_percentile_plus_the_special_token():
    counts = np.append(np.arange(1, 101), [400, 400])  # 1..100 pieces and a long tail
    cut, reason = data_defaults.choose_length_cut(counts, "source")
    expected = int(np.ceil(np.percentile(counts, 98))) + 1
    assert cut == expected
    assert f"{np.mean(counts + 1 <= expected):.1%}" in reason
    assert data_defaults.choose_length_cut([1, 2, 2], "target")[0] == data_defaults.MIN_CUT
    assert data_defaults.choose_length_cut([500] * 10, "target")[0] == data_defaults.MAX_CUT


def test_a_short_tail_is_kept_whole():
    counts = np.append(np.full(980, 10), np.arange(11, 31))  # 98th percentile 10.4, longest 30
    assert data_defaults.choose_length_cut(counts, "target")[0] == int(np.ceil(np.percentile(counts, 98))) + 1
    counts = np.append(np.full(980, 12), np.arange(13, 19))  # longest 18, within 1.5x 12
    cut, reason = data_defaults.choose_length_cut(counts, "target")
    assert cut == 19 and "100.0%" in reason and "18 pieces" in reason


def test_epochs_aim_at_a_token_count_within_bounds():
    per_epoch = 600_000
    assert data_defaults.choose_epochs(per_epoch)[0] == data_defaults.TARGET_TOKENS // per_epoch
    assert data_defaults.choose_epochs(10)[0] == data_defaults.MAX_EPOCHS
    assert data_defaults.choose_epochs(10**9)[0] == data_defaults.MIN_EPOCHS


def test_a_resumed_config_takes_the_saved_choices_only_where_it_left_them_open():
    requested = data_defaults.with_value(RunConfig(), "tokenizer", "vocab_size", 0)
    saved = data_defaults.with_value(RunConfig(), "tokenizer", "vocab_size", 1234)
    assert data_defaults.fill_from(requested, saved).tokenizer.vocab_size == 1234
    given = data_defaults.with_value(RunConfig(), "tokenizer", "vocab_size", 99)
    assert data_defaults.fill_from(given, saved).tokenizer.vocab_size == 99


AUTO = """
[data]
corpus = "generated"
task = "copy"
generated_pairs = 400

[tokenizer]
vocab_size = 0

[batching]
max_source_len = 0
max_target_len = 0

[model]
embed_dim = 8
units = 8

[train]
epochs = 0
max_minutes = 0.05

[decode]
beam_size = 1
max_length = 12
"""


def test_a_run_with_settings_left_at_0_chooses_them_logs_why_and_resumes(tmp_path, capsys):
    config_path = tmp_path / "auto.toml"
    config_path.write_text(AUTO)
    out = tmp_path / "run"
    assert main(["train", "--config", str(config_path), "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    saved = config_io.build(RunConfig, config_io.load_toml(out / "config.toml"))
    # A tiny generated corpus: the soft vocabulary limit keeps what its text has, never an error.
    assert 4 < saved.tokenizer.vocab_size <= data_defaults.choose_vocab_size(400, 100)[0]
    assert saved.batching.max_source_len >= data_defaults.MIN_CUT
    assert saved.batching.max_target_len >= data_defaults.MIN_CUT
    assert data_defaults.MIN_EPOCHS <= saved.train.epochs <= data_defaults.MAX_EPOCHS
    for reason in ("vocabulary", "max source length", "max target length", "epochs"):
        assert reason in err
    # The same request resumes the run instead of being refused as a different configuration.
    assert main(["train", "--config", str(config_path), "--out", str(out), "--no-progress"]) == 0
    assert "different configuration" not in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["test"]["sentences"] > 0
