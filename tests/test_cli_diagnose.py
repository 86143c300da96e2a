"""`seq2seq diagnose --predictions --references [--targets] [--json] [--plots]`."""

import json

import numpy as np
import pytest

from seq2seq.cli.main import main


def write(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


@pytest.fixture
def files(tmp_path):
    """Collapsed text outputs (2 of 3 empty) and end-padded targets."""
    return {
        "predictions": write(tmp_path / "pred.txt", ["", "le chat", ""]),
        "references": write(tmp_path / "ref.txt", ["le chien", "le chat", "un oiseau bleu"]),
        # 3 is END: rows 1 and 2 end in runs of it, row 3 is 0-padded.
        "targets": write(tmp_path / "targets.txt", ["5 6 3 3 3", "7 3 3 3 3", "5 8 3 0 0"]),
    }


def test_writes_text_report_json_and_plots(files, tmp_path, capsys):
    out_json, plots = tmp_path / "out" / "report.json", tmp_path / "plots"
    argv = ["diagnose", "--predictions", files["predictions"], "--references", files["references"]]
    argv += ["--targets", files["targets"], "--json", str(out_json), "--plots", str(plots)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("End-token collapse diagnosis: COLLAPSED")
    report = json.loads(out_json.read_text(encoding="utf-8"))
    assert report["verdict"] == "collapsed"
    assert report["empty_rate"] == pytest.approx(2 / 3)
    assert report["first_token_end_rate"] == pytest.approx(2 / 3)
    assert report["length_ratio"] == pytest.approx(2 / 7)
    targets = np.array([[5, 6, 3, 3, 3], [7, 3, 3, 3, 3], [5, 8, 3, 0, 0]])
    counts = np.bincount(targets[targets != 0])
    others = [count for token, count in enumerate(counts) if token != 3 and count > 0]
    assert report["targets"]["recommended_end_weight"] == pytest.approx(np.mean(others) / counts[3])
    assert report["targets"]["end_padded_rows"] == 2
    for name in ("lengths.png", "end_by_position.png"):
        assert (plots / name).read_bytes()[:4] == b"\x89PNG"
        assert f"wrote {plots / name}" in stdout


def test_token_id_lines_and_healthy_outputs(tmp_path, capsys):
    predictions = write(tmp_path / "pred.ids", ["5 6 3", "7 3 0"])
    references = write(tmp_path / "ref.ids", ["5 6 3", "7 3"])
    argv = ["diagnose", "--format", "ids", "--predictions", predictions, "--references", references]
    assert main(argv + ["--json", str(tmp_path / "r.json")]) == 0
    assert "HEALTHY" in capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["verdict"], report["kind"], report["unterminated_rate"]) == ("healthy", "ids", 0)


def test_looping_at_the_references_length_is_healthy_and_printed_as_a_note(tmp_path, capsys):
    # 7 words each side; "le le le" loops (1 of 2 outputs) and "le" makes 3/7 against 1/7.
    predictions = write(tmp_path / "pred.txt", ["le le le chat", "un oiseau bleu"])
    references = write(tmp_path / "ref.txt", ["le chien est noir", "un oiseau bleu"])
    out_json = tmp_path / "r.json"
    argv = ["diagnose", "--predictions", predictions, "--references", references]
    assert main(argv + ["--json", str(out_json)]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("End-token collapse diagnosis: HEALTHY")
    assert "Why:" not in stdout
    notes = stdout.split("Notes:")[1]
    assert "50.0% of non-empty outputs repeat a token 3+ times" in notes
    assert "the end token is not the problem here" in notes
    report = json.loads(out_json.read_text())
    assert (report["verdict"], report["reasons"], report["fixes"]) == ("healthy", [], [])
    assert report["length_ratio"] == 1.0 and report["repetition_rate"] == 0.5
    assert report["top_token"] == "le" and report["top_token_share"] == pytest.approx(3 / 7)
    assert report["reference_top_token_share"] == pytest.approx(1 / 7)
    assert "one token, 'le', makes 42.9% of the output tokens" in report["notes"][1]
    assert "Train longer" in report["notes"][2]


def test_padding_masked_flag_reaches_the_report(files, tmp_path):
    out_json = tmp_path / "r.json"
    argv = ["diagnose", "--predictions", files["predictions"], "--references", files["references"]]
    argv += ["--targets", files["targets"], "--no-padding-masked", "--json", str(out_json)]
    assert main(argv) == 0
    assert json.loads(out_json.read_text())["targets"]["padding_masked"] is False


@pytest.mark.parametrize(
    "case, message",
    [
        ("mismatch", "has 3 lines but"),
        ("missing", "input file not found"),
        ("bad_targets", "line 2: expected space-separated token ids"),
        ("no_predictions", "needs --predictions FILE and --references FILE"),
    ],
)
def test_user_errors_exit_2_with_one_line(files, tmp_path, capsys, case, message):
    short = write(tmp_path / "short.txt", ["a", "b"])
    bad = write(tmp_path / "bad.txt", ["5 3", "5 x 3"])
    argv = {
        "mismatch": ["--predictions", files["predictions"], "--references", short],
        "missing": ["--predictions", str(tmp_path / "nope.txt"), "--references", short],
        "bad_targets": ["--predictions", short, "--references", short, "--targets", bad],
        "no_predictions": ["--references", short],
    }[case]
    assert main(["diagnose", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_an_unreadable_line_is_left_out_with_the_other_files_line(tmp_path, capsys):
    predictions = tmp_path / "pred.txt"
    predictions.write_bytes(b"le chat\n\xff\xfe\nun oiseau\n")
    references = write(tmp_path / "ref.txt", ["le chat", "le chien", "un oiseau"])
    out_json = tmp_path / "r.json"
    argv = ["diagnose", "--predictions", str(predictions), "--references", references, "--json", str(out_json)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err == (f"warning: {predictions} line 2: not UTF-8 text (byte 0xff at offset 0); "
                   "left out of the diagnosis with the other file's line\n")
    report = json.loads(out_json.read_text())
    assert report["num_outputs"] == 2 and report["length_ratio"] == 1.0  # "le chien" went out with line 2
    assert main([*argv, "--strict"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {predictions}:2: not UTF-8 text")


def test_json_dash_writes_the_json_alone_to_stdout(files, capsys):
    argv = ["diagnose", "--predictions", files["predictions"], "--references", files["references"]]
    assert main([*argv, "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["verdict"] == "collapsed"
    assert captured.err.startswith("End-token collapse diagnosis: COLLAPSED")


def test_all_empty_outputs_show_n_a_alone_for_the_most_frequent_token(tmp_path, capsys):
    predictions = write(tmp_path / "pred.txt", ["", ""])
    references = write(tmp_path / "ref.txt", ["le chat", "un chien"])
    assert main(["diagnose", "--predictions", predictions, "--references", references]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "most frequent token's share" in line)
    assert row.split()[-2:] == ["n/a", "25.0%"]  # outputs, references ("le", "chat", "un", "chien")
    assert "None" not in out
