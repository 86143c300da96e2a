"""Small input/output helpers shared by the subcommands.

Line inputs keep N lines in, N entries out: `read_input_lines` reads bytes and
decodes each line on its own, so a line that cannot be read (a NUL byte, bytes
that are not UTF-8, more than `DEFAULT_MAX_LINE_CHARS` characters) becomes ""
with its reason in `InputLines.problems`, and the command writes an empty output
(or the line's error) in its place and goes on with the other lines. With
`strict=True` the first such line stops the read with `FILE:LINE: reason`.
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

from seq2seq.data.reader import DEFAULT_MAX_LINE_CHARS, Pair
from seq2seq.errors import UserError

STDIN_NAME = "<stdin>"
_BOM = b"\xef\xbb\xbf"


@dataclass
class InputLines:
    """The lines of one input: `texts[i]` is line i + 1, "" when it could not be read.

    `problems` maps the index of each unreadable line to why, e.g.
    "not UTF-8 text (byte 0xff at offset 5)".
    """

    name: str  # the file's path, or STDIN_NAME
    texts: list[str] = field(default_factory=list)
    problems: dict[int, str] = field(default_factory=dict)

    def readable(self) -> list[int]:
        """Indices of the lines that were read."""
        return [i for i in range(len(self.texts)) if i not in self.problems]

    def warn(self, action: str, *, with_name: bool = False) -> None:
        """One `warning: line N: reason; ACTION` on stderr per unreadable line (`with_name`: `FILE line N`)."""
        where = f"{self.name} " if with_name else ""
        for index, problem in sorted(self.problems.items()):
            log(f"warning: {where}line {index + 1}: {problem}; {action}")


def read_input_lines(path, *, strict: bool = False, max_line_chars: int = DEFAULT_MAX_LINE_CHARS) -> InputLines:
    """The lines of the file at `path` (standard input when `path` is None), decoded one by one.

    Splits on "\\n" only (a "\\r" before it and a leading BOM are dropped), not on
    the other characters `str.splitlines` treats as line ends (U+2028, form
    feed, ...), so line N of the input is always entry N. A final newline ends
    the last line.

    Raises:
        UserError: the file is missing or unreadable; with `strict`, at the
            first unreadable line, as `FILE:LINE: reason`.
    """
    name = str(path) if path else STDIN_NAME
    lines = InputLines(name)
    for number, raw in enumerate(split_raw_lines(_read_bytes(path)), start=1):
        text, problem = decode_line(raw, max_line_chars)
        if problem is not None:
            if strict:
                raise UserError(f"{name}:{number}: {problem}; fix or remove the line (without --strict "
                                "an unreadable line gets a warning and the other lines are processed)")
            lines.problems[number - 1] = problem
        lines.texts.append(text)
    return lines


def read_pair_lines(path, *, strict: bool = False) -> tuple[InputLines, list[Pair]]:
    """The `source TAB reference` lines of a TSV file, as `read_input_lines` reads lines.

    Returns the lines and the pairs of the readable ones, in file order. A line
    without exactly two non-empty columns is unreadable too (a `problems`
    entry, or with `strict` a UserError); blank lines are skipped silently.
    """
    lines = read_input_lines(path, strict=strict)
    pairs = []
    for index in lines.readable():
        text = lines.texts[index]
        if not text.strip():
            continue
        columns = [column.strip() for column in text.split("\t")]
        if len(columns) == 2 and all(columns):
            pairs.append(Pair(*columns))
            continue
        problem = (f"expected 'source TAB reference', found {len(columns)} tab-separated columns"
                   if len(columns) != 2 else "expected 'source TAB reference', found an empty column")
        if strict:
            raise UserError(f"{lines.name}:{index + 1}: {problem}; fix or remove the line")
        lines.problems[index] = problem
    return lines, pairs


def read_lines(path) -> list[str]:
    """The lines of a UTF-8 text file (`read_input_lines` with `strict=True`, as plain strings)."""
    return read_input_lines(path, strict=True).texts


def decode_line(raw: bytes, max_line_chars: int = DEFAULT_MAX_LINE_CHARS) -> tuple[str, str | None]:
    """`(text, None)` for a readable line, else `("", reason)`."""
    if b"\0" in raw:
        return "", f"NUL byte at offset {raw.index(0)}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return "", f"not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})"
    if len(text) > max_line_chars:
        return "", f"longer than {max_line_chars} characters ({len(text)})"
    return text, None


def split_raw_lines(data: bytes) -> list[bytes]:
    """`data` cut at each b"\\n" (a b"\\r" before it and a leading BOM dropped); a final newline ends the last line."""
    lines = data.removeprefix(_BOM).split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line.removesuffix(b"\r") for line in lines]


def _read_bytes(path) -> bytes:
    if not path:
        stdin = sys.stdin
        # A text stream without a byte buffer (a test's StringIO) is taken as it is.
        buffer = getattr(stdin, "buffer", None)
        return buffer.read() if buffer is not None else stdin.read().encode("utf-8", "surrogateescape")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    try:
        return path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None


def log(message: str) -> None:
    """A progress or status line for the user, on stderr (stdout carries the results)."""
    print(message, file=sys.stderr)
