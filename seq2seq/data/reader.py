"""Line-level reading and validation shared by every text corpus format.

Three formats, all UTF-8, one example per line:

- parallel TSV: `source<TAB>target` (`read_parallel_tsv`);
- two line-aligned files, line i of one translating line i of the other
  (`read_aligned`);
- labeled TSV: `label<TAB>text[<TAB>mask]`, the mask being one space-separated
  0/1 digit per whitespace word of the text (`read_labeled_tsv`).

A UTF-8 BOM, CRLF line endings and a missing final newline are accepted
silently. A file that is missing, a directory, empty, only blank lines or
binary is refused with a `UserError`. A bad line (NUL byte, invalid UTF-8,
wrong number of columns, an empty field, a bad mask, an over-long field) is
skipped and counted in the `ReadReport` by reason, or with `strict=True` stops
the read with a `UserError` naming `file:line` and the reason. Blank lines are
skipped and counted too, but are never an error, even in strict mode (a
trailing empty line is too common to refuse a file for).
"""

import codecs
import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from seq2seq.errors import UserError

# Longest accepted field (source, target, label or text), in characters.
DEFAULT_MAX_LINE_CHARS = 1000
# How many `file:line` locations a report keeps per reason.
MAX_LOCATIONS = 5

BLANK = "blank line"
NUL_BYTE = "NUL byte"
INVALID_UTF8 = "invalid UTF-8"
COLUMNS = "wrong number of columns"
EMPTY_SOURCE = "empty source"
EMPTY_TARGET = "empty target"
EMPTY_LABEL = "empty label"
EMPTY_TEXT = "empty text"
BAD_MASK = "bad mask"
MASK_LENGTH = "mask length mismatch"
OVER_LONG = "over-long line"

_BOM = codecs.BOM_UTF8
_HEAD_BYTES = 65536
# A file whose head is more than this fraction NUL bytes, or more than the
# second fraction undecodable or control characters, is binary.
_MAX_NUL_FRACTION = 0.05
_MAX_NON_TEXT_FRACTION = 0.30
_MAGIC_HINTS = (
    (b"\x1f\x8b", "it looks gzip-compressed; decompress it first (gunzip)"),
    (b"PK\x03\x04", "it looks like a zip archive; extract it first (unzip)"),
    (b"\xfd7zXZ\x00", "it looks xz-compressed; decompress it first (unxz)"),
    (b"BZh", "it looks bzip2-compressed; decompress it first (bunzip2)"),
)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True)
class Pair:
    """One parallel example: a source sentence and its translation."""

    source: str
    target: str


@dataclass(frozen=True)
class LabeledText:
    """One classification example.

    `mask`, when given, holds one 0/1 per whitespace-separated word of `text`
    (1 = a word the model may rely on, 0 = a word it should ignore).
    """

    label: str
    text: str
    mask: tuple[int, ...] | None = None


@dataclass
class ReadReport:
    """What a read kept, skipped (by reason, with the first locations) and truncated."""

    # The files read, in order.
    paths: tuple[str, ...] = ()
    # What one kept item is called in messages: "pairs", "texts".
    item_name: str = "pairs"
    # What one input unit is called: "lines", or "entries" for catalogs.
    line_name: str = "lines"
    # Lines read (line pairs for aligned files), blank ones included.
    lines: int = 0
    # Items returned.
    kept: int = 0
    # Skipped lines per reason, and the first MAX_LOCATIONS "file:line" of each.
    skipped: Counter = field(default_factory=Counter)
    skipped_at: dict[str, list[str]] = field(default_factory=dict)
    # Kept lines whose over-long fields were cut, and the first locations.
    truncated: int = 0
    truncated_at: list[str] = field(default_factory=list)

    def skip(self, reason: str, location: str) -> None:
        """Counts one skipped line and remembers its location if among the first few."""
        self.skipped[reason] += 1
        locations = self.skipped_at.setdefault(reason, [])
        if len(locations) < MAX_LOCATIONS:
            locations.append(location)

    def note_truncated(self, location: str) -> None:
        """Counts one kept line whose fields were cut to the length limit."""
        self.truncated += 1
        if len(self.truncated_at) < MAX_LOCATIONS:
            self.truncated_at.append(location)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary_lines(self) -> list[str]:
        """Human-readable lines: items kept, then skipped lines by reason, then truncations."""
        lines = [f"{self.kept} {self.item_name} accepted from {', '.join(self.paths)} ({self.lines} {self.line_name})"]
        if self.skipped:
            lines.append(f"skipped {self.total_skipped} {self.line_name}:")
            for reason, count in self.skipped.most_common():
                lines.append(f"  {reason}: {count} ({_join_locations(self.skipped_at[reason], count)})")
        else:
            lines.append(f"skipped 0 {self.line_name}")
        if self.truncated:
            locations = _join_locations(self.truncated_at, self.truncated)
            lines.append(f"truncated {self.truncated} over-long {self.line_name} ({locations})")
        return lines


def _join_locations(locations: list[str], count: int) -> str:
    more = ", ..." if count > len(locations) else ""
    return ", ".join(locations) + more


class _BadLine(Exception):
    """A line to skip (or, in strict mode, to stop at), with its reason and a detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class _Options:
    max_line_chars: int
    truncate: bool
    strict: bool


def _options(max_line_chars: int, truncate: bool, strict: bool) -> _Options:
    if not isinstance(max_line_chars, int) or max_line_chars < 1:
        raise UserError(
            f"Expected a positive max_line_chars (--max-line-chars). Received: max_line_chars={max_line_chars!r}"
        )
    return _Options(max_line_chars, bool(truncate), bool(strict))


# ---------------------------------------------------------------- file checks


def check_text_file(path) -> Path:
    """Refuses a path that is missing, a directory, unreadable, empty or binary.

    Returns:
        The path as a `Path`.
    Raises:
        UserError: naming the path and what to do about it.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"No such file: {path}. Expected the path of a UTF-8 text corpus; check the spelling.")
    if path.is_dir():
        raise UserError(f"Expected a file, received a directory: {path}. Pass one of the files inside it.")
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError as error:
        raise UserError(f"Cannot read {path}: {error.strerror or error}. Check its permissions.") from None
    if not head:
        raise UserError(f"{path} is empty. Expected a UTF-8 text file with one example per line.")
    _refuse_binary(path, head)
    return path


def _refuse_binary(path: Path, head: bytes) -> None:
    if head.startswith(_UTF16_BOMS):
        raise UserError(f"{path} is UTF-16, expected UTF-8. Convert it: iconv -f UTF-16 -t UTF-8 {path} > out.txt")
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head, final=False)
    non_text = sum(1 for char in text if char in "\ufffd\x7f" or (ord(char) < 32 and char not in "\t\n\r\f"))
    nul_fraction = head.count(0) / len(head)
    if nul_fraction <= _MAX_NUL_FRACTION and non_text <= _MAX_NON_TEXT_FRACTION * max(1, len(text)):
        return
    hint = next((hint for magic, hint in _MAGIC_HINTS if head.startswith(magic)), "expected a UTF-8 text file")
    raise UserError(
        f"{path} looks binary ({nul_fraction:.0%} NUL bytes, {non_text / max(1, len(text)):.0%} "
        f"non-text characters in its first {len(head)} bytes): {hint}."
    )


def _iter_raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yields (line number from 1, line bytes without BOM, CR or LF)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            yield number, raw


# ---------------------------------------------------------------- line parsing


def _decode(raw: bytes, where: str = "") -> str:
    """The line's text; raises _BadLine for NUL bytes or invalid UTF-8 (detail ending `where`)."""
    if b"\x00" in raw:
        raise _BadLine(NUL_BYTE, f"at byte offset {raw.index(0)}{where}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _BadLine(INVALID_UTF8, f"byte 0x{raw[error.start]:02x} at byte offset {error.start}{where}") from None


def _split_columns(text: str, allowed: tuple[int, ...], layout: str) -> list[str]:
    columns = text.split("\t")
    if len(columns) not in allowed:
        raise _BadLine(COLUMNS, f"found {len(columns)} tab-separated columns, expected {layout}")
    return columns


def _require(text: str, reason: str) -> str:
    text = text.strip()
    if not text:
        raise _BadLine(reason, "nothing but whitespace")
    return text


def _fit(text: str, options: _Options) -> tuple[str, bool]:
    """The field cut to the limit when `truncate`, else itself; raises _BadLine if too long."""
    if len(text) <= options.max_line_chars:
        return text, False
    if not options.truncate:
        raise _BadLine(OVER_LONG, f"{len(text)} characters, limit {options.max_line_chars}")
    cut = text[: options.max_line_chars]
    if not text[options.max_line_chars].isspace():
        last_space = re.search(r"\s\S*$", cut)
        if last_space and last_space.start() > 0:
            cut = cut[: last_space.start()]
    return cut.rstrip(), True


def _parse_pair(source: str, target: str, options: _Options) -> tuple[Pair, bool]:
    source = _require(source, EMPTY_SOURCE)
    target = _require(target, EMPTY_TARGET)
    source, cut_source = _fit(source, options)
    target, cut_target = _fit(target, options)
    return Pair(source, target), cut_source or cut_target


def _parse_tsv_line(text: str, options: _Options) -> tuple[Pair, bool]:
    source, target = _split_columns(text, (2,), "2 (source TAB target)")
    return _parse_pair(source, target, options)


def _parse_mask(column: str, words: int) -> tuple[int, ...]:
    digits = column.split()
    if not digits or any(digit not in ("0", "1") for digit in digits):
        raise _BadLine(BAD_MASK, f"expected space-separated 0/1 digits, received {column[:40]!r}")
    if len(digits) != words:
        raise _BadLine(MASK_LENGTH, f"{len(digits)} mask digits for {words} words")
    return tuple(int(digit) for digit in digits)


def _parse_labeled_line(line: str, options: _Options) -> tuple[LabeledText, bool]:
    columns = _split_columns(line, (2, 3), "2 or 3 (label TAB text [TAB mask])")
    label, cut_label = _fit(_require(columns[0], EMPTY_LABEL), options)
    text = _require(columns[1], EMPTY_TEXT)
    mask = _parse_mask(columns[2], len(text.split())) if len(columns) == 3 else None
    text, cut_text = _fit(text, options)
    if cut_text and mask is not None:
        mask = mask[: len(text.split())]
    return LabeledText(label, text, mask), cut_label or cut_text


# ---------------------------------------------------------------- the read loop


class _Reader:
    """Accumulates kept items and the report; applies the strict policy."""

    def __init__(self, report: ReadReport, options: _Options, expected: str):
        self.report = report
        self.options = options
        self.expected = expected
        self.items = []
        self.blank_only = True

    def take(self, location: str, parse: Callable[[], tuple[object, bool]]) -> None:
        """Parses one non-blank line, keeping its item or recording why not."""
        self.blank_only = False
        try:
            item, truncated = parse()
        except _BadLine as bad:
            if self.options.strict:
                raise UserError(
                    f"{location}: {bad.reason} ({bad.detail}). Expected {self.expected}. "
                    "Fix or remove the line; without strict mode bad lines are skipped and counted."
                ) from None
            self.report.skip(bad.reason, location)
            return
        if truncated:
            self.report.note_truncated(location)
        self.items.append(item)
        self.report.kept += 1

    def finish(self, what: str) -> list:
        """The kept items; refuses a read that kept nothing."""
        if self.blank_only:
            raise UserError(f"{what} has only blank lines ({self.report.lines}). Expected {self.expected}.")
        if not self.items:
            reasons = ", ".join(f"{reason}: {count}" for reason, count in self.report.skipped.most_common())
            first = next(iter(self.report.skipped_at.values()))[0]
            raise UserError(
                f"No usable lines in {what}: all {self.report.total_skipped} lines were skipped "
                f"({reasons}; first at {first}). Expected {self.expected}."
            )
        return self.items


def _read_columns(path, parse_line, item_name: str, expected: str, options: _Options):
    path = check_text_file(path)
    report = ReadReport(paths=(str(path),), item_name=item_name)
    reader = _Reader(report, options, expected)
    for number, raw in _iter_raw_lines(path):
        report.lines += 1
        location = f"{path}:{number}"
        if not raw.strip():
            report.skip(BLANK, location)
            continue
        reader.take(location, lambda: parse_line(_decode(raw), options))
    return reader.finish(str(path)), report


def read_parallel_tsv(path, *, max_line_chars: int = DEFAULT_MAX_LINE_CHARS, truncate: bool = False,
                      strict: bool = False) -> tuple[list[Pair], ReadReport]:
    """Reads `source<TAB>target` lines.

    Args:
        path: the TSV file.
        max_line_chars: longest accepted source or target, in characters.
        truncate: cut over-long fields (at a word boundary) instead of skipping the line.
        strict: stop at the first bad line with a `UserError` naming file:line.
    Returns:
        The pairs in file order and the report of what was skipped.
    """
    options = _options(max_line_chars, truncate, strict)
    return _read_columns(path, _parse_tsv_line, "pairs", "one 'source<TAB>target' pair per line", options)


def read_labeled_tsv(path, *, max_line_chars: int = DEFAULT_MAX_LINE_CHARS, truncate: bool = False,
                     strict: bool = False) -> tuple[list[LabeledText], ReadReport]:
    """Reads `label<TAB>text[<TAB>mask]` lines; the mask is one 0/1 per word of the text.

    Options as in `read_parallel_tsv`; a truncated text keeps the mask of its kept words.
    """
    options = _options(max_line_chars, truncate, strict)
    expected = "'label<TAB>text' or 'label<TAB>text<TAB>mask' per line, the mask one 0/1 per word"
    return _read_columns(path, _parse_labeled_line, "texts", expected, options)


def read_aligned(source_path, target_path, *, max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
                 truncate: bool = False, strict: bool = False) -> tuple[list[Pair], ReadReport]:
    """Reads two line-aligned files: line i of the target translates line i of the source.

    Options as in `read_parallel_tsv`. Problems in one file are located in
    that file. Blank lines at the end of either file are ignored; any other
    difference in line counts is a `UserError`.
    """
    options = _options(max_line_chars, truncate, strict)
    source_path, target_path = check_text_file(source_path), check_text_file(target_path)
    report = ReadReport(paths=(str(source_path), str(target_path)), item_name="pairs")
    reader = _Reader(report, options, "one sentence per line in each file, the files line-aligned")
    lines = itertools.zip_longest(_iter_raw_lines(source_path), _iter_raw_lines(target_path))
    for source_line, target_line in lines:
        if source_line is None or target_line is None:
            _check_only_blank_left(source_path, target_path, source_line, target_line, lines)
            break
        report.lines += 1
        _take_aligned(reader, source_path, target_path, source_line, target_line)
    return reader.finish(f"{source_path} and {target_path}"), report


def _take_aligned(reader: _Reader, source_path: Path, target_path: Path, source_line, target_line) -> None:
    (number, source_raw), (_, target_raw) = source_line, target_line
    source_location, target_location = f"{source_path}:{number}", f"{target_path}:{number}"
    if not source_raw.strip() and not target_raw.strip():
        reader.report.skip(BLANK, source_location)
        return

    def parse():
        source = _decode(source_raw, f", in {source_location}")
        target = _decode(target_raw, f", in {target_location}")
        try:
            return _parse_pair(source, target, reader.options)
        except _BadLine as bad:
            where = target_location if bad.reason == EMPTY_TARGET else source_location
            raise _BadLine(bad.reason, f"{bad.detail}, in {where}") from None

    reader.take(source_location, parse)


def _check_only_blank_left(source_path, target_path, source_line, target_line, rest) -> None:
    """Past the end of one file: the other may only have blank lines left."""
    longer, shorter = (source_path, target_path) if target_line is None else (target_path, source_path)
    remaining = [source_line or target_line] + [s if t is None else t for s, t in rest]
    if all(not raw.strip() for _, raw in remaining):
        return
    long_count = remaining[-1][0]
    short_count = remaining[0][0] - 1
    raise UserError(
        f"Expected line-aligned files with the same number of lines. Received: {longer} has "
        f"{long_count} lines, {shorter} has {short_count}; the first unmatched line is {longer}:{remaining[0][0]}."
    )


def write_parallel_tsv(path, pairs) -> None:
    """Writes pairs as `source<TAB>target` lines (UTF-8, LF), creating parent directories.

    Raises:
        ValueError: when a field holds a tab or a line break, which the format cannot carry.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for pair in pairs:
            for name, value in (("source", pair.source), ("target", pair.target)):
                if re.search(r"[\t\r\n]", value):
                    raise ValueError(f"Expected a {name} without tabs or line breaks. Received: {name}={value!r}")
            handle.write(f"{pair.source}\t{pair.target}\n")


FORMATS = ("tsv", "aligned", "labeled")


def read_corpus(path, *, fmt: str = "tsv", target_path=None, **options) -> tuple[list, ReadReport]:
    """Reads a corpus in one of `FORMATS`, the dispatch shared by training and `data check`.

    Args:
        path: the TSV file, or the source file of an aligned corpus.
        fmt: "tsv" (source TAB target), "aligned" (needs `target_path`) or
            "labeled" (label TAB text [TAB mask]).
        target_path: the target file of an aligned corpus.
        **options: `max_line_chars`, `truncate`, `strict`, as in `read_parallel_tsv`.
    Returns:
        `Pair`s (tsv, aligned) or `LabeledText`s (labeled), and the report.
    """
    if fmt not in FORMATS:
        raise UserError(f"Expected a corpus format in {FORMATS}. Received: format={fmt!r}")
    if (fmt == "aligned") != (target_path is not None):
        raise UserError(
            "Expected a target file exactly when the format is 'aligned' (--target-file FILE). "
            f"Received: format={fmt!r}, target file={target_path!r}"
        )
    if fmt == "aligned":
        return read_aligned(path, target_path, **options)
    if fmt == "labeled":
        return read_labeled_tsv(path, **options)
    return read_parallel_tsv(path, **options)
