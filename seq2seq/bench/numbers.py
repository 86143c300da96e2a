"""`seq2seq bench numbers`: English number words to French ones with `seq2seq train`'s defaults.

`num2words(n, lang="en")` -> `num2words(n, lang="fr")` ("seventy-one" ->
"soixante et onze", "two million" -> "deux millions") for distinct numbers
below ten million drawn with `random.Random(1234)`: the first `--test-pairs`
(1,000) are the test set, the next `--train-pairs` (30,000) the training data,
so no test number is seen in training. The kit trains with nothing but the
corpus (and `--minutes`, when given) set, as in `seq2seq bench quality`, and
is scored with `seq2seq evaluate`; the target is an exact match on >= 95% of
the test numbers. `num2words` is the optional `bench` extra
(`pip install 'seq2seq-kit[bench]'`). See docs/translation-quality.md.
"""

import argparse
import random

from seq2seq.bench.quality import SPLIT_SEED, add_budget_arguments, run_kit, work_directory, write_corpus

TRAIN_PAIRS = 30_000
TEST_PAIRS = 1000
# Numbers are drawn from range(LIMIT): 0 to 9,999,999.
LIMIT = 10_000_000
# Issue 16: the fraction of test numbers translated exactly.
EXACT_MATCH_TARGET = 0.95


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_budget_arguments(parser, "training wall-clock budget (default: 10; 0 = the defaults' epochs and "
                                 "early stopping)")
    parser.add_argument("--train-pairs", type=int, default=TRAIN_PAIRS,
                        help=f"training numbers (default: {TRAIN_PAIRS})")
    parser.add_argument("--test-pairs", type=int, default=TEST_PAIRS, help=f"test numbers (default: {TEST_PAIRS})")


def run(args) -> dict:
    from seq2seq.bench.quality import progress
    from seq2seq.errors import UserError

    if args.minutes < 0:
        raise UserError(f"--minutes must be 0 (no budget) or positive; received {args.minutes}")
    for flag, value in (("--train-pairs", args.train_pairs), ("--test-pairs", args.test_pairs)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1; received {value}")
    test, train = number_pairs(args.train_pairs, args.test_pairs)
    with work_directory(args.work) as work:
        corpus = write_corpus(work / "numbers", test, train)
        progress(f"numbers: {len(train)} training and {len(test)} test pairs; kit training "
                 f"({f'{args.minutes} min' if args.minutes else 'no budget'})")
        kit = run_kit(corpus, work / "numbers" / "kit", args.minutes, stage="numbers: kit")
    return {
        "train_pairs": len(train),
        "test_pairs": len(test),
        "kit": kit,
        "minutes": args.minutes,
        "targets": {"exact_match": EXACT_MATCH_TARGET},
        "all_targets_met": kit["exact_match"] >= EXACT_MATCH_TARGET,
    }


def number_pairs(train_pairs: int, test_pairs: int) -> tuple[list, list]:
    """`(test, train)` lists of `Pair(english words, french words)` of distinct random numbers below `LIMIT`."""
    from seq2seq.data.reader import Pair

    num2words = _num2words()
    numbers = random.Random(SPLIT_SEED).sample(range(LIMIT), test_pairs + train_pairs)
    pairs = [Pair(num2words(n, lang="en"), num2words(n, lang="fr")) for n in numbers]
    return pairs[:test_pairs], pairs[test_pairs:]


def _num2words():
    try:
        from num2words import num2words
    except ImportError:
        raise ImportError("`seq2seq bench numbers` needs num2words: pip install 'seq2seq-kit[bench]'") from None
    return num2words
