"""`seq2seq.diagnostics.translator` through `seq2seq diagnose --model DIR --data FILE`: a run decoded into token ids."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from seq2seq.cli.main import main
from seq2seq.data.generated import generate_pairs
from seq2seq.tokens import END_ID, START_ID

GENERATED_MODEL = Path(__file__).resolve().parents[1] / "tokenizers" / "generated.model"


def tokenizer():
    from seq2seq.tokenizer import SentencePieceTokenizer

    return SentencePieceTokenizer.from_file(GENERATED_MODEL)


@pytest.fixture
def run_dir(tmp_path):
    """A run directory with an untrained tiny Translator, laid out as `load_run` reads it."""
    from seq2seq.runs import config_io
    from seq2seq.data.batching import BatchingConfig
    from seq2seq.runs.config import DecodeConfig, ModelConfig, RunConfig
    from seq2seq.runs.translation import build_translator

    directory = tmp_path / "run"
    directory.mkdir()
    config = RunConfig(model=ModelConfig(embed_dim=8, units=8),
                       batching=BatchingConfig(max_source_len=16, max_target_len=16),
                       decode=DecodeConfig(beam_size=2, max_length=12, batch_size=4, first_word_casing=False))
    (directory / "config.toml").write_text(config_io.to_toml(config))
    shutil.copyfile(GENERATED_MODEL, directory / "tokenizer.model")
    translator = build_translator(config, tokenizer().vocab_size)
    translator((np.array([[5, 6, END_ID]]), np.array([[START_ID, 7, 8]])))  # creates the weights
    translator.save(directory / "model.keras")
    return directory


def test_diagnose_model_decodes_the_data_and_diagnoses_token_ids(run_dir, tmp_path, capsys):
    pairs = generate_pairs("reverse", 6, seed=0)
    data = tmp_path / "test.tsv"
    data.write_text("".join(f"{p.source}\t{p.target}\n" for p in pairs))
    out = tmp_path / "report.json"
    argv = ["diagnose", "--model", str(run_dir), "--data", str(data), "--beam", "1", "--json", str(out)]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("End-token collapse diagnosis: ")
    report = json.loads(out.read_text())
    assert report["kind"] == "ids" and report["num_outputs"] == 6
    # Every generated word is one piece: the references' ids are the words plus END.
    words = [len(p.target.split()) for p in pairs]
    assert report["reference_mean_length"] == pytest.approx(np.mean(words))
    assert report["reference_end_share_by_position"][max(words)] == 1.0


@pytest.mark.parametrize("argv, message", [
    (["--model", "RUN"], "--model DIR and --data FILE go together"),
    (["--model", "RUN", "--data", "x.tsv", "--predictions", "p.txt"], "not both"),
    (["--model", "RUN", "--data", "x.tsv", "--beam", "0"], "--beam must be 1"),
])
def test_diagnose_model_user_errors(run_dir, capsys, argv, message):
    argv = [str(run_dir) if arg == "RUN" else arg for arg in argv]
    assert main(["diagnose", *argv]) == 2
    assert message in capsys.readouterr().err
