"""`seq2seq bench quality`: `seq2seq train`'s defaults against the Keras tutorial model, pair by pair.

For each English -> <locale> pair of the machine's gettext catalogs
(`read_gettext`), one split rule: the pairs shuffled with
`random.Random(1234).shuffle`; test = the first `--test-pairs` (1,000), the
next as many are left out, training data = the rest. Both sides train on the
same training TSV for the same wall-clock budget (`--minutes` each), one
after the other, each in its own process, and are scored on the same test
pairs:

- kit: `seq2seq train --set data.corpus=tsv --set data.path=TRAIN.tsv --set
  train.max_minutes=M` (every other setting its default; the run splits off
  its own validation and test pairs from TRAIN.tsv), then `seq2seq evaluate`
  on TEST.tsv (its JSON keys are passed through) and `seq2seq translate` of
  the test sources.
- tutorial: `seq2seq.bench.train_sides.baseline_model` (Embedding 256 + LSTM
  256 encoder, LSTM 256 decoder from its state, AdditiveAttention,
  Concatenate, Dense(vocab); masked sparse cross-entropy, Adam 1e-3) with its
  own SentencePiece vocabulary (`--tutorial-vocab`, an upper bound) trained on
  the training pairs, sequences cut to 64 pieces, batches of 64 pairs in
  corpus order padded to the batch maximum, `model.fit` stopped by
  `TimeBudget`; greedy decoding of at most 64 pieces by re-running the model
  over the prefix (`seq2seq.bench.decode`).

Both sides' translations get the same `length_ratio` (sacreBLEU's
hypothesis/reference length, 13a tokens) and `placeholder_rate`. The targets
of issue 16, per pair: kit BLEU >= 1.5x tutorial BLEU, kit chrF higher, kit
placeholder rate >= 0.99. See docs/translation-quality.md.
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from seq2seq.placeholders import placeholder_rate

LOCALES = "de,es,it,ru,ja,zh_CN,fr"
SPLIT_SEED = 1234
TEST_PAIRS = 1000
# Longest tutorial source and target, and longest tutorial output, in pieces.
TUTORIAL_MAX_LEN = 64
TUTORIAL_VOCAB = 8000
TUTORIAL_BATCH = 64
BLEU_RATIO_TARGET = 1.5
PLACEHOLDER_RATE_TARGET = 0.99


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--locales", default=LOCALES,
                        help=f"comma-separated gettext target languages (default: {LOCALES})")
    parser.add_argument("--locale-dir", default="/usr/share/locale", help="gettext catalog root")
    parser.add_argument("--test-pairs", type=int, default=TEST_PAIRS,
                        help=f"test pairs per language; as many more are left out (default: {TEST_PAIRS})")
    add_budget_arguments(parser, "training wall-clock budget of each side, per pair (default: 10)")
    parser.add_argument("--kit-set", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra `seq2seq train --set` for the kit side, for experiments (repeatable)")
    parser.add_argument("--tutorial-vocab", type=int, default=TUTORIAL_VOCAB,
                        help=f"the tutorial tokenizer's vocabulary, an upper bound (default: {TUTORIAL_VOCAB})")
    parser.add_argument("--seed", type=int, default=0, help="the tutorial model's weights (default: 0)")
    parser.add_argument("--kit-only", action="store_true",
                        help="train and score the kit side only (half the time; no ratios, all_targets_met null)")


def add_budget_arguments(parser: argparse.ArgumentParser, minutes_help: str) -> None:
    """`--minutes` (default 10) and `--work` (default: a temporary directory), as `work_directory` takes it."""
    parser.add_argument("--minutes", type=float, default=10.0, help=minutes_help)
    parser.add_argument("--work", help="working directory for corpora, runs and logs, kept afterwards; "
                                       "empty or new, outside the repository (default: a temporary directory)")


def run(args) -> dict:
    from seq2seq.errors import UserError

    locales = _check_arguments(args)
    results = {}
    with work_directory(args.work) as work:
        for locale in locales:
            try:
                results[locale] = run_locale(locale, work / locale, args)
            except (UserError, RuntimeError) as error:  # one failed pair does not cost the others' hour
                progress(f"{locale}: failed: {error}")
                results[locale] = {"error": str(error)}
    return report(results, args.minutes, kit_only=args.kit_only)


def _check_arguments(args) -> list[str]:
    from seq2seq.errors import UserError

    if not args.minutes > 0:
        raise UserError(f"--minutes must be positive; received {args.minutes}")
    if args.test_pairs < 1:
        raise UserError(f"--test-pairs must be at least 1; received {args.test_pairs}")
    locales = [locale.strip() for locale in args.locales.split(",") if locale.strip()]
    if not locales:
        raise UserError(f"--locales names no language; received {args.locales!r}, e.g. --locales de,fr")
    return locales


def run_locale(locale: str, directory: Path, args) -> dict:
    """Both sides on one English -> `locale` pair: `{"train_pairs", "test_pairs", "kit", "tutorial", ...}`."""
    from seq2seq.data.gettext import read_gettext

    progress(f"{locale}: reading the catalogs")
    pairs, _ = read_gettext(locale, locale_dir=args.locale_dir)
    test, train = benchmark_split(pairs, args.test_pairs)
    corpus = write_corpus(directory, test, train)
    progress(f"{locale}: {len(train)} training and {len(test)} test pairs; kit training ({args.minutes} min)")
    kit = run_kit(corpus, directory / "kit", args.minutes, args.kit_set, stage=f"{locale}: kit")
    result = dict(train_pairs=len(train), test_pairs=len(test), kit=kit)
    scores = f"{locale}: kit BLEU {kit['bleu']:.1f} chrF {kit['chrf']:.1f}"
    if not args.kit_only:
        progress(f"{locale}: tutorial training ({args.minutes} min)")
        tutorial = run_tutorial(corpus, directory / "tutorial", args.minutes, args.tutorial_vocab, args.seed,
                                stage=f"{locale}: tutorial")
        result.update(compare(kit, tutorial))
        scores += f" | tutorial BLEU {tutorial['bleu']:.1f} chrF {tutorial['chrf']:.1f}"
    (directory / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    progress(scores)
    return result


# ----------------------------------------------------------------------------- data


class Corpus(NamedTuple):
    """The files of one pair: training TSV, test TSV and the test sources, one per line."""

    train: Path
    test: Path
    test_sources: Path
    sources: list[str]
    references: list[str]


def benchmark_split(pairs: list, test_pairs: int) -> tuple[list, list]:
    """`(test, train)`: the pairs shuffled with `random.Random(SPLIT_SEED)`; test = the first
    `test_pairs`, the next `test_pairs` left out, train = the rest (in shuffled order)."""
    from seq2seq.errors import UserError

    shuffled = list(pairs)
    random.Random(SPLIT_SEED).shuffle(shuffled)
    if len(shuffled) <= 2 * test_pairs:
        raise UserError(f"{len(shuffled)} pairs leave no training data after {test_pairs} test and "
                        f"{test_pairs} left-out pairs; use a smaller --test-pairs")
    return shuffled[:test_pairs], shuffled[2 * test_pairs:]


def write_corpus(directory: Path, test: list, train: list) -> Corpus:
    """Writes train.tsv, test.tsv and test_sources.txt into `directory` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    test = [(_one_line(p.source), _one_line(p.target)) for p in test]
    corpus = Corpus(directory / "train.tsv", directory / "test.tsv", directory / "test_sources.txt",
                    [source for source, _ in test], [target for _, target in test])
    corpus.train.write_text("".join(f"{_one_line(p.source)}\t{_one_line(p.target)}\n" for p in train),
                            encoding="utf-8")
    corpus.test.write_text("".join(f"{s}\t{t}\n" for s, t in test), encoding="utf-8")
    corpus.test_sources.write_text("".join(s + "\n" for s in corpus.sources), encoding="utf-8")
    return corpus


def _one_line(text: str) -> str:
    """`text` with tabs and line breaks replaced by spaces (one TSV field)."""
    return re.sub(r"[\t\r\n]", " ", text).strip()


@contextmanager
def work_directory(path):
    """`path` (created; refused inside the repository and when it holds runs), else a temporary directory."""
    from seq2seq.errors import UserError

    if path is None:
        with tempfile.TemporaryDirectory(prefix="seq2seq-bench-") as directory:
            yield Path(directory)
        return
    path = Path(path).resolve()
    repository = Path(__file__).resolve().parents[2]
    if (repository / "pyproject.toml").is_file() and path.is_relative_to(repository):
        raise UserError(f"--work {path} is inside the repository {repository}; choose a directory outside it")
    if path.is_dir() and any(path.iterdir()):
        raise UserError(f"--work {path} is not empty (an old run there would resume); give an empty or new directory")
    path.mkdir(parents=True, exist_ok=True)
    yield path


# ----------------------------------------------------------------------------- the kit side


def run_kit(corpus: Corpus, run_dir: Path, minutes: float, kit_sets=(), *, stage: str = "kit") -> dict:
    """`seq2seq train` on `corpus.train` with the defaults and the budget, then `evaluate` and `translate`.

    Returns `seq2seq evaluate`'s keys plus `translation_scores` of the
    translations and `train_seconds` (wall-clock of the train process) and
    `epochs`. `minutes` 0 trains without a budget.
    """
    budget = [f"train.max_minutes={minutes}"] if minutes else []
    settings = ["data.corpus=tsv", f"data.path={corpus.train}", *budget, *kit_sets]
    train = ["train", *(word for s in settings for word in ("--set", s)), "--out", str(run_dir), "--no-progress"]
    model = ["--model", str(run_dir)]

    def logged(words):  # stderr of `seq2seq train` goes to kit-train.log, ...
        return seq2seq_command(words, run_dir.with_name(f"{run_dir.name}-{words[0]}.log"))

    started = time.perf_counter()
    logged(train)
    train_seconds = time.perf_counter() - started
    progress(f"{stage}: scoring")
    scores = json.loads(logged(["evaluate", *model, "--data", str(corpus.test)]).strip().splitlines()[-1])
    translations = logged(["translate", *model, "--input", str(corpus.test_sources)]).split("\n")[:-1]
    training = json.loads((run_dir / "metrics.json").read_text())["training"]
    return {**scores, **translation_scores(corpus.sources, translations, corpus.references),
            "train_seconds": round(train_seconds, 1), "epochs": training["epochs"]}


def seq2seq_command(words: list[str], log_path: Path) -> str:
    """Runs `seq2seq WORDS` with this Python (stderr to `log_path`); returns its stdout."""
    return _checked_run([sys.executable, "-m", "seq2seq.cli.main", *words], log_path, "seq2seq " + words[0])


def _checked_run(command: list[str], log_path: Path, name: str) -> str:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if done.returncode:
        tail = "\n".join(log_path.read_text(encoding="utf-8").splitlines()[-15:])
        raise RuntimeError(f"{name} exited with code {done.returncode}; the end of {log_path}:\n{tail}")
    return done.stdout


# ----------------------------------------------------------------------------- the tutorial side


def run_tutorial(corpus: Corpus, directory: Path, minutes: float, vocab_size: int, seed: int, *,
                 stage: str = "tutorial") -> dict:
    """Trains and decodes the tutorial model in its own process; scores its translations.

    Returns `evaluate_translations`' keys, `translation_scores` and the
    process's `train_seconds` (start until fit returns), `fit_seconds`,
    `steps`, `epochs` and `vocab_size`.
    """
    from seq2seq.evaluation import evaluate_translations

    options = dict(train=str(corpus.train), test_sources=str(corpus.test_sources), directory=str(directory),
                   minutes=minutes, vocab_size=vocab_size, seed=seed, launched=time.time())
    directory.mkdir(parents=True, exist_ok=True)
    _checked_run([sys.executable, "-c", "from seq2seq.bench.quality import tutorial_main; tutorial_main()",
                  json.dumps(options)], directory.with_name(directory.name + ".log"), "the tutorial side")
    progress(f"{stage}: scoring")
    result = json.loads((directory / "result.json").read_text(encoding="utf-8"))
    translations = result.pop("translations")
    return {**evaluate_translations(translations, corpus.references),
            **translation_scores(corpus.sources, translations, corpus.references), **result}


def tutorial_main() -> None:
    """The tutorial side's process: options as JSON in argv[1]; writes DIRECTORY/result.json."""
    options = json.loads(sys.argv[1])
    result = train_and_translate_tutorial(options)
    Path(options["directory"], "result.json").write_text(json.dumps(result), encoding="utf-8")


def train_and_translate_tutorial(options: dict) -> dict:
    import keras

    from seq2seq.bench.train_sides import baseline_model, encode_pairs, padded_batches, repeated_batches
    from seq2seq.callbacks import TimeBudget
    from seq2seq.cli.io import read_lines
    from seq2seq.data.reader import read_parallel_tsv
    from seq2seq.tokenizer import SentencePieceTokenizer, train_sentencepiece_from_sentences

    keras.utils.set_random_seed(options["seed"])  # first: seeding clears TF's kernel cache
    pairs, _ = read_parallel_tsv(options["train"])
    tokenizer = SentencePieceTokenizer.from_file(train_sentencepiece_from_sentences(
        [p.source for p in pairs] + [p.target for p in pairs], options["directory"], name="tokenizer",
        vocab_size=options["vocab_size"], hard_vocab_limit=False))
    batches = list(padded_batches(encode_pairs(pairs, tokenizer, TUTORIAL_MAX_LEN), TUTORIAL_BATCH))
    model = baseline_model(tokenizer.vocab_size)
    started = time.perf_counter()
    model.fit(repeated_batches(batches), epochs=1, steps_per_epoch=10**9,
              callbacks=[TimeBudget(options["minutes"] * 60)], shuffle=False, verbose=0)  # corpus order
    fit_seconds = time.perf_counter() - started
    train_seconds = time.time() - options["launched"]
    steps = int(model.optimizer.iterations.numpy())
    started = time.perf_counter()
    translations = greedy_translations(model, tokenizer, read_lines(options["test_sources"]))
    return {"train_seconds": round(train_seconds, 1), "fit_seconds": round(fit_seconds, 1),
            "decode_seconds": round(time.perf_counter() - started, 1), "steps": steps,
            "epochs": round(steps / len(batches), 2), "vocab_size": tokenizer.vocab_size,
            "translations": translations}


def greedy_translations(model, tokenizer, texts: list[str]) -> list[str]:
    """Greedy translations (at most `TUTORIAL_MAX_LEN` pieces) by a `([source, target_in]) -> logits` model.

    Batches of `TUTORIAL_BATCH` length-sorted texts; each step re-runs the
    model over the prefix (`seq2seq.bench.decode`'s compiled prefix decoder).
    """
    from seq2seq.bench.decode import _baseline_decoder
    from seq2seq.inference import length_sorted_batches, source_ids

    def translator(inputs, training=False):
        return {"logits": model(list(inputs), training=training)}

    decode = _baseline_decoder({"translator": translator, "max_length": TUTORIAL_MAX_LEN})
    outputs = [""] * len(texts)
    for indices in length_sorted_batches(texts, TUTORIAL_BATCH):
        ids = decode(source_ids(tokenizer, [texts[i] for i in indices], TUTORIAL_MAX_LEN))
        for index, text in zip(indices, tokenizer.detokenize(ids).numpy()):
            outputs[index] = text.decode("utf-8")
    return outputs


# ----------------------------------------------------------------------------- scores and report


def translation_scores(sources: list[str], translations: list[str], references: list[str]) -> dict:
    """`length_ratio` (sacreBLEU's hypothesis / reference length), `placeholder_rate` (None when no
    source has a placeholder) and `placeholder_sentences` of one side's translations."""
    from sacrebleu.metrics import BLEU

    if len(translations) != len(sources):
        raise RuntimeError(f"{len(translations)} translations for {len(sources)} test sources")
    bleu = BLEU().corpus_score(translations, [references])
    rate, count = placeholder_rate(sources, translations)
    return {"length_ratio": round(bleu.sys_len / bleu.ref_len, 4) if bleu.ref_len else None,
            "placeholder_rate": rate, "placeholder_sentences": count}


def compare(kit: dict, tutorial: dict) -> dict:
    """One pair's entry: both sides, `bleu_ratio` (None when the tutorial's BLEU is 0) and `targets_met`."""
    ratio = kit["bleu"] / tutorial["bleu"] if tutorial["bleu"] else None
    met = {
        "bleu_ratio": ratio >= BLEU_RATIO_TARGET if ratio is not None else kit["bleu"] > 0,
        "chrf": kit["chrf"] > tutorial["chrf"],
        # A test set without placeholders cannot miss the target.
        "placeholder_rate": kit["placeholder_rate"] is None or kit["placeholder_rate"] >= PLACEHOLDER_RATE_TARGET,
    }
    return {"kit": kit, "tutorial": tutorial, "bleu_ratio": round(ratio, 3) if ratio is not None else None,
            "targets_met": met}


def report(results: dict, minutes: float, *, kit_only: bool = False) -> dict:
    """The benchmark's JSON: per-locale entries (`compare`, or `{"error"}`), the budget and the targets.

    With `kit_only` there is no tutorial side to compare with: `all_targets_met` is None.
    """
    if kit_only:
        return {"locales": results, "minutes": minutes, "kit_only": True, "all_targets_met": None}
    return {
        "locales": results,
        "minutes": minutes,
        "targets": {"bleu_ratio": BLEU_RATIO_TARGET, "chrf": "kit > tutorial",
                    "placeholder_rate": PLACEHOLDER_RATE_TARGET},
        "all_targets_met": all("error" not in entry and all(entry["targets_met"].values())
                               for entry in results.values()),
    }


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
