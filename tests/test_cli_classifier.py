"""`seq2seq classifier train | evaluate | predict` on a tiny generated labeled TSV."""

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq.classification import DEFAULT_SALIENCY_WEIGHT, load_config
from seq2seq.cli.main import main
from seq2seq.data.generated import generate_labeled

TOKENIZER = str(Path(__file__).resolve().parents[1] / "tokenizers" / "generated.model")
TINY = ("--epochs", "1", "--units", "4", "--embed-dim", "4", "--unidirectional", "--tokenizer", TOKENIZER,
        "--no-progress")


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
        code = main(["classifier", "train", "--data", train, "--valid", valid, "--out", str(out), *TINY])
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
    from seq2seq.classification import load_run, predictions

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
