"""Translator runs end to end through the CLI: train, resume, translate, evaluate, export."""

import json
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from seq2seq.runs import config_io
from seq2seq.cli.main import main
from seq2seq.data.generated import generate_pairs
from seq2seq.runs.config import RunConfig

from helpers import TINY

# The shared tiny run (tests/helpers.py), one epoch over the whole split, decoded with beam 2.
CHANGES = ["train.epochs=1", "train.steps_per_epoch=0", "decode.beam_size=2", "decode.max_length=16"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    config = root / "tiny.toml"
    resolved = config_io.build(RunConfig, tomllib.loads(TINY), config_io.parse_overrides(CHANGES))
    config.write_text(config_io.to_toml(resolved))
    assert main(["train", "--config", str(config), "--out", str(root / "run"), "--no-progress"]) == 0
    return root / "run"


def test_a_run_directory_holds_everything_needed(run_dir):
    for name in ("config.toml", "tokenizer.model", "model.keras", "metrics.json"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["test"]) == {"bleu", "chrf", "exact_match", "sentences", "placeholder_rate",
                                    "placeholder_sentences"}
    assert metrics["test"]["sentences"] > 0
    assert metrics["training"]["epochs"] == 1


def test_the_resolved_config_is_written_and_reloads(run_dir):
    config = config_io.build(RunConfig, config_io.load_toml(run_dir / "config.toml"))
    assert config.data.corpus == "generated" and config.model.units == 16


def test_training_again_resumes_instead_of_restarting(run_dir, capsys):
    history = json.loads((run_dir / "history.json").read_text())
    assert main(["train", "--config", str(run_dir.parent / "tiny.toml"), "--out", str(run_dir),
                 "--no-progress", "--set", "train.epochs=1"]) == 0
    assert json.loads((run_dir / "history.json").read_text()) == history  # nothing left to train


def test_a_different_config_in_the_same_directory_is_refused(run_dir, capsys):
    code = main(["train", "--config", str(run_dir.parent / "tiny.toml"), "--out", str(run_dir),
                 "--set", "model.units=8"])
    assert code == 2
    assert "different configuration" in capsys.readouterr().err


def test_translate_reads_stdin_and_writes_one_line_per_input(run_dir, capsys, monkeypatch):
    import io

    sources = [pair.source for pair in generate_pairs("copy", 3, seed=5)]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(sources) + "\n"))
    assert main(["translate", "--model", str(run_dir), "--beam", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_evaluate_prints_the_metrics_as_json(run_dir, tmp_path, capsys):
    data = tmp_path / "test.tsv"
    data.write_text("".join(f"{p.source}\t{p.target}\n" for p in generate_pairs("copy", 4, seed=9)))
    assert main(["evaluate", "--model", str(run_dir), "--data", str(data)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["sentences"] == 4 and 0.0 <= result["exact_match"] <= 1.0
    assert result["placeholder_rate"] is None and result["placeholder_sentences"] == 0  # no placeholders


def test_evaluate_reports_the_placeholder_rate_of_the_sources_that_have_them(run_dir, tmp_path, capsys):
    data = tmp_path / "test.tsv"
    data.write_text("a %s b\ta %s b\nc d\tc d\n{name} e\t{name} e\n")
    assert main(["evaluate", "--model", str(run_dir), "--data", str(data)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Protected placeholders come back exactly, so both sentences that have one keep it.
    assert result["placeholder_sentences"] == 2 and result["placeholder_rate"] == 1.0


def test_export_refuses_an_existing_directory(run_dir, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    assert main(["export", "--model", str(run_dir), "--out", str(tmp_path / "taken")]) == 2
    assert "error:" in capsys.readouterr().err


def test_a_missing_model_directory_is_a_clear_error(tmp_path, capsys):
    assert main(["translate", "--model", str(tmp_path / "nope")]) == 2
    assert "is not a trained run directory" in capsys.readouterr().err


def test_an_unknown_config_key_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "x"), "--set", "model.unitz=3"]) == 2
    assert "unknown config key model.unitz" in capsys.readouterr().err


def test_max_train_words_filters_only_the_training_split():
    from seq2seq.runs.config import DataConfig
    from seq2seq.runs.translation import load_splits

    data = DataConfig(corpus="generated", task="copy", generated_pairs=300)
    full = load_splits(RunConfig(data=data), log=lambda message: None)
    short = load_splits(RunConfig(data=DataConfig(**{**data.__dict__, "max_train_words": 4})),
                        log=lambda message: None)
    assert short.train == [pair for pair in full.train if len(pair.source.split()) <= 4]
    assert 0 < len(short.train) < len(full.train)
    assert (short.valid, short.test) == (full.valid, full.test)


def test_model_precision_builds_a_bfloat16_translator():
    from seq2seq.runs.translation import build_translator

    config = config_io.build(RunConfig, {}, config_io.parse_overrides(
        ["model.precision=mixed_bfloat16", "model.units=4", "model.embed_dim=4"]))
    translator = build_translator(config, vocab_size=20)
    assert translator.dtype_policy.name == "mixed_bfloat16"
    assert translator.output_projection.dtype_policy.name == "mixed_bfloat16"


@pytest.mark.parametrize("overrides, message", [
    (["model.precision=float16"], "Expected model.precision in ('float32', 'mixed_bfloat16')"),
    (["model.precision=mixed_bfloat16", "model.saliency_weight=1"], "with a saliency penalty is not supported"),
    (["train.lr_schedule=linear"], "Expected train.lr_schedule in ('constant', 'cosine')"),
])
def test_a_bad_setting_is_a_clear_error(tmp_path, capsys, overrides, message):
    argv = ["train", "--out", str(tmp_path / "x")]
    for override in overrides:
        argv += ["--set", override]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_run_translates_a_rarely_capitalised_first_word_as_its_lowercase_form(run_dir):
    from seq2seq.runs.translation import load_run, translate_texts

    run = load_run(run_dir)
    assert run.casing.words == json.loads((run_dir / "casing.json").read_text())["lower_first_words"]
    word = run.casing.words[0]  # the copy task's words are all lowercase: their title forms are listed
    cased = translate_texts(run, [f"{word} {word.lower()}"])
    run.casing = None
    plain = translate_texts(run, [f"{word.lower()} {word.lower()}"])
    assert cased == [plain[0][:1].upper() + plain[0][1:]]


# ----------------------------------------------------------------------------- messy inputs and flags

CLI = [sys.executable, "-m", "seq2seq.cli.main"]
GOOD = [pair.source for pair in generate_pairs("copy", 3, seed=11)]
# Lines 2, 3 and 5 cannot be read: bytes that are not UTF-8, a NUL byte, 1001 characters (limit 1000).
MESSY = [GOOD[0].encode(), b"caf\xc3\xa9\xff", b"a\x00b", GOOD[1].encode(), b"x" * 1001, GOOD[2].encode()]
MESSY_WARNINGS = ["warning: line 2: not UTF-8 text (byte 0xff at offset 5); {action}",
                  "warning: line 3: NUL byte at offset 1; {action}",
                  "warning: line 5: longer than 1000 characters (1001); {action}"]


def seq2seq(*args, stdin=b""):
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, timeout=240)


def test_translate_writes_an_empty_line_and_a_warning_for_each_unreadable_line(run_dir):
    from seq2seq.runs.translation import load_run, translate_texts

    result = seq2seq("translate", "--model", str(run_dir), stdin=b"\n".join(MESSY) + b"\n")
    assert result.returncode == 0, result.stderr.decode()
    expected = translate_texts(load_run(run_dir), GOOD)
    assert result.stdout.decode().split("\n") == [expected[0], "", "", expected[1], "", expected[2], ""]
    warnings = [line for line in result.stderr.decode().splitlines() if line.startswith("warning:")]
    assert warnings == [w.format(action="wrote an empty line") for w in MESSY_WARNINGS]


def test_strict_translate_stops_at_the_first_unreadable_line(run_dir, tmp_path, capsys):
    (tmp_path / "in.txt").write_bytes(b"\n".join(MESSY))
    assert main(["translate", "--model", str(run_dir), "--input", str(tmp_path / "in.txt"), "--strict"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {tmp_path / 'in.txt'}:2: not UTF-8 text (byte 0xff at offset 5); ")
    assert captured.err.count("\n") == 1


def messy_tsv(path):
    """Pairs on lines 1, 4 and 6; lines 2, 3 and 5 cannot be read; line 7 has one column."""
    pair = [f"{source}\t{source}".encode() for source in GOOD]
    lines = [pair[0], MESSY[1], MESSY[2], pair[1], MESSY[4], pair[2]]
    path.write_bytes(b"\n".join(lines + [b"one column only"]) + b"\n")
    return path


def test_evaluate_scores_the_readable_pairs_and_lists_the_skipped_lines(run_dir, tmp_path):
    from seq2seq.evaluation import evaluate_translations
    from seq2seq.runs.translation import load_run, translate_texts

    result = seq2seq("evaluate", "--model", str(run_dir), "--data", str(messy_tsv(tmp_path / "test.tsv")))
    assert result.returncode == 0, result.stderr.decode()
    scores = json.loads(result.stdout.decode().splitlines()[-1])
    expected = evaluate_translations(translate_texts(load_run(run_dir), GOOD), GOOD, sources=GOOD)
    assert scores == {**expected, "skipped_lines": [2, 3, 5, 7]}
    stderr = result.stderr.decode()
    for warning in MESSY_WARNINGS:
        assert warning.format(action="left out of the scores") in stderr
    assert "warning: line 7: expected 'source TAB reference', found 1 tab-separated columns" in stderr


def test_diagnose_model_leaves_out_the_unreadable_lines_and_says_which(run_dir, tmp_path):
    data = messy_tsv(tmp_path / "test.tsv")
    result = seq2seq("diagnose", "--model", str(run_dir), "--data", str(data), "--json", "-")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout.decode())  # --json -: stdout holds only the JSON
    assert report["num_outputs"] == 3
    stderr = result.stderr.decode()
    assert "End-token collapse diagnosis" in stderr  # the text report moved to stderr
    for warning in MESSY_WARNINGS:
        assert warning.format(action="left out of the diagnosis").replace("line", f"{data} line", 1) in stderr


@pytest.fixture
def decoded_batches(monkeypatch):
    """Records (rows, max_length, output steps) of each batch the translator decodes."""
    import seq2seq.inference

    calls, decode = [], seq2seq.inference.translate_ids

    def spy(translator, ids, **options):
        result = decode(translator, ids, **options)
        calls.append((int(ids.shape[0]), options["max_length"], int(result.token_ids.shape[1])))
        return result

    monkeypatch.setattr(seq2seq.inference, "translate_ids", spy)
    return calls


def test_evaluate_batch_size_sets_the_sentences_per_decoded_batch(run_dir, tmp_path, capsys, decoded_batches):
    data = tmp_path / "test.tsv"
    data.write_text("".join(f"{p.source}\t{p.target}\n" for p in generate_pairs("copy", 5, seed=9)))
    assert main(["evaluate", "--model", str(run_dir), "--data", str(data)]) == 0
    assert [rows for rows, _, _ in decoded_batches] == [5]  # the run's decode.batch_size is 64
    decoded_batches.clear()
    assert main(["evaluate", "--model", str(run_dir), "--data", str(data), "--batch-size", "2"]) == 0
    assert [rows for rows, _, _ in decoded_batches] == [2, 2, 1]


def test_evaluate_max_length_caps_the_outputs(run_dir, tmp_path, capsys, decoded_batches):
    data = tmp_path / "test.tsv"
    data.write_text("".join(f"{p.source}\t{p.target}\n" for p in generate_pairs("copy", 5, seed=9)))
    assert main(["evaluate", "--model", str(run_dir), "--data", str(data), "--max-length", "3"]) == 0
    assert decoded_batches == [(5, 3, 3)]  # the run's decode.max_length is 16


def test_export_max_length_sets_the_exported_output_length_and_batch_size_is_refused(run_dir, tmp_path, capsys):
    import tensorflow as tf

    assert main(["export", "--model", str(run_dir), "--out", str(tmp_path / "e"), "--max-length", "5"]) == 0
    exported = tf.saved_model.load(str(tmp_path / "e"))  # kept: its functions need its variables
    assert exported.translate(tf.constant(GOOD))["token_ids"].shape == (3, 5)  # the run's max_length is 16
    with pytest.raises(SystemExit) as refused:
        main(["export", "--model", str(run_dir), "--out", str(tmp_path / "f"), "--batch-size", "4"])
    assert refused.value.code == 2 and "unrecognized arguments: --batch-size 4" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "translate", "evaluate", "export", "diagnose"])
def test_every_option_of_the_translator_and_diagnose_commands_says_its_default(command):
    from seq2seq.cli.main import build_parser

    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    for action in subparsers.choices[command]._actions:
        if action.dest == "help":
            continue
        assert action.help and ("default" in action.help or "required" in action.help), (command, action.dest)


def test_pairs_within_cuts_are_those_whose_pieces_and_end_fit_both_cuts():
    from seq2seq.data.pipeline import count_pieces
    from seq2seq.data.batching import BatchingConfig
    from seq2seq.runs.translation import pairs_within_cuts
    from seq2seq.tokenizer import SentencePieceTokenizer
    from helpers import GENERATED_TOKENIZER

    tokenizer = SentencePieceTokenizer.from_file(GENERATED_TOKENIZER)
    pairs = generate_pairs("reverse", 200, seed=3)
    sources = count_pieces([p.source for p in pairs], tokenizer)
    targets = count_pieces([p.target for p in pairs], tokenizer)
    source_cut, target_cut = int(sources.max()) - 1, int(targets.max())  # 1 piece + END over the source cut
    batching = BatchingConfig(max_source_len=source_cut, max_target_len=target_cut)
    messages = []
    keep = pairs_within_cuts(sources, targets, batching, log=messages.append)
    expected = [s + 1 <= source_cut and t + 1 <= target_cut for s, t in zip(sources, targets)]
    assert keep.tolist() == expected and 0 < sum(expected) < len(pairs)
    assert messages == [f"long pairs: {len(pairs) - sum(expected):,} of {len(pairs):,} training pairs longer than "
                        f"the cuts ({source_cut}/{target_cut}) left out"]
    with pytest.raises(ValueError, match="data.long_pairs='drop' leaves none"):
        pairs_within_cuts(np.array([6]), np.array([6]), BatchingConfig(max_source_len=2))


def test_drop_leaves_the_long_pairs_out_of_training_and_counts_epochs_on_the_rest(tmp_path):
    from seq2seq.data.batching import model_lengths
    from seq2seq.data.pipeline import count_pieces
    from seq2seq.runs import data_defaults as auto
    from seq2seq.runs.translation import resolve_data_defaults
    from helpers import GENERATED_TOKENIZER

    pairs = generate_pairs("reverse", 200, seed=3)
    config = config_io.build(RunConfig, {}, config_io.parse_overrides(
        [f"tokenizer.model={GENERATED_TOKENIZER}", "batching.max_source_len=6", "batching.max_target_len=6",
         "train.epochs=0", "data.long_pairs=drop"]))
    messages = []
    resolved, tokenizer, kept = resolve_data_defaults(config, pairs, tmp_path, log=messages.append)
    sources = count_pieces([p.source for p in pairs], tokenizer)
    targets = count_pieces([p.target for p in pairs], tokenizer)
    assert kept == [p for p, s, t in zip(pairs, sources, targets) if s + 1 <= 6 and t + 1 <= 6]
    assert 0 < len(kept) < len(pairs)
    kept_targets = count_pieces([p.target for p in kept], tokenizer)
    assert resolved.train.epochs == auto.choose_epochs(int(model_lengths(kept_targets, 6).sum()))[0]
    assert any(message.startswith(f"long pairs: {len(pairs) - len(kept)} of 200") for message in messages)


def test_a_bad_long_pairs_value_names_the_choices():
    from seq2seq.runs.config import DataConfig

    with pytest.raises(ValueError, match=r"Expected data.long_pairs in \('cut', 'drop'\). Received: long_pairs='trim'"):
        DataConfig(long_pairs="trim")


def test_training_leaves_the_decoding_graph_and_scored_the_test_split_with_it(run_dir):
    # `seq2seq train` decodes the test split with the graph it saves for the first translate; the
    # scores equal those of the Keras model's decoding.
    from seq2seq.runs import decode_cache
    from seq2seq.runs.translation import evaluate_pairs, load_run, load_splits

    made_by_training = [  # key.json written before metrics.json (other tests add entries later)
        entry for entry in (run_dir / decode_cache.CACHE_DIR).iterdir()
        if json.loads((entry / decode_cache.KEY_FILE).read_text())["options"]["beam_size"] == 2
        and (entry / decode_cache.KEY_FILE).stat().st_mtime <= (run_dir / "metrics.json").stat().st_mtime]
    assert len(made_by_training) == 1
    run = load_run(run_dir)
    test_split = load_splits(run.config, log=lambda message: None).test
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert evaluate_pairs(run, test_split) == metrics["test"]
