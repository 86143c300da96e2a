"""Decoy tasks from real text: splits, decoys and masks, balance, seeds, and reading tiny catalogs (never /usr/share/locale)."""

from collections import Counter

import pytest

from helpers_gettext import write_catalog
from seq2seq.bench.decoy_tasks import (TaskSizes, build_task, language_texts, make_task, program_texts,
                                       without_masked_words)
from seq2seq.data.reader import LabeledText
from seq2seq.errors import UserError

LABELS = ("a", "b", "c", "d")
TEXTS = {label: [f"{label}{i} word{i % 7} tail{i % 3}" for i in range(40)] for label in LABELS}
DECOYS = {"a": ("da",), "b": ("db",), "c": ("dc",), "d": ("dd",)}
SIZES = TaskSizes(train_texts=80, valid_texts=20, test_texts=40, seed=1)


def decoy_words(example):
    return [word for word, keep in zip(example.text.split(), example.mask) if not keep]


def test_train_and_valid_carry_the_label_decoy_with_mask_0_on_it():
    task = build_task("t", TEXTS, DECOYS, SIZES)
    assert task.labels == LABELS and task.decoy_pool == ["da", "db", "dc", "dd"]
    for split, per_label in ((task.train, 20), (task.valid, 5)):
        assert Counter(e.label for e in split) == {label: per_label for label in LABELS}
        for example in split:
            assert decoy_words(example) == [DECOYS[example.label][0]]
            assert len(example.mask) == len(example.text.split())
            assert without_masked_words([example])[0].text in TEXTS[example.label]


def test_the_clean_test_is_the_random_decoy_test_without_its_decoys():
    task = build_task("t", TEXTS, DECOYS, TaskSizes(train_texts=40, valid_texts=20, test_texts=80, seed=1))
    assert without_masked_words(task.test_random_decoy) == task.test_clean
    assert all(e.mask is None for e in task.test_clean)
    drawn = Counter(decoy_words(e)[0] for e in task.test_random_decoy)
    agreeing = sum(decoy_words(e) == list(DECOYS[e.label]) for e in task.test_random_decoy)
    assert set(drawn) == {"da", "db", "dc", "dd"} and agreeing < 40  # drawn from every label, mostly lying
    texts = [{e.text for e in without_masked_words(split)} for split in (task.train, task.valid, task.test_clean)]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])  # disjoint splits


def test_seeded_and_positions_vary():
    task = build_task("t", TEXTS, DECOYS, SIZES)
    assert build_task("t", TEXTS, DECOYS, SIZES) == task
    assert build_task("t", TEXTS, DECOYS, TaskSizes(80, 20, 40, seed=2)).train != task.train
    positions = Counter(e.mask.index(0) for e in task.train)
    assert len(positions) >= 3  # not always the first word


def test_several_decoys_per_text():
    decoys = {label: (f"{label}x", f"{label}y") for label in LABELS}
    task = build_task("t", TEXTS, decoys, SIZES, decoys_per_text=(1, 2))
    counts = Counter(len(decoy_words(e)) for e in task.train)
    assert set(counts) == {1, 2}
    assert all(set(decoy_words(e)) <= set(decoys[e.label]) for e in task.train)


def test_small_labels_scale_all_splits_alike_and_too_small_ones_are_refused():
    texts = {**TEXTS, "d": TEXTS["d"][:14]}  # 14 < 20 + 5 + 10 wanted per label
    task = build_task("t", texts, DECOYS, SIZES)
    assert Counter(e.label for e in task.train) == {label: 8 for label in LABELS}  # 20 * 14 / 35
    assert len(task.valid) == 4 * 2 and len(task.test_clean) == 4 * 4
    with pytest.raises(UserError, match="label 'd' has only 9 distinct texts"):
        build_task("t", {**TEXTS, "d": TEXTS["d"][:9]}, DECOYS, SIZES)
    with pytest.raises(UserError, match=r"no decoy words for labels \['d'\]"):
        build_task("t", TEXTS, {k: v for k, v in DECOYS.items() if k != "d"}, SIZES)


def test_without_masked_words_drops_the_decoys_and_the_masks():
    assert without_masked_words([LabeledText("a", "x da y", (1, 0, 1)), LabeledText("b", "p q")]) == [
        LabeledText("a", "x y"), LabeledText("b", "p q")]


# ---------------------------------------------------------------- tiny catalogs


def test_program_texts_group_catalogs_by_domain_and_drop_shared_and_short_messages(tmp_path):
    shared = "Out of memory here"
    write_catalog(tmp_path, "de", "psql-15", {"could not connect to server": "x", shared: "y", "two words": "z"})
    write_catalog(tmp_path, "de", "pg_dump-15", {"dumping the table contents": "x"})
    write_catalog(tmp_path, "de", "apt", {"Reading package lists now": "x", "multi\nline message here": "y"})
    write_catalog(tmp_path, "de", "gtk20", {"Select a file to open": "x", shared: "y"})
    write_catalog(tmp_path, "de", "coreutils", {"invalid option for this": "x", "untranslated message is dropped": ""})
    write_catalog(tmp_path, "de", "unrelated", {"not in any group here": "x"})
    assert program_texts(tmp_path) == {
        "postgres": ["could not connect to server", "dumping the table contents"],
        "packaging": ["Reading package lists now"],
        "desktop": ["Select a file to open"],
        "gnu_tools": ["invalid option for this"],
    }
    (tmp_path / "de" / "LC_MESSAGES" / "apt.mo").unlink()
    with pytest.raises(UserError, match="no catalog of group 'packaging'"):
        program_texts(tmp_path)


def test_language_texts_give_each_message_to_one_language(tmp_path):
    messages = [f"message number {i} is here" for i in range(12)]
    for lang in ("de", "fr", "es", "it"):
        translations = {m: f"{lang} text {i} ok" for i, m in enumerate(messages)}
        translations[messages[0]] = "same in every language"
        write_catalog(tmp_path, lang, "app", translations)
    texts = language_texts(tmp_path, seed=0)
    numbers = sorted(int(text.split()[2]) for values in texts.values() for text in values)
    assert numbers == list(range(1, 12))  # each message once; the identical translation dropped
    assert all(text.startswith(lang + " ") for lang, values in texts.items() for text in values)
    assert language_texts(tmp_path, seed=1) != texts


def test_unknown_task_names_the_choices():
    with pytest.raises(UserError, match="unknown decoy task 'nope'; choose from program, language, program_words"):
        make_task("nope", SIZES)
