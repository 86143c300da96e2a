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
