import gettext
import struct

import pytest

from seq2seq.data import gettext as corpus
from seq2seq.data.gettext import available_languages, read_gettext
from seq2seq.data.reader import Pair
from seq2seq.errors import UserError

HEADER = "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n > 1);\n"


def mo_bytes(messages: dict[str, str]) -> bytes:
    """A GNU .mo catalog (little endian, no hash table) holding `messages` (msgid -> msgstr).

    A plural entry is written as "singular\\x00plural" -> "form0\\x00form1",
    a context entry as "context\\x04msgid".
    """
    entries = sorted({"": HEADER, **messages}.items())
    ids = [key.encode("utf-8") for key, _ in entries]
    strs = [value.encode("utf-8") for _, value in entries]
    count = len(entries)
    tables_end = 28 + 16 * count
    blob, id_table, str_table = b"", [], []
    for table, texts in ((id_table, ids), (str_table, strs)):
        for text in texts:
            table.append((len(text), tables_end + len(blob)))
            blob += text + b"\x00"
    header = struct.pack("<7I", 0x950412DE, 0, count, 28, 28 + 8 * count, 0, tables_end)
    pack = lambda table: b"".join(struct.pack("<2I", *entry) for entry in table)  # noqa: E731
    return header + pack(id_table) + pack(str_table) + blob


def write_catalog(locale_dir, lang, name, messages):
    directory = locale_dir / lang / "LC_MESSAGES"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.mo").write_bytes(mo_bytes(messages))


APP = {
    "Open file": "Ouvrir le fichier",
    "Save": "Enregistrer",
    "Quit\n": "Quitter\n",
    "%d file\x00%d files": "%d fichier\x00%d fichiers",
    "menu\x04Close": "Fermer",
    "Untranslated": "",
    "First line\nsecond line": "Première ligne\ndeuxième ligne",
    "Name:\t%s": "Nom :\t%s",
    "%s: %s": "%s : %s",
}


@pytest.fixture
def locale_dir(tmp_path):
    write_catalog(tmp_path, "fr", "b-app", APP)
    write_catalog(tmp_path, "fr", "a-lib", {"Save": "Sauvegarder", "Cancel": "Annuler"})
    write_catalog(tmp_path, "fr", "c-other", {"Save": "Sauvegarder"})
    write_catalog(tmp_path, "de", "b-app", {"Open file": "Datei öffnen", "Save": "Speichern"})
    return tmp_path


def test_the_test_catalog_is_a_real_mo_file(locale_dir):
    with open(locale_dir / "fr" / "LC_MESSAGES" / "b-app.mo", "rb") as handle:
        translations = gettext.GNUTranslations(handle)
    assert translations.gettext("Save") == "Enregistrer"
    assert translations.ngettext("%d file", "%d files", 2) == "%d fichiers"
    assert translations.pgettext("menu", "Close") == "Fermer"


def test_reads_single_line_entries_in_sorted_file_order(locale_dir):
    pairs, report = read_gettext("fr", locale_dir=locale_dir)
    assert pairs == [
        Pair("Cancel", "Annuler"),
        Pair("Save", "Sauvegarder"),
        Pair("Open file", "Ouvrir le fichier"),
        Pair("Quit", "Quitter"),
    ]
    assert report.kept == 4


def test_skips_are_counted_by_reason(locale_dir):
    _, report = read_gettext("fr", locale_dir=locale_dir)
    assert report.skipped == {
        corpus.PLURAL: 1,
        corpus.CONTEXT: 1,
        corpus.EMPTY_TRANSLATION: 1,
        corpus.MULTI_LINE: 1,
        corpus.CONTROL: 1,
        corpus.NO_LETTERS: 1,
        corpus.DUPLICATE: 2,
    }
    assert report.skipped_at[corpus.PLURAL] == ["b-app.mo: '%d file'"]
    assert "4 pairs accepted" in report.summary_lines()[0]


def test_duplicates_keep_the_most_common_translation(locale_dir):
    pairs, _ = read_gettext("fr", locale_dir=locale_dir)
    assert dict((p.source, p.target) for p in pairs)["Save"] == "Sauvegarder"


def test_ties_keep_the_first_translation_in_file_order(tmp_path):
    write_catalog(tmp_path, "fr", "a", {"Save": "Enregistrer"})
    write_catalog(tmp_path, "fr", "b", {"Save": "Sauvegarder"})
    assert read_gettext("fr", locale_dir=tmp_path)[0] == [Pair("Save", "Enregistrer")]


def test_over_long_entries_are_skipped(tmp_path):
    write_catalog(tmp_path, "fr", "a", {"Save": "Enregistrer", "word " * 20: "mot " * 20})
    pairs, report = read_gettext("fr", locale_dir=tmp_path, max_chars=50)
    assert pairs == [Pair("Save", "Enregistrer")] and report.skipped == {corpus.OVER_LONG: 1}


def test_another_source_language_pivots_through_the_msgid(locale_dir):
    pairs, _ = read_gettext("fr", locale_dir=locale_dir, source_lang="de")
    assert pairs == [Pair("Speichern", "Sauvegarder"), Pair("Datei öffnen", "Ouvrir le fichier")]


def test_unknown_language_lists_the_available_ones(locale_dir):
    with pytest.raises(UserError, match=r"No gettext catalogs for 'xx'.*Available: de, fr\."):
        read_gettext("xx", locale_dir=locale_dir)
    assert available_languages(locale_dir) == ["de", "fr"]


def test_missing_locale_dir_is_refused(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        read_gettext("fr", locale_dir=tmp_path / "nowhere")


@pytest.mark.parametrize("lang", ["", "../fr", "fr/LC_MESSAGES"])
def test_a_language_code_that_is_not_one_is_refused(locale_dir, lang):
    with pytest.raises(UserError, match="Expected a language code"):
        read_gettext(lang, locale_dir=locale_dir)


def test_a_corrupt_catalog_is_skipped_and_counted(locale_dir):
    (locale_dir / "fr" / "LC_MESSAGES" / "broken.mo").write_bytes(b"not a catalog at all")
    pairs, report = read_gettext("fr", locale_dir=locale_dir)
    assert len(pairs) == 4 and report.skipped[corpus.UNREADABLE] == 1


def test_a_language_with_nothing_usable_is_refused(tmp_path):
    write_catalog(tmp_path, "fr", "a", {"Save": ""})
    with pytest.raises(UserError, match="No usable en->fr pairs"):
        read_gettext("fr", locale_dir=tmp_path)
