import os
import subprocess
import sys

import pytest

from seq2seq.cli.main import build_parser, main


def test_help_lists_every_registered_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    subcommands = build_parser()._subparsers._group_actions[0].choices
    assert subcommands, "no subcommands registered"
    for name in subcommands:
        assert name in out


def test_help_does_not_import_tensorflow():
    code = (
        "import sys; from seq2seq.cli.main import build_parser; build_parser(); "
        "print('tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_unknown_command_exits_with_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_read_lines_keeps_one_entry_per_newline(tmp_path):
    from seq2seq.cli.io import read_lines

    path = tmp_path / "lines.txt"
    # BOM, CRLF, a U+2028 and a form feed inside lines (str.splitlines would split there), an empty line.
    path.write_bytes("\ufeffone\r\ntwo\u2028half\n\nthree\x0cfour\n".encode("utf-8"))
    assert read_lines(path) == ["one", "two\u2028half", "", "three\x0cfour"]
    path.write_text("no final newline", encoding="utf-8")
    assert read_lines(path) == ["no final newline"]


def test_standard_input_is_split_like_a_file(monkeypatch):
    import io

    from seq2seq.cli.io import read_input_lines

    monkeypatch.setattr(sys, "stdin", io.StringIO("\ufeffone\r\ntwo\u2028half\n"))
    assert read_input_lines(None).texts == ["one", "two\u2028half"]


def test_read_lines_names_the_bad_file(tmp_path):
    from seq2seq.cli.io import read_lines
    from seq2seq.errors import UserError

    with pytest.raises(UserError, match="input file not found: .*missing.txt"):
        read_lines(tmp_path / "missing.txt")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin.txt:1: not UTF-8 text \(byte 0xe9 at offset 3\)"):
        read_lines(latin)


def test_tensorflow_starts_without_lines_on_stderr():
    """Start-up noise and oneDNN's later "supports DT_INT64 only on ..." line stay off the terminal."""
    script = (
        "from seq2seq.cli.quiet import import_tensorflow_quietly\n"
        "import_tensorflow_quietly()\n"
        "import tensorflow as tf\n"
        "tf.function(lambda x: tf.concat([x, x], axis=1))(tf.ragged.constant([[1], [2, 3]], tf.int64))\n"
        "for dtype in (tf.bool, tf.int32):\n"
        "    tf.function(tf.transpose)(tf.zeros([2, 3], dtype))\n"
        "print('ok')\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert "oneDNN" not in result.stderr and "E0000" not in result.stderr, result.stderr
