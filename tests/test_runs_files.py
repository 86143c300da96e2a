"""Each file of a run directory, missing, empty, cut short or from another run: one `error:` line, exit 2.

One tiny translator run and one tiny classifier run are trained once for the
module; each case copies one, damages one file, and runs a command that loads
the run (`seq2seq.runs.files` does the reading).
"""

import contextlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq.cli.main import main
from seq2seq.data.generated import generate_labeled

TOKENIZER = str(Path(__file__).resolve().parents[1] / "tokenizers" / "generated.model")
TRANSLATOR_CONFIG = """
[data]
corpus = "generated"
task = "copy"
generated_pairs = 120

[tokenizer]
vocab_size = 40

[model]
embed_dim = 8
units = 8
dropout = 0.0

[train]
epochs = 1
steps_per_epoch = 2

[decode]
beam_size = 1
max_length = 6
"""
RUN_FILES = ("config.toml", "tokenizer.model", "casing.json", "labels.json", "model.keras")


def quietly(argv) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(argv)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"translator": DIR, "classifier": DIR, "root": DIR}: two runs trained for a step or two."""
    root = tmp_path_factory.mktemp("runs")
    (root / "tiny.toml").write_text(TRANSLATOR_CONFIG)
    assert quietly(["train", "--config", str(root / "tiny.toml"), "--out", str(root / "translator"),
                    "--no-progress"]) == 0
    data = root / "train.tsv"
    data.write_text("".join(f"{e.label}\t{e.text}\n" for e in generate_labeled(24, seed=1)))
    assert quietly(["classifier", "train", "--data", str(data), "--valid", str(data), "--out",
                    str(root / "classifier"), "--tokenizer", TOKENIZER, "--epochs", "1", "--units", "4",
                    "--embed-dim", "4", "--unidirectional", "--no-progress"]) == 0
    (root / "input.txt").write_text("a b\n")
    (root / "pairs.tsv").write_text("a b\ta b\n")
    return {"translator": root / "translator", "classifier": root / "classifier", "root": root}


def damaged_copy(runs, tmp_path, kind: str, name: str, damage: str) -> Path:
    """A copy of the `kind` run with `name` missing, empty, cut in half, or taken from elsewhere."""
    run = tmp_path / kind
    shutil.copytree(runs[kind], run, ignore=shutil.ignore_patterns("checkpoints", "best", "logs"))
    path = run / name
    if damage == "missing":
        path.unlink()
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        OTHER_RUN[kind, name](runs, path)
    return run


def _other_kind(runs, path):
    """The same file of the other kind of run (a classifier's for a translator, and back)."""
    other = "classifier" if path.parent.name == "translator" else "translator"
    shutil.copyfile(runs[other] / path.name, path)


def _other_units(runs, path):
    path.write_text(path.read_text().replace("units = 8", "units = 12", 1))


OTHER_RUN = {
    ("translator", "config.toml"): _other_units,
    ("translator", "tokenizer.model"): _other_kind,
    ("translator", "model.keras"): _other_kind,
    ("translator", "casing.json"): lambda runs, path: path.write_text('["neg", "pos"]\n'),  # a labels.json
    ("classifier", "config.toml"): _other_kind,
    ("classifier", "tokenizer.model"): _other_kind,
    ("classifier", "model.keras"): _other_kind,
    ("classifier", "labels.json"): lambda runs, path: path.write_text('["neg", "neutral", "pos"]\n'),
}
# What the message says, beyond naming the file, for each damage ("other": by kind and file).
SAYS = {"missing": "missing", "empty": "is empty", "truncated": "cut short"}
OTHER_SAYS = {
    ("translator", "config.toml"): "says model.units = 12 but model.keras has units = 8: the two files come from "
                                   "different runs",
    ("translator", "tokenizer.model"): "pieces but model.keras embeds 40: the two files come from different runs",
    ("translator", "model.keras"): "holds a Classifier, not a Translator",
    ("translator", "casing.json"): 'does not hold {"lower_first_words": [words]}',
    ("classifier", "config.toml"): "is not the config of a trained classifier run (unknown config section",
    ("classifier", "tokenizer.model"): "has 40 pieces but model.keras embeds",
    ("classifier", "model.keras"): "holds a Translator, not a Classifier",
    ("classifier", "labels.json"): "names 3 labels but model.keras has 2 classes",
}
CASES = [(kind, name, damage) for kind, name in OTHER_RUN
         for damage in ("missing", "empty", "truncated", "other")]
LOAD = {
    "translator": ["translate", "--model", "{run}", "--input", "{root}/input.txt"],
    "classifier": ["classifier", "predict", "--model", "{run}", "--input", "{root}/input.txt"],
}


def run_command(argv, runs, run, capsys):
    code = main([word.format(run=run, root=runs["root"]) for word in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("kind, name, damage", CASES, ids=["-".join(case) for case in CASES])
def test_a_damaged_run_file_is_one_error_line_naming_it_and_the_fix(runs, tmp_path, capsys, kind, name, damage):
    run = damaged_copy(runs, tmp_path, kind, name, damage)
    code, out, err = run_command(LOAD[kind], runs, run, capsys)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert (OTHER_SAYS[kind, name] if damage == "other" else SAYS[damage]) in err
    assert str(run / name) in err or f"missing: {name}" in err
    fixes = ("point --model at another run directory", "set first_word_casing = false")
    assert any(fix in err for fix in fixes), err


def test_the_undamaged_runs_load(runs, capsys):
    for kind, argv in LOAD.items():
        code, out, err = run_command(argv, runs, runs[kind], capsys)
        assert code == 0 and len(out.splitlines()) == 1, err


@pytest.mark.parametrize("argv", [
    ["evaluate", "--model", "{run}", "--data", "{root}/pairs.tsv"],
    ["export", "--model", "{run}", "--out", "{root}/export"],
    ["diagnose", "--model", "{run}", "--data", "{root}/pairs.tsv"],
], ids=["evaluate", "export", "diagnose"])
def test_every_translator_command_answers_a_damaged_run_in_one_line(runs, tmp_path, capsys, argv):
    run = damaged_copy(runs, tmp_path, "translator", "model.keras", "truncated")
    code, out, err = run_command(argv, runs, run, capsys)
    assert (code, out) == (2, "")
    assert err == f"error: {run / 'model.keras'} is not a .keras (zip) archive, perhaps cut short; retrain the " \
                  "run (`seq2seq train --config FILE --out DIR`) or point --model at another run directory\n"


def test_classifier_evaluate_answers_a_damaged_run_in_one_line(runs, tmp_path, capsys):
    run = damaged_copy(runs, tmp_path, "classifier", "labels.json", "truncated")
    code, out, err = run_command(["classifier", "evaluate", "--model", "{run}", "--data", "{root}/train.tsv"],
                                 runs, run, capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {run / 'labels.json'} is not valid JSON, perhaps cut short") and \
        err.count("\n") == 1


def test_missing_casing_json_can_be_turned_off_in_config_toml(runs, tmp_path, capsys):
    run = damaged_copy(runs, tmp_path, "translator", "casing.json", "missing")
    config = run / "config.toml"
    config.write_text(config.read_text().replace("first_word_casing = true", "first_word_casing = false"))
    code, out, err = run_command(LOAD["translator"], runs, run, capsys)
    assert code == 0 and len(out.splitlines()) == 1, err


def test_an_empty_model_keras_is_answered_without_a_traceback_in_a_real_process(runs, tmp_path):
    run = damaged_copy(runs, tmp_path, "translator", "model.keras", "empty")
    result = subprocess.run([sys.executable, "-m", "seq2seq.cli.main", "translate", "--model", str(run)],
                            input="a b\n", capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert lines == [f"error: {run / 'model.keras'} is empty (a write cut short?); retrain the run "
                     "(`seq2seq train --config FILE --out DIR`) or point --model at another run directory"]
    assert "Traceback" not in result.stderr
