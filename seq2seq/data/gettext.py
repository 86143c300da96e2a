"""Parallel text from the machine's gettext catalogs (`<locale_dir>/<lang>/LC_MESSAGES/*.mo`).

Every Debian-like machine holds tens of thousands of human-translated
messages: the English msgid and its translated msgstr. They are read at run
time with the standard library (`gettext.GNUTranslations`), never copied into
the repository.

Kept: entries that, once stripped of surrounding whitespace (many messages
end with "\\n"), are single lines with a non-empty translation and at least
one letter on each side. Skipped and counted in the `GettextReport`: plural
entries, context entries (msgid containing \\x04), empty msgids or
translations, multi-line entries, entries with other control characters (a
tab would break the TSV format), entries without letters ("%s", "---"),
over-long entries and duplicate sources. The header (empty msgid) is metadata and silently ignored.
These are left out on purpose, not errors: `GettextReport.headline` names
them by kind ("left out 228 plural, 474 with context, ..."); only a catalog
that cannot be read is reported as a problem.

De-duplication: a source appearing several times keeps its most common
translation; ties go to the first seen. Files are read in sorted name order
and entries in catalog order, so the result is deterministic for a given
locale directory.
"""

import gettext as _stdlib_gettext
import re
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from seq2seq.data.reader import DEFAULT_MAX_LINE_CHARS, Pair, ReadReport
from seq2seq.errors import UserError

DEFAULT_LOCALE_DIR = "/usr/share/locale"

PLURAL = "plural entry"
CONTEXT = "context entry"
EMPTY_SOURCE = "empty source"
EMPTY_TRANSLATION = "empty translation"
MULTI_LINE = "multi-line entry"
CONTROL = "control character"
NO_LETTERS = "no letters"
OVER_LONG = "over-long entry"
DUPLICATE = "duplicate source"
UNREADABLE = "unreadable catalog"

# How `GettextReport.headline` names each kind of entry left out, in this order.
_LEFT_OUT = {
    DUPLICATE: "repeated messages",
    MULTI_LINE: "multi-line",
    CONTEXT: "with context",
    PLURAL: "plural",
    EMPTY_TRANSLATION: "untranslated",
    CONTROL: "with control characters",
    NO_LETTERS: "without letters",
    OVER_LONG: "over-long",
    EMPTY_SOURCE: "empty",
}

# Every control character but the newline (counted as multi-line): tab and CR included.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
# printf ("%s", "%-10lu", "%1$s", "%.*s"), Python ("%(name)s") and brace ("{0}", "{name}") placeholders.
_PLACEHOLDER = re.compile(
    r"%(\d+\$)?[-+ #0']*(\d+|\*)?(\.(\d+|\*))?(hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGaAcspnm%]"
    r"|%\([^)]*\)[-+ #0]*\d*(\.\d+)?[a-zA-Z]|\{[^{}\s]*\}"
)
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([_@.-][A-Za-z0-9]+)*$")


@dataclass
class GettextReport(ReadReport):
    """A `ReadReport` of gettext catalogs, which also counts the catalogs read."""

    # Catalogs read (unreadable ones are skipped with reason UNREADABLE instead).
    catalogs: int = 0

    def headline(self) -> str:
        """One line for a training log: pairs, catalogs, what was left out by kind, unreadable catalogs.

        "gettext: 57,467 pairs from 87 catalogs in /usr/share/locale/fr/LC_MESSAGES;
        left out 16,555 repeated messages, 2,939 multi-line, 474 with context, 228 plural"
        """
        line = f"gettext: {self.kept:,} pairs from {_catalogs(self.catalogs)} in {', '.join(self.paths)}"
        left_out = [f"{self.skipped[reason]:,} {name}" for reason, name in _LEFT_OUT.items() if self.skipped[reason]]
        if left_out:
            line += "; left out " + ", ".join(left_out)
        unreadable = self.skipped[UNREADABLE]
        if unreadable:
            line += f"; could not read {_catalogs(unreadable)} ({_join(self.skipped_at[UNREADABLE], unreadable)})"
        return line


def _catalogs(count: int) -> str:
    return f"{count:,} catalog{'' if count == 1 else 's'}"


def _join(locations: list[str], count: int) -> str:
    return ", ".join(locations) + (", ..." if count > len(locations) else "")


def read_gettext(target_lang: str, *, locale_dir=DEFAULT_LOCALE_DIR, source_lang: str = "en",
                 max_chars: int = DEFAULT_MAX_LINE_CHARS) -> tuple[list[Pair], GettextReport]:
    """Reads (source, translation) pairs from every catalog of `target_lang`.

    Args:
        target_lang: the locale directory name of the target language: "fr", "de", "pt_BR".
        locale_dir: the directory holding `<lang>/LC_MESSAGES/*.mo`.
        source_lang: "en" takes the msgid (gettext's English original) as the
            source. Another language pivots through English: its translation
            of the same msgid becomes the source.
        max_chars: entries with a longer source or target are skipped.
    Returns:
        The pairs in order of first appearance (catalogs in sorted name
        order), one per source, and a report whose locations are
        "catalog.mo: 'msgid'".
    Raises:
        UserError: when the directory or language has no catalogs.
    """
    target, report = _language_table(target_lang, Path(locale_dir), max_chars)
    if source_lang == "en":
        pairs = [Pair(source, translation) for source, translation in target.items()]
    else:
        source, source_report = _language_table(source_lang, Path(locale_dir), max_chars)
        report.paths += source_report.paths
        report.catalogs += source_report.catalogs
        pivoted = [Pair(source[msgid], translation) for msgid, translation in target.items() if msgid in source]
        pairs = _first_per_source(pivoted, report)
    report.kept = len(pairs)
    if not pairs:
        raise UserError(
            f"No usable {source_lang}->{target_lang} pairs in {locale_dir}: "
            f"{report.total_skipped} entries skipped. Try another language."
        )
    return pairs, report


def _first_per_source(pairs: list[Pair], report: GettextReport) -> list[Pair]:
    """Keeps the first pair of each source (pivoting can map two msgids to one source)."""
    kept: dict[str, Pair] = {}
    for pair in pairs:
        if pair.source in kept:
            report.skip(DUPLICATE, f"pivot: {pair.source[:40]!r}")
        else:
            kept[pair.source] = pair
    return list(kept.values())


def catalog_paths(lang: str, locale_dir: Path) -> list[Path]:
    """The sorted `.mo` files of one language; a `UserError` listing the available ones if none."""
    if not _LANGUAGE.match(lang or ""):
        raise UserError(f"Expected a language code such as 'fr', 'de' or 'pt_BR'. Received: lang={lang!r}")
    if not locale_dir.is_dir():
        raise UserError(
            "Expected a locale directory holding <lang>/LC_MESSAGES/*.mo. "
            f"Received: locale_dir={str(locale_dir)!r}, which is not a directory."
        )
    paths = sorted((locale_dir / lang / "LC_MESSAGES").glob("*.mo"))
    if paths:
        return paths
    languages = available_languages(locale_dir)
    shown = ", ".join(languages[:12]) + (f", ... ({len(languages)} in all)" if len(languages) > 12 else "")
    raise UserError(
        f"No gettext catalogs for {lang!r} in {locale_dir} ({locale_dir / lang / 'LC_MESSAGES'}/*.mo). "
        f"Available: {shown or 'none'}."
    )


def available_languages(locale_dir) -> list[str]:
    """Sorted names of the languages under `locale_dir` that have at least one `.mo` file."""
    locale_dir = Path(locale_dir)
    if not locale_dir.is_dir():
        return []
    return sorted(
        entry.name for entry in locale_dir.iterdir()
        if entry.is_dir() and any((entry / "LC_MESSAGES").glob("*.mo"))
    )


def _language_table(lang: str, locale_dir: Path, max_chars: int) -> tuple[dict[str, str], GettextReport]:
    """msgid -> chosen translation over every catalog of `lang`, and the report."""
    paths = catalog_paths(lang, locale_dir)
    report = GettextReport(paths=(str(locale_dir / lang / "LC_MESSAGES"),), item_name="pairs", line_name="entries")
    translations: dict[str, Counter] = {}
    for path in paths:
        for msgid, msgstr in _catalog_entries(path, report):
            report.lines += 1
            msgid, msgstr = msgid.strip(), msgstr.strip()
            reason = _skip_reason(msgid, msgstr, max_chars)
            if reason:
                report.skip(reason, f"{path.name}: {msgid[:40]!r}")
                continue
            seen = translations.setdefault(msgid, Counter())
            if seen:
                report.skip(DUPLICATE, f"{path.name}: {msgid[:40]!r}")
            seen[msgstr] += 1
    return {msgid: counts.most_common(1)[0][0] for msgid, counts in translations.items()}, report


def _catalog_entries(path: Path, report: GettextReport) -> list[tuple[str, str]]:
    """(msgid, msgstr) of one catalog, plural entries counted and left out."""
    try:
        with path.open("rb") as handle:
            catalog = _stdlib_gettext.GNUTranslations(handle)._catalog
    except (OSError, ValueError, LookupError, struct.error) as error:
        report.skip(UNREADABLE, f"{path.name}: {error.__class__.__name__}")
        return []
    report.catalogs += 1
    entries = []
    for key, value in catalog.items():
        if isinstance(key, tuple):
            if key[1] == 0:
                report.lines += 1
                report.skip(PLURAL, f"{path.name}: {key[0][:40]!r}")
        elif key:
            entries.append((key, value))
    return entries


def _skip_reason(msgid: str, msgstr: str, max_chars: int) -> str | None:
    """Why a stripped entry is not a usable pair, or None."""
    if "\x04" in msgid:
        return CONTEXT
    if not msgid:
        return EMPTY_SOURCE
    if not msgstr:
        return EMPTY_TRANSLATION
    if "\n" in msgid or "\n" in msgstr:
        return MULTI_LINE
    if _CONTROL.search(msgid) or _CONTROL.search(msgstr):
        return CONTROL
    if not (_has_letter(msgid) and _has_letter(msgstr)):
        return NO_LETTERS
    if max(len(msgid), len(msgstr)) > max_chars:
        return OVER_LONG
    return None


def _has_letter(text: str) -> bool:
    """Whether a letter remains once format placeholders ("%s", "%(name)d", "{0}") are removed."""
    return any(char.isalpha() for char in _PLACEHOLDER.sub("", text))
