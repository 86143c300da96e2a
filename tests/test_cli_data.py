import re
import subprocess
import sys

import pytest
from helpers_gettext import write_catalog

from seq2seq.cli.main import main
from seq2seq.data.generated import generate_sentences
from seq2seq.data.reader import read_parallel_tsv

GOOD = "hello world\tbonjour le monde\ngood night\tbonne nuit\nthanks\tmerci\n"


def run(capsys, *argv):
    """Runs `seq2seq ARGV` in-process; returns (exit code, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path, data, name="corpus.tsv"):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


# ------------------------------------------------------------ data check


def test_check_prints_pairs_lengths_and_padding(tmp_path, capsys):
    code, out, err = run(capsys, "data", "check", write(tmp_path, GOOD))
    assert code == 0 and err == ""
    assert "3 pairs accepted" in out and "skipped 0 lines" in out
    assert "lengths in words:   p50   p90   p99   max" in out
    assert re.search(r"\n  source +2 +2 +2 +2\n  target +2 +3 +3 +3\n", out)
    assert "real-token fraction" in out and "padding fraction" in out


def test_check_lists_skipped_lines_by_reason_with_locations(tmp_path, capsys):
    path = write(tmp_path, GOOD.encode() + b"one column\n\tno source\nnul\0byte\tx\ncaf\xe9\tx\n")
    code, out, _ = run(capsys, "data", "check", path)
    assert code == 0
    assert "3 pairs accepted" in out and "skipped 4 lines:" in out
    assert f"wrong number of columns: 1 ({path}:4)" in out
    assert f"empty source: 1 ({path}:5)" in out
    assert f"NUL byte: 1 ({path}:6)" in out
    assert f"invalid UTF-8: 1 ({path}:7)" in out


def test_check_over_long_lines_are_skipped_or_truncated(tmp_path, capsys):
    path = write(tmp_path, GOOD + "a b c d e f g h i j k l m n o p\tshort\n")
    code, out, _ = run(capsys, "data", "check", path, "--max-line-chars", "20")
    assert code == 0 and f"over-long line: 1 ({path}:4)" in out
    code, out, _ = run(capsys, "data", "check", path, "--max-line-chars", "20", "--truncate")
    assert code == 0 and "4 pairs accepted" in out and f"truncated 1 over-long lines ({path}:4)" in out


def test_check_strict_stops_at_the_first_bad_line(tmp_path, capsys):
    path = write(tmp_path, GOOD + "bad line\n")
    code, out, err = run(capsys, "data", "check", path, "--strict")
    assert code == 2 and out == ""
    assert err.startswith(f"error: {path}:4: wrong number of columns") and err.count("\n") == 1


@pytest.mark.parametrize(
    "data, message",
    [
        (None, "No such file"),
        ("DIR", "received a directory"),
        (b"", "is empty"),
        (b"\n \n\r\n", "only blank lines"),
        (bytes(range(256)) * 16, "looks binary"),
        (b"no tabs at all\n", "No usable lines"),
    ],
    ids=["missing", "directory", "empty", "blank", "binary", "nothing-usable"],
)
def test_check_refuses_bad_files_with_one_line(tmp_path, capsys, data, message):
    path = str(tmp_path / "missing.tsv") if data is None else str(tmp_path) if data == "DIR" else write(tmp_path, data)
    code, out, err = run(capsys, "data", "check", path)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_check_aligned_files(tmp_path, capsys):
    source = write(tmp_path, "hello\ngood night\n", "src.txt")
    target = write(tmp_path, "bonjour\nbonne nuit\n", "tgt.txt")
    code, out, _ = run(capsys, "data", "check", source, "--target-file", target)
    assert code == 0 and "2 pairs accepted" in out
    write(tmp_path, "bonjour\n", "tgt.txt")
    code, _, err = run(capsys, "data", "check", source, "--target-file", target)
    assert code == 2 and "same number of lines" in err


def test_check_aligned_format_needs_a_target_file(tmp_path, capsys):
    code, _, err = run(capsys, "data", "check", write(tmp_path, GOOD), "--format", "aligned")
    assert code == 2 and "--target-file" in err


def test_check_labeled_text(tmp_path, capsys):
    path = write(tmp_path, "pos\tgreat film\t1 0\nneg\tdull\t1\nneg\tvery dull\t1\n")
    code, out, _ = run(capsys, "data", "check", path, "--format", "labeled")
    assert code == 0 and "2 texts accepted" in out and f"mask length mismatch: 1 ({path}:3)" in out
    assert "  text " in out and "target" not in out


def test_check_counts_sentencepiece_pieces_with_a_tokenizer(tmp_path, capsys):
    sentencepiece = pytest.importorskip("sentencepiece")
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(generate_sentences(300, seed=0)) + "\n")
    prefix = str(tmp_path / "tiny")
    sentencepiece.SentencePieceTrainer.train(
        input=str(text), model_prefix=prefix, vocab_size=60, model_type="bpe", minloglevel=2
    )
    corpus = write(tmp_path, "ban kis mun\tmun kis ban\n")
    code, out, _ = run(capsys, "data", "check", corpus, "--tokenizer", prefix + ".model")
    assert code == 0 and "lengths in pieces:" in out and "approximate" not in out
    code, _, err = run(capsys, "data", "check", corpus, "--tokenizer", corpus)
    assert code == 2 and "Cannot load" in err
    code, _, err = run(capsys, "data", "check", corpus, "--tokenizer", str(tmp_path / "none.model"))
    assert code == 2 and "No such tokenizer model" in err


def test_bad_input_never_prints_a_traceback(tmp_path):
    binary = write(tmp_path, bytes(range(256)) * 16, "data.bin")
    result = subprocess.run(
        [sys.executable, "-m", "seq2seq.cli.main", "data", "check", binary], capture_output=True, text=True
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


# ------------------------------------------------------------ data gettext


@pytest.fixture
def locale_dir(tmp_path):
    messages = {f"Message number {n}": f"Message numéro {n}" for n in range(40)}
    write_catalog(tmp_path / "locale", "fr", "app", {**messages, "%d file\x00%d files": "%d fichier\x00%d fichiers"})
    return str(tmp_path / "locale")


def test_gettext_writes_the_split_and_prints_counts(tmp_path, locale_dir, capsys):
    out_dir = tmp_path / "out"
    argv = ("data", "gettext", "--target", "fr", "--locale-dir", locale_dir, "--seed", "1", "--out", str(out_dir))
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert "40 pairs accepted" in out and "plural entry: 1" in out
    assert "train: 36 pairs" in out and "valid: 2 pairs" in out and "test: 2 pairs" in out
    parts = {name: read_parallel_tsv(out_dir / f"{name}.tsv", strict=True)[0] for name in ("train", "valid", "test")}
    assert sum(map(len, parts.values())) == 40
    first = {name: (out_dir / f"{name}.tsv").read_bytes() for name in parts}
    assert run(capsys, *argv)[0] == 0
    assert first == {name: (out_dir / f"{name}.tsv").read_bytes() for name in parts}


def test_gettext_unknown_language_or_bad_out_is_one_line(tmp_path, locale_dir, capsys):
    code, _, err = run(capsys, "data", "gettext", "--target", "xx", "--locale-dir", locale_dir, "--out", str(tmp_path))
    assert code == 2 and "Available: fr" in err and err.count("\n") == 1
    a_file = write(tmp_path, GOOD)
    code, _, err = run(capsys, "data", "gettext", "--target", "fr", "--locale-dir", locale_dir, "--out", a_file)
    assert code == 2 and "which is a file" in err
    argv = ("data", "gettext", "--target", "fr", "--locale-dir", locale_dir, "--test-fraction", "2", "--out", str(tmp_path))
    code, _, err = run(capsys, *argv)
    assert code == 2 and "test_fraction=2.0" in err


# ------------------------------------------------------------ data generate


@pytest.mark.parametrize("task, columns", [("reverse", 2), ("labeled", 3), ("sentences", 1)])
def test_generate_writes_one_example_per_line(tmp_path, capsys, task, columns):
    out = tmp_path / "out.txt"
    code, printed, _ = run(capsys, "data", "generate", "--task", task, "--n", "7", "--seed", "3", "--out", str(out))
    assert code == 0 and f"7 {task} examples" in printed
    lines = out.read_text().splitlines()
    assert len(lines) == 7 and all(len(line.split("\t")) == columns for line in lines)


def test_generated_tasks_pass_data_check(tmp_path, capsys):
    out = str(tmp_path / "dedup.tsv")
    assert run(capsys, "data", "generate", "--task", "dedup", "--n", "50", "--out", out)[0] == 0
    code, printed, _ = run(capsys, "data", "check", out, "--strict")
    assert code == 0 and "50 pairs accepted" in printed


# ------------------------------------------------------------ the check summary itself


def test_length_percentiles_are_nearest_rank():
    from seq2seq.data.check import LengthStats

    assert LengthStats.from_lengths(list(range(100, 0, -1))) == LengthStats(50, 90, 99, 100)
    assert LengthStats.from_lengths([]) == LengthStats(0, 0, 0, 0)


def test_check_uses_the_batching_prediction_of_the_pipeline(tmp_path):
    from seq2seq.data.batching import BatchingConfig, real_token_fraction
    from seq2seq.data.check import check_corpus

    config = BatchingConfig(max_source_len=4, max_target_len=4, tokens_per_batch=64, bucket_lengths=(2, 4))
    result = check_corpus(write(tmp_path, GOOD), batching=config)
    assert result.real_token_fraction == real_token_fraction([2, 2, 1], [3, 2, 1], config)
    assert (result.over_max_source, result.over_max_target) == (0, 0)
    assert result.batching is config
