import gettext

import pytest
from helpers_gettext import write_catalog

from seq2seq.data import gettext as corpus
from seq2seq.data.gettext import available_languages, read_gettext
from seq2seq.data.reader import Pair
from seq2seq.errors import UserError

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


# ------------------------------------------------------------ what a training log says


def test_headline_names_what_was_left_out_by_kind(locale_dir):
    _, report = read_gettext("fr", locale_dir=locale_dir)
    assert report.catalogs == 3
    assert report.headline() == (
        f"gettext: 4 pairs from 3 catalogs in {locale_dir / 'fr' / 'LC_MESSAGES'}; left out 2 repeated messages, "
        "1 multi-line, 1 with context, 1 plural, 1 untranslated, 1 with control characters, 1 without letters"
    )


def test_headline_separates_thousands_and_reports_unreadable_catalogs(tmp_path):
    messages = {f"Message {n}": f"Message n° {n}" for n in range(1200)}
    write_catalog(tmp_path, "fr", "big", {**messages, "ctx\x04Close": "Fermer"})
    (tmp_path / "fr" / "LC_MESSAGES" / "broken.mo").write_bytes(b"not a catalog")
    _, report = read_gettext("fr", locale_dir=tmp_path)
    headline = report.headline()
    assert headline.startswith("gettext: 1,200 pairs from 1 catalog in ")
    assert headline.endswith("; left out 1 with context; could not read 1 catalog (broken.mo: OSError)")


def test_training_logs_the_headline_and_no_bad_lines(locale_dir):
    from seq2seq.runs.config import DataConfig, RunConfig
    from seq2seq.runs.translation import load_splits

    logged = []
    config = RunConfig(data=DataConfig(corpus="gettext", target_lang="fr", locale_dir=str(locale_dir),
                                       valid_fraction=0.25, test_fraction=0.25))
    split = load_splits(config, log=logged.append)
    assert len(split.train) + len(split.valid) + len(split.test) == 4
    assert logged[0].startswith("gettext: 4 pairs from 3 catalogs") and "1 plural" in logged[0]
    assert not any("bad lines" in line for line in logged)
