"""Small input/output helpers shared by the subcommands."""

import sys
from pathlib import Path

from seq2seq.errors import UserError


def read_lines(path) -> list[str]:
    """The lines of a UTF-8 text file, without their line ends (a BOM is dropped).

    Splits on "\n" only (a "\r" before it is dropped), not on the other
    characters `str.splitlines` treats as line ends (U+2028, form feed, ...),
    so line N of the file is always entry N: sources, predictions and
    references stay aligned. A final newline ends the last line.
    Raises UserError if the file is missing, unreadable or not UTF-8.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"input file {path} is not UTF-8 text") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    return split_lines(text)


def read_input(path) -> list[str]:
    """`read_lines(path)`, or the lines of standard input when `path` is None."""
    return read_lines(path) if path else split_lines(sys.stdin.read().removeprefix("\ufeff"))


def split_lines(text: str) -> list[str]:
    """`text` cut at each "\n" (a "\r" before it dropped); a final newline ends the last line."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def log(message: str) -> None:
    """A progress or status line for the user, on stderr (stdout carries the results)."""
    print(message, file=sys.stderr)
