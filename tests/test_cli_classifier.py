"""`seq2seq classifier train | evaluate | predict | export` on a tiny generated labeled TSV.

One module-scoped run, trained with most shorthand flags, serves the tests of
what each flag did to the run; the config tests build `train_config` from parsed
arguments without training.
"""

import contextlib
import io
import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from seq2seq.runs.classification import DEFAULT_SALIENCY_WEIGHT, ClassifierRunConfig, load_config
from seq2seq.cli.classifier import SHORTHANDS, _train_command, train_config
from seq2seq.cli.main import build_parser, main
from seq2seq.data.generated import generate_labeled
from seq2seq.data.reader import LabeledText
from seq2seq.errors import UserError

TOKENIZER = str(Path(__file__).resolve().parents[1] / "tokenizers" / "generated.model")
TINY = ("--epochs", "1", "--units", "4", "--embed-dim", "4", "--unidirectional", "--tokenizer", TOKENIZER,
        "--no-progress")
# The module's run: TINY and most other shorthands, each away from its default.
SHORTHAND_RUN = TINY + ("--layers", "2", "--dropout", "0.1", "--max-len", "12", "--learning-rate", "0.02",
                        "--patience", "1", "--seed", "3", "--saliency-target", "sum_log_prob")
MAX_LEN = 12


def run(capsys, *argv):
    """Runs `seq2seq ARGV` in-process; returns (exit code, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_tsv(path, examples, masks=True, extra_lines=()):
    lines = [f"{e.label}\t{e.text}" + (f"\t{' '.join(map(str, e.mask))}" if masks else "") for e in examples]
    path.write_text("\n".join(lines + list(extra_lines)) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained from masked data (and one bad line) without --saliency-weight."""
    root = tmp_path_factory.mktemp("classifier")
    mismatch = "pos\talfa sunel bata\t0 1"  # 2 mask digits for 3 words: a bad line
    train = write_tsv(root / "train.tsv", generate_labeled(60, seed=1), extra_lines=[mismatch])
    valid = write_tsv(root / "valid.tsv", generate_labeled(20, seed=2))
    test = write_tsv(root / "test.tsv", generate_labeled(30, seed=3, decoy_agreement=0.5), masks=False)
    out = root / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["classifier", "train", "--data", train, "--valid", valid, "--out", str(out), *SHORTHAND_RUN])
    return {"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "out": out, "test": test,
            "root": root}


def test_train_writes_a_run_with_the_default_weight_for_masked_data(trained, capsys):
    assert trained["code"] == 0
    names = {p.name for p in trained["out"].iterdir()}
    assert {"config.toml", "labels.json", "tokenizer.model", "model.keras", "metrics.json"} <= names
    assert json.loads((trained["out"] / "labels.json").read_text()) == ["neg", "pos"]
    assert load_config(trained["out"] / "config.toml").model.saliency_weight == DEFAULT_SALIENCY_WEIGHT > 0
    assert f"saliency weight {DEFAULT_SALIENCY_WEIGHT:g} (the default" in trained["stderr"]
    assert set(json.loads(trained["stdout"].splitlines()[-1])) >= {"accuracy", "examples"}


def test_train_skips_a_mask_length_mismatch_and_says_so(trained):
    assert "skipped 1 bad lines" in trained["stderr"] and "mask length mismatch" in trained["stderr"]
    assert "train.tsv:61" in trained["stderr"]


def test_strict_train_stops_at_a_mismatched_mask_with_one_line(tmp_path, capsys):
    train = write_tsv(tmp_path / "t.tsv", generate_labeled(5, seed=1), extra_lines=["pos\talfa sunel\t0"])
    code, out, err = run(capsys, "classifier", "train", "--data", train, "--valid", train,
                         "--out", str(tmp_path / "run"), "--strict", *TINY)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "mask length mismatch" in err


def test_evaluate_prints_accuracy_and_examples(trained, capsys):
    code, out, _ = run(capsys, "classifier", "evaluate", "--model", str(trained["out"]), "--data", trained["test"])
    assert code == 0
    result = json.loads(out)
    assert result["examples"] == 30 and 0.0 <= result["accuracy"] <= 1.0


def test_predict_prints_label_probabilities_and_per_word_attention(trained, tmp_path, capsys):
    texts = ["alfa bata sunel kivi", "omeg grumok"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    code, out, _ = run(capsys, "classifier", "predict", "--model", str(trained["out"]),
                       "--input", str(tmp_path / "in.txt"))
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2
    for row, text in zip(rows, texts):
        assert row["label"] in ("neg", "pos") and set(row["probabilities"]) == {"neg", "pos"}
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)
        assert [word for word, _ in row["attention"]] == text.split()
        assert sum(w for _, w in row["attention"]) + row["end_attention"] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--model", "{root}/nowhere", "--data", "{test}"], "not a trained classifier run"),
    (["predict", "--model", "{out}", "--input", "{root}/missing.txt"], "input file not found"),
    (["evaluate", "--model", "{out}", "--data", "{root}/other.tsv"], "labels the model was not trained on"),
])
def test_bad_input_is_one_line_and_exit_2(trained, capsys, argv, message):
    (trained["root"] / "other.tsv").write_text("maybe\talfa sunel\n")
    fields = {"root": trained["root"], "test": trained["test"], "out": trained["out"]}
    code, out, err = run(capsys, "classifier", *[a.format(**fields) for a in argv])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_predict_writes_one_json_line_per_input_line_with_the_errors_in_place(trained, tmp_path):
    from seq2seq.runs.classification import load_run, predictions

    good = ["alfa bata sunel kivi", "omeg grumok"]
    lines = [good[0].encode(), b"caf\xc3\xa9\xff", b"", good[1].encode(), b"y" * 1001]
    result = subprocess.run([sys.executable, "-m", "seq2seq.cli.main", "classifier", "predict", "--model",
                             str(trained["out"])], input=b"\n".join(lines) + b"\n", capture_output=True, timeout=240)
    assert result.returncode == 0, result.stderr.decode()
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    expected = predictions(load_run(trained["out"]), good)
    assert rows == [expected[0], {"error": "line 2: not UTF-8 text (byte 0xff at offset 5)"},
                    {"error": "line 3: blank line, nothing to classify"}, expected[1],
                    {"error": "line 5: longer than 1000 characters (1001)"}]
    warnings = [line for line in result.stderr.decode().splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: line {n}: {why}; wrote its error as the JSON line" for n, why in (
        (2, "not UTF-8 text (byte 0xff at offset 5)"), (3, "blank line, nothing to classify"),
        (5, "longer than 1000 characters (1001)"))]


def test_strict_predict_stops_at_the_first_unreadable_line(trained, tmp_path, capsys):
    (tmp_path / "in.txt").write_bytes(b"alfa bata\n\nsunel \x00\n")
    code, out, err = run(capsys, "classifier", "predict", "--model", str(trained["out"]),
                         "--input", str(tmp_path / "in.txt"), "--strict")
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {tmp_path / 'in.txt'}:3: NUL byte at offset 6; ") and err.count("\n") == 1


# ----------------------------------------------------------------------------- what each shorthand did to the run


def test_the_run_is_built_and_trained_as_the_shorthands_say(trained):
    from seq2seq.runs.classification import load_run

    run = load_run(trained["out"])
    model = run.classifier
    assert (model.units, model.embed_dim, model.encoder_layers, model.bidirectional) == (4, 4, 2, False)
    assert model.dropout == pytest.approx(0.1) and model.saliency_target == "sum_log_prob"
    assert (trained["out"] / "tokenizer.model").read_bytes() == Path(TOKENIZER).read_bytes()  # --tokenizer: copied
    config = run.config
    assert (config.train.epochs, config.train.learning_rate, config.train.patience, config.train.seed) == \
        (1, 0.02, 1, 3)
    assert config.batching.max_source_len == MAX_LEN
    assert json.loads((trained["out"] / "metrics.json").read_text())["training"]["epochs"] == 1  # --epochs 1


def test_max_len_cuts_texts_to_max_len_minus_one_pieces(trained):
    """Words past the 11th piece get no attention (every generated word is one piece of TOKENIZER)."""
    from seq2seq.runs.classification import load_run, predictions

    text = " ".join(["bata"] * 20)
    run = load_run(trained["out"])
    assert len(run.tokenizer.tokenize([text]).to_list()[0]) == 20
    [row] = predictions(run, [text])
    weights = np.array([w for _, w in row["attention"]])
    assert (weights[: MAX_LEN - 1] > 0).all() and (weights[MAX_LEN - 1:] == 0).all()


def test_no_progress_leaves_no_progress_bar_and_progress_shows_one(trained, tmp_path, capsys):
    """--no-progress (the module's run) against a run without it; this one also trains its own tokenizer."""
    assert "epoch 1/1" not in trained["stderr"]
    train = write_tsv(tmp_path / "t.tsv", generate_labeled(40, seed=4), masks=False)
    code, _, err = run(capsys, "classifier", "train", "--data", train, "--valid", train,
                       "--out", str(tmp_path / "run"), "--vocab-size", "48",
                       *[arg for arg in TINY if arg not in ("--no-progress", "--tokenizer", TOKENIZER)])
    assert code == 0, err
    assert "epoch 1/1" in err
    from seq2seq.tokenizer import SentencePieceTokenizer

    vocab = SentencePieceTokenizer.from_file(tmp_path / "run" / "tokenizer.model").vocab_size
    assert 39 < vocab <= 48  # --vocab-size: an upper bound on the trained tokenizer


# ----------------------------------------------------------------------------- --config, --set and the shorthands

# A value away from the default for each shorthand (the flag's argument, the config value it must give).
SHORTHAND_VALUES = {
    "--epochs": ("3", 3), "--learning-rate": ("0.005", 0.005), "--patience": ("1", 1), "--seed": ("7", 7),
    "--units": ("8", 8), "--embed-dim": ("12", 12), "--layers": ("2", 2), "--dropout": ("0.25", 0.25),
    "--max-len": ("40", 40), "--saliency-weight": ("5", 5.0), "--tokenizer": ("x.model", "x.model"),
    "--vocab-size": ("123", 123),
}
EXAMPLES = generate_labeled(4, seed=0)  # with masks


def parse(*argv):
    return build_parser().parse_args(["classifier", "train", "--data", "d", "--valid", "v", "--out", "o", *argv])


def value_of(config, key):
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def test_every_shorthand_is_in_the_table():
    """The table the tests below walk covers each shorthand flag of the parser."""
    assert set(SHORTHAND_VALUES) == {flag for flag, *_ in SHORTHANDS}


@pytest.fixture(scope="module")
def train_help():
    """`seq2seq classifier train --help`, whitespace collapsed (argparse wraps lines anywhere)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["classifier", "train", "--help"])
    return " ".join(out.getvalue().split())


@pytest.mark.parametrize("flag, key, metavar", [(flag, key, metavar) for flag, key, _, metavar, _ in SHORTHANDS])
def test_each_shorthand_is_the_set_its_help_names(flag, key, metavar, train_help):
    text, expected = SHORTHAND_VALUES[flag]
    assert f"{flag} {metavar} " in train_help and f"(= --set {key}={metavar}; default: " in train_help
    by_flag = train_config(parse(flag, text), EXAMPLES)
    assert value_of(by_flag, key) == expected != value_of(ClassifierRunConfig(), key)
    assert by_flag == train_config(parse("--set", f"{key}={text}"), EXAMPLES)


@pytest.mark.parametrize("argv, key, expected", [
    (["--unidirectional"], "model.bidirectional", False),
    (["--saliency-target", "sum_log_prob"], "model.saliency_target", "sum_log_prob"),
])
def test_the_switch_shorthands(argv, key, expected):
    assert value_of(train_config(parse(*argv), EXAMPLES), key) == expected
    assert value_of(train_config(parse(), EXAMPLES), key) != expected


def test_precedence_is_defaults_then_config_then_set_then_flags(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text("[model]\nunits = 16\nembed_dim = 24\n\n[train]\nepochs = 2\npatience = 5\n")
    config = train_config(parse("--config", str(toml), "--set", "model.units=20", "--set", "train.epochs=6",
                                "--embed-dim", "28"), EXAMPLES)
    assert (config.model.units, config.model.embed_dim) == (20, 28)  # --set over --config, a flag over --config
    assert (config.train.epochs, config.train.patience) == (6, 5)  # --set over --config; --config over defaults
    assert config.train.learning_rate == ClassifierRunConfig().train.learning_rate  # untouched: the default


def test_a_flag_and_a_set_of_the_same_key_is_an_error_naming_both():
    with pytest.raises(UserError, match=r"--units and --set model.units=16 both set model.units"):
        train_config(parse("--units", "8", "--set", "model.units=16"), EXAMPLES)
    with pytest.raises(UserError, match=r"--unidirectional and --set model.bidirectional=true"):
        train_config(parse("--unidirectional", "--set", "model.bidirectional=true"), EXAMPLES)


@pytest.mark.parametrize("argv, masks, expected", [
    ([], True, DEFAULT_SALIENCY_WEIGHT), ([], False, 0.0),
    (["--set", "model.saliency_weight=0"], True, 0.0), (["--saliency-weight", "0"], True, 0.0),
    (["--config", "{toml}"], True, 3.0),
])
def test_the_saliency_weight_comes_from_the_data_only_when_no_one_gave_it(argv, masks, expected, tmp_path):
    (tmp_path / "w.toml").write_text("[model]\nsaliency_weight = 3\n")
    examples = EXAMPLES if masks else [LabeledText(e.label, e.text, None) for e in EXAMPLES]
    config = train_config(parse(*[arg.format(toml=tmp_path / "w.toml") for arg in argv]), examples)
    assert config.model.saliency_weight == expected


@pytest.mark.parametrize("argv, message", [
    (["--set", "model.unit=3"], "unknown config key model.unit"),
    (["--set", "decode.beam_size=3"], "unknown config section [decode]"),
    (["--units", "8", "--set", "model.units=9"], "--units and --set model.units=9"),
    (["--max-len", "0"], "pass --max-len N"),
    (["--saliency-weight", "-1"], "saliency weight must be >= 0"),
    (["--config", "{root}/missing.toml"], "config file not found"),
])
def test_config_errors_are_one_line_and_exit_2_before_training(argv, message, tmp_path, capsys):
    train = write_tsv(tmp_path / "t.tsv", EXAMPLES)
    argv = [arg.format(root=tmp_path) for arg in argv]
    code, out, err = run(capsys, "classifier", "train", "--data", train, "--valid", train,
                         "--out", str(tmp_path / "run"), *argv)
    assert (code, out) == (2, "") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_the_resume_command_parses_back_to_the_same_arguments():
    args = parse("--config", "a b.toml", "--set", "model.units=8", "--epochs", "2", "--unidirectional",
                 "--saliency-target", "sum_log_prob", "--saliency-weight", "0", "--no-progress")
    words = shlex.split(_train_command(args))
    assert words[:3] == ["seq2seq", "classifier", "train"]
    assert vars(build_parser().parse_args(words[1:])) == vars(args)


# ----------------------------------------------------------------------------- export

# Runs in a fresh process where `import seq2seq` fails: tensorflow and tensorflow_text only.
_LOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["seq2seq"] = None  # any `import seq2seq` now raises ImportError
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

    classify = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    outputs = classify(texts=tf.constant(json.loads(sys.argv[2])))
    print(json.dumps({
        "kit_modules": sorted(name for name, module in sys.modules.items()
                              if name.startswith("seq2seq") and module is not None),
        "label": [label.decode() for label in outputs["label"].numpy()],
        "probabilities": outputs["probabilities"].numpy().tolist(),
    }))
""")


def test_export_serves_the_labels_predict_prints_in_a_process_without_the_kit(trained, tmp_path, capsys):
    texts = [e.text for e in generate_labeled(12, seed=9, decoy_agreement=0.5)] + [" ".join(["sunel"] * 30)]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    code, out, _ = run(capsys, "classifier", "predict", "--model", str(trained["out"]),
                       "--input", str(tmp_path / "in.txt"))
    assert code == 0
    predicted = [json.loads(line) for line in out.splitlines()]
    code, out, err = run(capsys, "classifier", "export", "--model", str(trained["out"]),
                         "--out", str(tmp_path / "export"))
    assert (code, out) == (0, "") and f"exported to {tmp_path / 'export'}" in err
    loaded = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, str(tmp_path / "export"), json.dumps(texts)],
                            capture_output=True, text=True, timeout=180, cwd=tmp_path,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    served = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert served["kit_modules"] == []
    assert served["label"] == [row["label"] for row in predicted]
    labels = json.loads((trained["out"] / "labels.json").read_text())
    expected = [[row["probabilities"][label] for label in labels] for row in predicted]
    np.testing.assert_allclose(served["probabilities"], expected, atol=2e-6)  # predict rounds to 6 decimals


def test_export_refuses_a_non_empty_out_dir_with_one_line(trained, tmp_path, capsys):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "keep.txt").write_text("mine")
    code, out, err = run(capsys, "classifier", "export", "--model", str(trained["out"]),
                         "--out", str(tmp_path / "export"))
    assert (code, out) == (2, "") and err.count("\n") == 1 and str(tmp_path / "export") in err
    assert (tmp_path / "export" / "keep.txt").read_text() == "mine"
