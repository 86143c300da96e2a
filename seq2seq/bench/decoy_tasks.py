"""Multi-class decoy tasks built from real text: the machine's gettext catalogs, read at run time.

Each task is a text classification problem with a shortcut added on purpose,
after Ross, Hughes and Doshi-Velez's decoy MNIST: in the training and
validation texts one or more decoy words tied to the label are inserted at
random positions, with mask 0 on them (the model should not rely on them);
at test time the decoys are drawn at random, so a model that reads them is
wrong whenever they lie. Tasks (`TASKS`):

- `"program"`: which group of programs an English gettext message (msgid)
  comes from (`PROGRAM_GROUPS`: PostgreSQL, Debian packaging, the desktop
  libraries, the GNU command-line tools; catalogs chosen by domain name). One
  made-up decoy word per label.
- `"language"`: which language a translated message is in (`LANGUAGES`:
  German, French, Spanish, Italian; each English message is given to one
  language only). One made-up decoy word per label.
- `"program_words"`: the program groups again, with real English words as
  decoys: two per label (`REAL_WORD_DECOYS`), one or two of them in each text.
  The same words also occur naturally in some messages (mask 1 there), so a
  model cannot tell a decoy from its spelling.

Every task gives, class-balanced and seeded (`DecoyTask`): `train` and `valid`
(decoys tied to the label, mask 0 on them), `test_random_decoy` (decoys drawn
uniformly from all labels' decoys) and `test_clean` (the same test texts
without decoys); `without_masked_words` gives the training texts of the model
that never saw a decoy. Pure Python (no TensorFlow). The texts are never
copied into the repository; tests build tasks from in-memory texts
(`build_task`) or tiny `.mo` files.
"""

import fnmatch
import gettext as _stdlib_gettext
import random
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from seq2seq.data.gettext import DEFAULT_LOCALE_DIR, catalog_paths, read_gettext
from seq2seq.data.reader import LabeledText
from seq2seq.errors import UserError

# Label -> catalog domain patterns (fnmatch on the .mo file's stem). Messages found in two groups are dropped.
PROGRAM_GROUPS = {
    "postgres": ("postgres-*", "psql-*", "pg_*", "initdb-*", "libpq*", "pgscripts-*", "plpgsql-*", "ecpg*"),
    "packaging": ("apt", "dpkg", "dpkg-dev", "libapt-*", "python-apt", "PackageKit", "software-properties",
                  "adduser", "appstream", "debconf", "aptitude"),
    "desktop": ("gtk*", "glib20", "gdk-pixbuf", "gstreamer-*", "at-spi2-core", "gsettings-desktop-schemas",
                "avahi", "polkit-1", "shared-mime-info", "xdg-user-dirs"),
    "gnu_tools": ("coreutils", "findutils", "grep", "sed", "tar", "diffutils", "make", "bash", "xz", "wget",
                  "psmisc", "procps-ng", "gettext-tools", "gettext-runtime", "man-db", "gawk", "cpio", "gzip"),
}
# The catalogs whose msgids (the English originals) the program tasks read.
PROGRAM_CATALOG_LANG = "de"
LANGUAGES = ("de", "fr", "es", "it")
# One made-up decoy per label (no such word occurs in the catalogs).
MADE_UP_DECOYS = {
    "program": {"postgres": "zorbex", "packaging": "quilmo", "desktop": "vantrik", "gnu_tools": "plexu"},
    "language": {"de": "zorbex", "fr": "quilmo", "es": "vantrik", "it": "plexu"},
}
# Two real English words per label; frequent in no group, present in some messages.
REAL_WORD_DECOYS = {"postgres": ("again", "still"), "packaging": ("never", "always"),
                    "desktop": ("here", "there"), "gnu_tools": ("above", "below")}
# Messages kept: this many words (after stripping), on one line, with a letter.
MIN_WORDS, MAX_WORDS = 3, 30
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class TaskSizes:
    """Texts per split (divided evenly between the labels) and the seed of the draws."""

    train_texts: int = 2000
    valid_texts: int = 400
    test_texts: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class DecoyTask:
    """One task's splits. `decoys[label]` are the words tied to `label` in train and valid."""

    name: str
    labels: tuple[str, ...]
    decoys: dict
    train: list
    valid: list
    test_random_decoy: list
    test_clean: list

    @property
    def decoy_pool(self) -> list[str]:
        """Every label's decoys, sorted: the draws of the random-decoy test."""
        return sorted({word for words in self.decoys.values() for word in words})


# ---------------------------------------------------------------------------- building a task


def build_task(name: str, texts: dict[str, list[str]], decoys: dict[str, tuple[str, ...]], sizes: TaskSizes,
               decoys_per_text: tuple[int, int] = (1, 1)) -> DecoyTask:
    """Splits `texts` (label -> texts) class-balanced and inserts the decoys.

    Each label gets `sizes.*_texts // labels` texts per split (fewer, in the
    same proportions, when a label has fewer texts than that; the same number
    for every label). A text receives between `decoys_per_text[0]` and
    `[1]` decoys, each at a random word position: its label's in train and
    valid, any label's (uniformly) in `test_random_decoy`.

    Raises:
        UserError: a label with fewer than 10 texts, or decoys missing for a label.
    """
    labels = tuple(sorted(texts))
    missing = sorted(set(labels) - set(decoys))
    if missing:
        raise UserError(f"task {name!r}: no decoy words for labels {missing}; decoys given for {sorted(decoys)}")
    rng = random.Random(f"decoy-task/{name}/{sizes.seed}")
    counts = _split_counts(name, texts, sizes)
    pool = sorted({word for words in decoys.values() for word in words})
    splits = {"train": [], "valid": [], "test": []}
    for label in labels:
        chosen = sorted(set(texts[label]))
        rng.shuffle(chosen)
        start = 0
        for split, count in zip(splits, counts):
            splits[split] += [(label, text) for text in chosen[start:start + count]]
            start += count
    for examples in splits.values():
        rng.shuffle(examples)
    tied = {split: [_with_decoys(label, text, decoys[label], decoys_per_text, rng) for label, text in splits[split]]
            for split in ("train", "valid")}
    return DecoyTask(
        name=name, labels=labels, decoys={label: tuple(decoys[label]) for label in labels},
        train=tied["train"], valid=tied["valid"],
        test_random_decoy=[_with_decoys(label, text, pool, decoys_per_text, rng) for label, text in splits["test"]],
        test_clean=[LabeledText(label, text) for label, text in splits["test"]],
    )


def _split_counts(name: str, texts: dict[str, list[str]], sizes: TaskSizes) -> tuple[int, int, int]:
    """Texts per label for train, valid and test: the sizes requested, or scaled down to the smallest label."""
    wanted = [max(1, n // len(texts)) for n in (sizes.train_texts, sizes.valid_texts, sizes.test_texts)]
    available = min(len(set(values)) for values in texts.values())
    if available < 10:
        short = sorted(label for label, values in texts.items() if len(set(values)) == available)
        raise UserError(f"task {name!r}: label {short[0]!r} has only {available} distinct texts; at least 10 needed "
                        f"(labels and counts: { {k: len(set(v)) for k, v in sorted(texts.items())} })")
    if available >= sum(wanted):
        return tuple(wanted)
    scale = available / sum(wanted)
    return tuple(max(1, int(n * scale)) for n in wanted)


def _with_decoys(label: str, text: str, choices, per_text: tuple[int, int], rng: random.Random) -> LabeledText:
    """`text` with decoys drawn from `choices` inserted at random word positions, mask 0 on them."""
    words, mask = text.split(), [1] * len(text.split())
    for _ in range(rng.randint(*per_text)):
        position = rng.randint(0, len(words))
        words.insert(position, rng.choice(list(choices)))
        mask.insert(position, 0)
    return LabeledText(label, " ".join(words), tuple(mask))


def without_masked_words(examples: list[LabeledText]) -> list[LabeledText]:
    """`examples` without their mask-0 words (the decoys) and without masks: the clean model's data."""
    clean = []
    for example in examples:
        mask = example.mask or (1,) * len(example.text.split())
        clean.append(LabeledText(example.label, " ".join(w for w, keep in zip(example.text.split(), mask) if keep)))
    return clean


# ---------------------------------------------------------------------------- texts from the catalogs


def usable_message(text: str) -> str | None:
    """`text` stripped if it is one line of MIN_WORDS..MAX_WORDS words with a letter and no control character."""
    text = text.strip()
    if _CONTROL.search(text) or not any(char.isalpha() for char in text):
        return None
    return text if MIN_WORDS <= len(text.split()) <= MAX_WORDS else None


def program_texts(locale_dir=DEFAULT_LOCALE_DIR, lang: str = PROGRAM_CATALOG_LANG,
                  groups: dict = PROGRAM_GROUPS) -> dict[str, list[str]]:
    """group -> the distinct usable English msgids of its catalogs in `<locale_dir>/<lang>/LC_MESSAGES`.

    A message found in the catalogs of two groups is dropped; unreadable
    catalogs are skipped. Raises UserError when a group has no catalog.
    """
    paths = catalog_paths(lang, Path(locale_dir))
    found = {}
    for group, patterns in groups.items():
        matching = [path for path in paths if any(fnmatch.fnmatchcase(path.stem, p) for p in patterns)]
        if not matching:
            raise UserError(f"no catalog of group {group!r} (domains {', '.join(patterns)}) in "
                            f"{Path(locale_dir) / lang / 'LC_MESSAGES'}; install one of those programs")
        found[group] = {text for path in matching for text in _msgids(path)}
    seen_in = {}
    for group, messages in found.items():
        for message in messages:
            seen_in[message] = seen_in.get(message, 0) + 1
    return {group: sorted(m for m in messages if seen_in[m] == 1) for group, messages in found.items()}


def _msgids(path: Path) -> list[str]:
    """The usable msgids of one catalog (none when it cannot be read)."""
    try:
        with path.open("rb") as handle:
            catalog = _stdlib_gettext.GNUTranslations(handle)._catalog
    except (OSError, ValueError, LookupError, struct.error):
        return []
    kept = (usable_message(key) for key, value in catalog.items()
            if isinstance(key, str) and key and "\x04" not in key and value)
    return [text for text in kept if text]


def language_texts(locale_dir=DEFAULT_LOCALE_DIR, languages: tuple[str, ...] = LANGUAGES,
                   seed: int = 0) -> dict[str, list[str]]:
    """language -> usable translations, each English message given to one language only.

    The messages translated into every language are shuffled (seeded) and dealt
    out in turn; a translation equal to another language's (names, commands)
    is dropped, so no text appears under two labels.
    """
    tables = {lang: {pair.source: pair.target for pair in read_gettext(lang, locale_dir=locale_dir)[0]}
              for lang in languages}
    common = sorted(set.intersection(*(set(table) for table in tables.values())))
    random.Random(f"language-task/{seed}").shuffle(common)
    texts = {lang: [] for lang in languages}
    for i, msgid in enumerate(common):
        translations = [tables[lang][msgid] for lang in languages]
        lang = languages[i % len(languages)]
        text = usable_message(tables[lang][msgid])
        if text and translations.count(tables[lang][msgid]) == 1:
            texts[lang].append(text)
    return texts


# ---------------------------------------------------------------------------- the tasks


def program_task(sizes: TaskSizes, locale_dir=DEFAULT_LOCALE_DIR) -> DecoyTask:
    return build_task("program", program_texts(locale_dir),
                      {k: (v,) for k, v in MADE_UP_DECOYS["program"].items()}, sizes)


def language_task(sizes: TaskSizes, locale_dir=DEFAULT_LOCALE_DIR) -> DecoyTask:
    return build_task("language", language_texts(locale_dir, seed=sizes.seed),
                      {k: (v,) for k, v in MADE_UP_DECOYS["language"].items()}, sizes)


def program_words_task(sizes: TaskSizes, locale_dir=DEFAULT_LOCALE_DIR) -> DecoyTask:
    return build_task("program_words", program_texts(locale_dir), REAL_WORD_DECOYS, sizes, decoys_per_text=(1, 2))


TASKS = {"program": program_task, "language": language_task, "program_words": program_words_task}


def make_task(name: str, sizes: TaskSizes, locale_dir=DEFAULT_LOCALE_DIR) -> DecoyTask:
    """The task `name` (one of `TASKS`) from the catalogs in `locale_dir`."""
    if name not in TASKS:
        raise UserError(f"unknown decoy task {name!r}; choose from {', '.join(TASKS)}")
    return TASKS[name](sizes, locale_dir)
