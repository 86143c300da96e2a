import pytest

from seq2seq.data import reader
from seq2seq.data.reader import (
    LabeledText,
    Pair,
    read_aligned,
    read_corpus,
    read_labeled_tsv,
    read_parallel_tsv,
    write_parallel_tsv,
)
from seq2seq.errors import UserError

GOOD = b"hello world\tbonjour le monde\ngood night\tbonne nuit\n"


def write(tmp_path, data: bytes, name="corpus.tsv"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------ accepted silently


def test_reads_pairs_in_file_order(tmp_path):
    pairs, report = read_parallel_tsv(write(tmp_path, GOOD))
    assert pairs == [Pair("hello world", "bonjour le monde"), Pair("good night", "bonne nuit")]
    assert (report.kept, report.lines, report.total_skipped) == (2, 2, 0)


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf" + GOOD,
        GOOD.replace(b"\n", b"\r\n"),
        GOOD.rstrip(b"\n"),
        b"\xef\xbb\xbf" + GOOD.replace(b"\n", b"\r\n").rstrip(b"\r\n"),
    ],
    ids=["bom", "crlf", "no-final-newline", "all-three"],
)
def test_bom_crlf_and_missing_final_newline_are_accepted_silently(tmp_path, data):
    pairs, report = read_parallel_tsv(write(tmp_path, data), strict=True)
    assert pairs == read_parallel_tsv(write(tmp_path, GOOD, "plain.tsv"))[0]
    assert not report.skipped and not report.truncated


def test_fields_are_stripped_and_non_ascii_kept(tmp_path):
    pairs, _ = read_parallel_tsv(write(tmp_path, " où est-il ?\t  wo ist er?  \n".encode()))
    assert pairs == [Pair("où est-il ?", "wo ist er?")]


# ------------------------------------------------------------ refused files


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"No such file: .*missing\.tsv"):
        read_parallel_tsv(tmp_path / "missing.tsv")


def test_directory_is_refused(tmp_path):
    with pytest.raises(UserError, match="received a directory"):
        read_parallel_tsv(tmp_path)


def test_empty_file_is_refused(tmp_path):
    with pytest.raises(UserError, match="is empty"):
        read_parallel_tsv(write(tmp_path, b""))


@pytest.mark.parametrize("data", [b"\n\n\n", b"  \n\t\r\n \n", b"\xef\xbb\xbf\n"])
def test_only_blank_lines_is_refused(tmp_path, data):
    with pytest.raises(UserError, match="only blank lines"):
        read_parallel_tsv(write(tmp_path, data))


@pytest.mark.parametrize(
    "data, hint",
    [
        (bytes(range(256)) * 8, "looks binary"),
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 200 + b"text\n", "looks binary"),
        (b"\x1f\x8b\x08\x00" + bytes(range(128, 256)) * 4, "gzip"),
        ("a\tb\n".encode("utf-16"), "UTF-16"),
    ],
    ids=["random-bytes", "nul-heavy", "gzip", "utf-16"],
)
def test_binary_data_is_refused(tmp_path, data, hint):
    with pytest.raises(UserError, match=hint):
        read_parallel_tsv(write(tmp_path, data))


def test_a_file_with_only_bad_lines_is_refused_with_the_reasons(tmp_path):
    with pytest.raises(UserError, match=r"No usable lines.*wrong number of columns: 2.*corpus\.tsv:1"):
        read_parallel_tsv(write(tmp_path, b"one column\nstill one\n"))


# ------------------------------------------------------------ bad lines


BAD_LINES = [
    (b"\xff\xfebad\tbytes", reader.INVALID_UTF8),
    (b"caf\xe9\tcoffee", reader.INVALID_UTF8),
    (b"no tab here", reader.COLUMNS),
    (b"a\tb\tc", reader.COLUMNS),
    (b"\ttarget only", reader.EMPTY_SOURCE),
    (b"source only\t  ", reader.EMPTY_TARGET),
    (b"nul\x00inside\tx", reader.NUL_BYTE),
    (b"x" * 50 + b"\ty", reader.OVER_LONG),
]


@pytest.mark.parametrize("line, reason", BAD_LINES, ids=[reason + str(i) for i, (_, reason) in enumerate(BAD_LINES)])
def test_bad_line_is_skipped_and_counted_with_its_location(tmp_path, line, reason):
    path = write(tmp_path, GOOD + line + b"\n" + GOOD)
    pairs, report = read_parallel_tsv(path, max_line_chars=40)
    assert len(pairs) == 4
    assert report.skipped == {reason: 1}
    assert report.skipped_at[reason] == [f"{path}:3"]


@pytest.mark.parametrize("line, reason", BAD_LINES, ids=[reason + str(i) for i, (_, reason) in enumerate(BAD_LINES)])
def test_strict_stops_at_the_first_bad_line_naming_file_line_and_reason(tmp_path, line, reason):
    path = write(tmp_path, GOOD + line + b"\n" + GOOD)
    with pytest.raises(UserError) as error:
        read_parallel_tsv(path, max_line_chars=40, strict=True)
    assert str(error.value).startswith(f"{path}:3: {reason}")


def test_blank_lines_are_counted_but_never_fatal(tmp_path):
    path = write(tmp_path, b"\n" + GOOD + b"   \n\n")
    pairs, report = read_parallel_tsv(path, strict=True)
    assert len(pairs) == 2
    assert report.skipped == {reader.BLANK: 3}
    assert report.skipped_at[reader.BLANK] == [f"{path}:1", f"{path}:4", f"{path}:5"]


def test_report_keeps_only_the_first_few_locations_per_reason(tmp_path):
    path = write(tmp_path, GOOD + b"bad\n" * 20)
    _, report = read_parallel_tsv(path)
    assert report.skipped[reader.COLUMNS] == 20
    assert report.skipped_at[reader.COLUMNS] == [f"{path}:{n}" for n in range(3, 3 + reader.MAX_LOCATIONS)]
    summary = "\n".join(report.summary_lines())
    assert "2 pairs accepted" in summary
    assert f"wrong number of columns: 20 ({path}:3, " in summary and ", ...)" in summary


def test_truncate_cuts_over_long_fields_at_a_word_boundary(tmp_path):
    path = write(tmp_path, b"one two three four five\tshort\n")
    pairs, report = read_parallel_tsv(path, max_line_chars=12, truncate=True, strict=True)
    assert pairs == [Pair("one two", "short")]
    assert report.truncated == 1 and report.truncated_at == [f"{path}:1"]
    assert "truncated 1 over-long lines" in "\n".join(report.summary_lines())


def test_max_line_chars_must_be_positive(tmp_path):
    with pytest.raises(UserError, match="max_line_chars=0"):
        read_parallel_tsv(write(tmp_path, GOOD), max_line_chars=0)


# ------------------------------------------------------------ aligned files


def test_aligned_files_pair_line_by_line(tmp_path):
    source = write(tmp_path, b"\xef\xbb\xbfhello\r\ngood night\r\n", "src.txt")
    target = write(tmp_path, b"bonjour\nbonne nuit", "tgt.txt")
    pairs, report = read_aligned(source, target, strict=True)
    assert pairs == [Pair("hello", "bonjour"), Pair("good night", "bonne nuit")]
    assert report.paths == (str(source), str(target))


def test_aligned_problems_are_located_in_their_own_file(tmp_path):
    source = write(tmp_path, b"a\n\nc\nd\n", "src.txt")
    target = write(tmp_path, b"w\nx\n\xff\nz\n", "tgt.txt")
    pairs, report = read_aligned(source, target)
    assert pairs == [Pair("a", "w"), Pair("d", "z")]
    assert report.skipped == {reader.EMPTY_SOURCE: 1, reader.INVALID_UTF8: 1}
    source.write_bytes(b"a\nb\nc\nd\n")
    with pytest.raises(UserError, match=rf"invalid UTF-8 .*in {target}:3"):
        read_aligned(source, target, strict=True)


def test_aligned_files_with_different_line_counts_are_refused(tmp_path):
    source = write(tmp_path, b"a\nb\nc\n", "src.txt")
    target = write(tmp_path, b"x\ny\n", "tgt.txt")
    with pytest.raises(UserError, match=r"src\.txt has 3 lines, .*tgt\.txt has 2"):
        read_aligned(source, target)


def test_aligned_trailing_blank_lines_do_not_count(tmp_path):
    source = write(tmp_path, b"a\nb\n\n\n", "src.txt")
    target = write(tmp_path, b"x\ny", "tgt.txt")
    assert len(read_aligned(source, target, strict=True)[0]) == 2


def test_aligned_binary_target_is_refused(tmp_path):
    source = write(tmp_path, b"a\n", "src.txt")
    target = write(tmp_path, bytes(range(256)) * 4, "tgt.bin")
    with pytest.raises(UserError, match=r"tgt\.bin looks binary"):
        read_aligned(source, target)


# ------------------------------------------------------------ labeled text


def test_labeled_lines_with_and_without_mask(tmp_path):
    path = write(tmp_path, b"pos\tgreat film\t1 0\nneg\tboring\n")
    items, report = read_labeled_tsv(path, strict=True)
    assert items == [LabeledText("pos", "great film", (1, 0)), LabeledText("neg", "boring", None)]
    assert report.item_name == "texts"


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"pos\tgreat film\t1", reader.MASK_LENGTH),
        (b"pos\tgreat film\t1 2", reader.BAD_MASK),
        (b"pos\tgreat film\t", reader.BAD_MASK),
        (b"\tgreat film", reader.EMPTY_LABEL),
        (b"pos\t ", reader.EMPTY_TEXT),
        (b"pos", reader.COLUMNS),
        (b"pos\ta\t1\textra", reader.COLUMNS),
    ],
)
def test_labeled_bad_lines(tmp_path, line, reason):
    path = write(tmp_path, b"neg\tboring\n" + line + b"\n")
    items, report = read_labeled_tsv(path)
    assert len(items) == 1 and report.skipped == {reason: 1}


def test_labeled_truncation_keeps_the_mask_of_the_kept_words(tmp_path):
    path = write(tmp_path, b"pos\taa bb cc dd\t1 0 1 1\n")
    items, _ = read_labeled_tsv(path, max_line_chars=6, truncate=True)
    assert items == [LabeledText("pos", "aa bb", (1, 0))]


# ------------------------------------------------------------ dispatch and writing


def test_read_corpus_dispatches_and_checks_the_target_file(tmp_path):
    path = write(tmp_path, GOOD)
    assert read_corpus(path)[0] == read_parallel_tsv(path)[0]
    with pytest.raises(UserError, match="format='aligned'"):
        read_corpus(path, fmt="aligned")
    with pytest.raises(UserError, match="format='csv'"):
        read_corpus(path, fmt="csv")


def test_written_tsv_reads_back_and_tabs_are_refused(tmp_path):
    pairs = [Pair("a b", "c"), Pair("é", "ü")]
    write_parallel_tsv(tmp_path / "sub" / "out.tsv", pairs)
    assert read_parallel_tsv(tmp_path / "sub" / "out.tsv", strict=True)[0] == pairs
    with pytest.raises(ValueError, match="source='a\\\\tb'"):
        write_parallel_tsv(tmp_path / "bad.tsv", [Pair("a\tb", "c")])
