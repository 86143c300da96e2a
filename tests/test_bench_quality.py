"""`seq2seq bench quality` and `seq2seq bench numbers`: the split rule, the files, the report
and its targets, the kit's command lines and the tutorial side on tiny data (the benchmarks
themselves read the machine's catalogs and train for an hour: the lead runs them)."""

import argparse
import json
import random
import sys
from pathlib import Path

import pytest
from helpers_gettext import write_catalog

from seq2seq.bench import numbers as bench_numbers
from seq2seq.bench import quality
from seq2seq.data.reader import Pair
from seq2seq.errors import UserError

VERBS = {"Open": "Ouvrir", "Close": "Fermer", "Save": "Enregistrer", "Delete": "Supprimer", "Print": "Imprimer"}
NOUNS = {"file": "le fichier", "window": "la fenêtre", "folder": "le dossier", "page": "la page",
         "list": "la liste", "image": "l'image"}
# 5 x 6 + 5 = 35 messages; 2 with placeholders each verb.
MESSAGES = {f"{v} {n}": f"{fv} {fn}" for v, fv in VERBS.items() for n, fn in NOUNS.items()}
MESSAGES.update({f"{v} %s": f"{fv} %s" for v, fv in VERBS.items()})


def parse(*argv, module=quality):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(list(argv))


# ----------------------------------------------------------------------------- the split


def test_split_is_a_seeded_shuffle_with_a_left_out_gap():
    pairs = [Pair(f"source {i}", f"target {i}") for i in range(30)]
    test, train = quality.benchmark_split(pairs, 5)
    shuffled = list(pairs)
    random.Random(1234).shuffle(shuffled)
    assert test == shuffled[:5]
    assert train == shuffled[10:]
    assert quality.benchmark_split(list(reversed(pairs)), 5) != (test, train)  # the shuffle starts from the order
    assert quality.benchmark_split(pairs, 5) == (test, train)
    left_out = set(pairs) - set(test) - set(train)
    assert len(left_out) == 5 and left_out == set(shuffled[5:10])
    assert not set(test) & set(train)


def test_split_refuses_a_corpus_with_no_training_pairs_left():
    pairs = [Pair(f"s{i}", f"t{i}") for i in range(10)]
    with pytest.raises(UserError, match="10 pairs leave no training data .* smaller --test-pairs"):
        quality.benchmark_split(pairs, 5)


def test_corpus_files_hold_one_line_per_pair(tmp_path):
    test = [Pair("Name:\tvalue", "Nom :\nvaleur"), Pair("Quit", "Quitter")]
    train = [Pair("a\r\nb", "c\td"), Pair("Save", "Enregistrer")]
    corpus = quality.write_corpus(tmp_path / "fr", test, train)
    assert corpus.train.read_text(encoding="utf-8") == "a  b\tc d\nSave\tEnregistrer\n"
    assert corpus.test.read_text(encoding="utf-8") == "Name: value\tNom : valeur\nQuit\tQuitter\n"
    assert corpus.test_sources.read_text(encoding="utf-8") == "Name: value\nQuit\n"
    assert corpus.sources == ["Name: value", "Quit"] and corpus.references == ["Nom : valeur", "Quitter"]


def test_work_directory_refuses_the_repository_and_old_runs(tmp_path):
    repository = Path(quality.__file__).resolve().parents[2]
    with pytest.raises(UserError, match="inside the repository"):
        with quality.work_directory(repository / "bench-work"):
            pass
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "fr").mkdir()
    with pytest.raises(UserError, match="not empty"):
        with quality.work_directory(tmp_path / "old"):
            pass
    with quality.work_directory(None) as temporary:
        assert temporary.is_dir() and not temporary.is_relative_to(repository)
    assert not temporary.exists()


# ----------------------------------------------------------------------------- the report


def side(bleu, chrf, placeholder_rate=1.0):
    return {"bleu": bleu, "chrf": chrf, "placeholder_rate": placeholder_rate}


@pytest.mark.parametrize("kit, tutorial, ratio, met", [
    (side(30.0, 50.0), side(20.0, 40.0), 1.5, {"bleu_ratio": True, "chrf": True, "placeholder_rate": True}),
    (side(29.0, 40.0), side(20.0, 40.0), 1.45, {"bleu_ratio": False, "chrf": False, "placeholder_rate": True}),
    (side(5.0, 30.0, 0.98), side(0.0, 10.0), None, {"bleu_ratio": True, "chrf": True, "placeholder_rate": False}),
    (side(0.0, 30.0, None), side(0.0, 10.0), None, {"bleu_ratio": False, "chrf": True, "placeholder_rate": True}),
])
def test_compare_holds_the_ratio_and_the_targets(kit, tutorial, ratio, met):
    entry = quality.compare(kit, tutorial)
    assert entry["bleu_ratio"] == ratio
    assert entry["targets_met"] == met
    assert entry["kit"] is kit and entry["tutorial"] is tutorial


def test_all_targets_met_needs_every_target_of_every_pair():
    good = quality.compare(side(30.0, 50.0), side(10.0, 40.0))
    bad = quality.compare(side(30.0, 50.0), side(10.0, 60.0))
    assert quality.report({"de": good, "fr": good}, 10.0)["all_targets_met"] is True
    assert quality.report({"de": good, "fr": bad}, 10.0)["all_targets_met"] is False


def test_translation_scores_length_ratio_and_placeholders():
    sources = ["Open %s", "Delete {name} and %d files", "Quit"]
    references = ["ouvrir le fichier", "supprimer tout", "quitter"]
    translations = ["ouvrir %s", "supprimer {name}", "quitter"]
    scores = quality.translation_scores(sources, translations, references)
    # 13a tokens: "%s" -> "% s" and "{name}" -> "{ name }": 3 + 4 + 1 hypothesis, 3 + 2 + 1 reference.
    assert scores["length_ratio"] == pytest.approx(8 / 6, abs=1e-4)
    assert scores["placeholder_rate"] == 0.5 and scores["placeholder_sentences"] == 2
    plain = quality.translation_scores(["a", "b"], ["un deux", "quatre"], ["un deux trois", "quatre"])
    assert plain["length_ratio"] == 0.75 and plain["placeholder_rate"] is None


# ----------------------------------------------------------------------------- sides stubbed


def test_run_reads_each_locale_and_reports_both_sides(tmp_path, monkeypatch):
    locale_dir = tmp_path / "locale"
    write_catalog(locale_dir, "fr", "app", MESSAGES)
    write_catalog(locale_dir, "de", "app", {"Open file": "Datei öffnen", "Save": "Speichern", "Quit": "Beenden",
                                            "Close": "Schließen", "Print %s": "%s drucken"})
    seen = {}

    def kit(corpus, run_dir, minutes, kit_sets, *, stage):
        locale = run_dir.parent.name
        train = [line.split("\t") for line in corpus.train.read_text(encoding="utf-8").splitlines()]
        test = [line.split("\t") for line in corpus.test.read_text(encoding="utf-8").splitlines()]
        seen[locale] = (train, test, minutes, kit_sets)
        return side(30.0, 50.0) if locale == "fr" else side(12.0, 50.0)

    def tutorial(corpus, directory, minutes, vocab_size, seed, *, stage):
        assert (minutes, vocab_size, seed) == (0.5, 100, 0)
        return side(10.0, 40.0, 0.0)

    monkeypatch.setattr(quality, "run_kit", kit)
    monkeypatch.setattr(quality, "run_tutorial", tutorial)
    args = parse("--locales", "fr, de", "--locale-dir", str(locale_dir), "--minutes", "0.5", "--test-pairs", "2",
                 "--tutorial-vocab", "100", "--kit-set", "model.units=64", "--work", str(tmp_path / "work"))
    result = quality.run(args)

    assert list(result["locales"]) == ["fr", "de"]
    assert result["minutes"] == 0.5 and result["all_targets_met"] is False
    assert result["targets"] == {"bleu_ratio": 1.5, "chrf": "kit > tutorial", "placeholder_rate": 0.99}
    fr, de = result["locales"]["fr"], result["locales"]["de"]
    assert (fr["train_pairs"], fr["test_pairs"], de["train_pairs"], de["test_pairs"]) == (31, 2, 1, 2)
    assert fr["bleu_ratio"] == 3.0 and all(fr["targets_met"].values())
    assert de["bleu_ratio"] == 1.2 and not de["targets_met"]["bleu_ratio"]
    train, test, minutes, kit_sets = seen["fr"]
    assert (minutes, kit_sets) == (0.5, ["model.units=64"])
    assert len(train) == 31 and len(test) == 2
    catalog = {(source.strip(), target.strip()) for source, target in MESSAGES.items()}
    assert {tuple(pair) for pair in train + test} <= catalog
    assert not {tuple(pair) for pair in train} & {tuple(pair) for pair in test}
    assert json.loads((tmp_path / "work" / "fr" / "result.json").read_text()) == fr


def test_kit_only_trains_no_tutorial_and_judges_no_target(tmp_path, monkeypatch):
    locale_dir = tmp_path / "locale"
    write_catalog(locale_dir, "fr", "app", MESSAGES)

    def tutorial(*args, **kwargs):
        raise AssertionError("--kit-only trained the tutorial side")

    monkeypatch.setattr(quality, "run_kit", lambda corpus, run_dir, minutes, kit_sets, *, stage: side(30.0, 50.0))
    monkeypatch.setattr(quality, "run_tutorial", tutorial)
    result = quality.run(parse("--locales", "fr", "--locale-dir", str(locale_dir), "--minutes", "0.5",
                               "--test-pairs", "2", "--kit-only", "--work", str(tmp_path / "work")))

    assert result["kit_only"] is True and result["all_targets_met"] is None
    assert result["locales"]["fr"] == {"train_pairs": 31, "test_pairs": 2, "kit": side(30.0, 50.0)}


def test_a_failed_pair_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    locale_dir = tmp_path / "locale"
    write_catalog(locale_dir, "fr", "app", MESSAGES)

    def kit(corpus, run_dir, minutes, kit_sets, *, stage):
        raise RuntimeError("seq2seq train exited with code 1")

    monkeypatch.setattr(quality, "run_kit", kit)
    args = parse("--locales", "de,fr", "--locale-dir", str(locale_dir), "--test-pairs", "2")
    result = quality.run(args)
    assert "No gettext catalogs for 'de'" in result["locales"]["de"]["error"]
    assert result["locales"]["fr"] == {"error": "seq2seq train exited with code 1"}
    assert result["all_targets_met"] is False


def test_run_kit_trains_with_the_defaults_and_passes_evaluate_through(tmp_path, monkeypatch):
    corpus = quality.write_corpus(tmp_path, [Pair("Open %s", "Ouvrir %s"), Pair("Quit", "Quitter")],
                                  [Pair("Save", "Enregistrer")])
    run_dir = tmp_path / "kit"
    calls = []

    def seq2seq_command(words, log_path):
        calls.append(words)
        if words[0] == "train":
            run_dir.mkdir()
            (run_dir / "metrics.json").write_text(json.dumps({"training": {"epochs": 3}}))
            return '{"bleu": 1.0}\n'
        if words[0] == "evaluate":
            return '{"bleu": 40.0, "chrf": 60.0, "exact_match": 0.5, "sentences": 2, "new_key": 7}\n'
        return "Ouvrir %s\nQuitter\n"

    monkeypatch.setattr(quality, "seq2seq_command", seq2seq_command)
    kit = quality.run_kit(corpus, run_dir, 2.5, ["train.seed=3"])
    assert calls[0] == ["train", "--set", "data.corpus=tsv", "--set", f"data.path={corpus.train}",
                        "--set", "train.max_minutes=2.5", "--set", "train.seed=3", "--out", str(run_dir),
                        "--no-progress"]
    assert calls[1] == ["evaluate", "--model", str(run_dir), "--data", str(corpus.test)]
    assert calls[2] == ["translate", "--model", str(run_dir), "--input", str(corpus.test_sources)]
    assert (kit["bleu"], kit["new_key"], kit["epochs"]) == (40.0, 7, 3)
    assert (kit["length_ratio"], kit["placeholder_rate"], kit["placeholder_sentences"]) == (1.0, 1.0, 1)
    assert kit["train_seconds"] >= 0


def test_a_failing_command_names_its_log(tmp_path):
    command = [sys.executable, "-c", "import sys; print('bad corpus line 3', file=sys.stderr); sys.exit(2)"]
    with pytest.raises(RuntimeError, match=r"(?s)step exited with code 2; the end of .*step\.log:\nbad corpus line 3"):
        quality._checked_run(command, tmp_path / "step.log", "step")


# ----------------------------------------------------------------------------- the tutorial side


def test_tutorial_side_trains_for_its_budget_and_translates_every_source(tmp_path):
    pairs = [Pair(source, target) for source, target in MESSAGES.items()]
    corpus = quality.write_corpus(tmp_path, pairs[:3], pairs[3:])
    options = dict(train=str(corpus.train), test_sources=str(corpus.test_sources), directory=str(tmp_path / "t"),
                   minutes=0.001, vocab_size=8000, seed=0, launched=0.0)
    result = quality.train_and_translate_tutorial(options)
    assert len(result["translations"]) == 3 and all(isinstance(t, str) for t in result["translations"])
    assert result["steps"] == 1  # the budget is used up by the first batch
    assert result["epochs"] == 1.0  # 32 pairs: one batch of 64
    assert 20 < result["vocab_size"] < 8000  # an upper bound on a small corpus
    assert (tmp_path / "t" / "tokenizer.model").is_file()


# ----------------------------------------------------------------------------- numbers and the CLI


def test_number_pairs_are_num2words_of_distinct_seeded_numbers():
    num2words = pytest.importorskip("num2words").num2words
    test, train = bench_numbers.number_pairs(50, 10)
    numbers = random.Random(1234).sample(range(10_000_000), 60)
    assert test[0] == Pair(num2words(numbers[0], lang="en"), num2words(numbers[0], lang="fr"))
    assert train[-1] == Pair(num2words(numbers[-1], lang="en"), num2words(numbers[-1], lang="fr"))
    assert len(test) == 10 and len(train) == 50
    assert not {p.source for p in test} & {p.source for p in train}


def test_numbers_without_num2words_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "num2words", None)
    with pytest.raises(ImportError, match=r"pip install 'seq2seq-kit\[bench\]'"):
        bench_numbers.number_pairs(5, 5)


@pytest.mark.parametrize("module, argv, message", [
    (quality, ["--minutes", "0"], "--minutes must be positive"),
    (quality, ["--test-pairs", "0"], "--test-pairs must be at least 1"),
    (quality, ["--locales", " , "], "--locales names no language"),
    (bench_numbers, ["--minutes", "-1"], "--minutes must be 0"),
    (bench_numbers, ["--train-pairs", "0"], "--train-pairs must be at least 1"),
])
def test_bad_arguments_are_user_errors(module, argv, message):
    with pytest.raises(UserError, match=message):
        module.run(parse(*argv, module=module))


def test_both_benchmarks_are_seq2seq_bench_commands():
    from seq2seq.cli.main import build_parser

    parser = build_parser()
    assert parser.parse_args(["bench", "quality", "--locales", "de"]).locales == "de"
    assert parser.parse_args(["bench", "numbers", "--minutes", "0"]).minutes == 0.0
