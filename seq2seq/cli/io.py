"""Small input/output helpers shared by the subcommands."""

import sys
from pathlib import Path

from seq2seq.errors import UserError


def read_lines(path) -> list[str]:
    """The lines of a UTF-8 text file (a BOM is dropped); UserError if missing or not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"input file {path} is not UTF-8 text") from None


def log(message: str) -> None:
    """A progress or status line for the user, on stderr (stdout carries the results)."""
    print(message, file=sys.stderr)
