"""`seq2seq bench saliency-quality`: does the default saliency penalty remove shortcuts on real text?

For each decoy task of `seq2seq.bench.decoy_tasks` (real gettext text, a decoy
word tied to the label at a random position in training and validation, mask
0 on it) and each seed, three classifiers train through the library
(`seq2seq.runs.classification.train_run`) with `seq2seq classifier train`'s
defaults, the seed as `train.seed`:

- clean: the same texts without any decoy (no masks): the reference;
- plain: the decoy texts, `saliency_weight` 0 (nothing stops the shortcut);
- penalized: the decoy texts, the weight the CLI applies to masked data.

Scored: the clean model on the clean test; plain and penalized on the
random-decoy test (decoys drawn from every label's), their ratio to the clean
accuracy, and their decoy flip rate: the fraction of random-decoy test texts
whose predicted label changes when only the decoys are swapped for other
decoys (`seq2seq.shortcut_validation.swap_masked_words`). The targets of
issue 17, per task and seed: penalized ratio >= 0.98, plain ratio <= 0.6,
penalized flip rate <= 0.02 (`targets_met`). Plain and penalized models are
selected as the CLI selects them (on the swapped validation texts,
`seq2seq.shortcut_validation`); `--select-on-val-loss` selects on `val_loss`,
the rule before issue 17. JSON on stdout, progress lines on stderr. Results and how the defaults were chosen: docs/saliency-real-text.md.
"""

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from seq2seq.bench.decoy_tasks import TASKS, TaskSizes, make_task, without_masked_words
from seq2seq.data.gettext import DEFAULT_LOCALE_DIR

PENALIZED_RATIO_TARGET = 0.98  # penalized random-decoy accuracy / clean accuracy, at least
PLAIN_RATIO_TARGET = 0.6  # plain random-decoy accuracy / clean accuracy, at most
FLIP_RATE_TARGET = 0.02  # penalized decoy flip rate, at most
FULL_SIZES = TaskSizes(train_texts=2000, valid_texts=400, test_texts=1000)
QUICK_SIZES = TaskSizes(train_texts=800, valid_texts=200, test_texts=400)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated (default: {','.join(TASKS)})")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of data and training (default: 0,1,2)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_SIZES.train_texts} training texts instead of {FULL_SIZES.train_texts}")
    parser.add_argument("--locale-dir", default=DEFAULT_LOCALE_DIR, help=f"gettext catalogs (default: {DEFAULT_LOCALE_DIR})")
    parser.add_argument("--out", default="", help="keep the run directories here (default: a temporary directory)")
    parser.add_argument("--select-on-val-loss", action="store_true",
                        help="select plain and penalised models on val_loss, not on the swapped validation "
                             "texts (train.select_on_swapped = false; default: the swapped texts, train.select_on_swapped = true)")


def run(args) -> dict:
    tasks, seeds = _parse_lists(args)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    with tempfile.TemporaryDirectory(prefix="saliency-quality-") as scratch:
        out = Path(args.out or scratch)
        rows = []
        for name in tasks:
            for seed in seeds:
                _progress(f"[{name} seed {seed}] building the task from {args.locale_dir}")
                task = make_task(name, TaskSizes(sizes.train_texts, sizes.valid_texts, sizes.test_texts, seed),
                                 args.locale_dir)
                rows.append(run_task(task, seed, out / f"{name}-seed{seed}", config=_base_config(args)))
    return {
        "targets_met": all(row["targets_met"] for row in rows),
        "rows": rows,
        "targets": {"penalized_ratio_min": PENALIZED_RATIO_TARGET, "plain_ratio_max": PLAIN_RATIO_TARGET,
                    "penalized_flip_rate_max": FLIP_RATE_TARGET},
        "setup": {"train_texts": sizes.train_texts, "valid_texts": sizes.valid_texts, "test_texts": sizes.test_texts,
                  "quick": bool(args.quick), "locale_dir": args.locale_dir,
                  "select_on_swapped": not args.select_on_val_loss},
    }


def _base_config(args):
    """The CLI's defaults, with the selection rule asked for."""
    from seq2seq.runs.classification import ClassifierRunConfig, with_overrides

    return with_overrides(ClassifierRunConfig(), train={"select_on_swapped": not args.select_on_val_loss})


def _parse_lists(args) -> tuple[list[str], list[int]]:
    from seq2seq.errors import UserError

    tasks = [name.strip() for name in args.tasks.split(",") if name.strip()]
    unknown = [name for name in tasks if name not in TASKS]
    if unknown or not tasks:
        raise UserError(f"--tasks takes names from {', '.join(TASKS)}; received {args.tasks!r}")
    try:
        seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    except ValueError:
        raise UserError(f"--seeds takes comma-separated integers such as 0,1,2; received {args.seeds!r}") from None
    if not seeds:
        raise UserError(f"--seeds takes comma-separated integers such as 0,1,2; received {args.seeds!r}")
    return tasks, seeds


def run_task(task, seed: int, out_dir, config=None, penalized_weight: float | None = None) -> dict:
    """Trains clean, plain and penalized classifiers on `task` into `out_dir/<setup>` and scores them.

    Args:
        task: a `seq2seq.bench.decoy_tasks.DecoyTask`.
        seed: `train.seed` of every run, and the seed of the flip-rate swaps.
        config: the base `ClassifierRunConfig` (default: the CLI's defaults).
        penalized_weight: the penalized run's weight; None = the CLI's default for masked data.
    Returns:
        One result row (see `summarize`).
    """
    from seq2seq.runs.classification import ClassifierRunConfig, resolve_saliency_weight, with_overrides

    config = with_overrides(config or ClassifierRunConfig(), train={"seed": seed})
    weight = resolve_saliency_weight(penalized_weight, task.train)
    setups = {
        "clean": (0.0, without_masked_words(task.train), without_masked_words(task.valid)),
        "plain": (0.0, task.train, task.valid),
        "penalized": (weight, task.train, task.valid),
    }
    scores = {}
    for setup, (setup_weight, train, valid) in setups.items():
        started = time.perf_counter()
        _progress(f"[{task.name} seed {seed}] {setup}: training (saliency weight {setup_weight:g})")
        run = _train(with_overrides(config, model={"saliency_weight": setup_weight}), train, valid,
                     Path(out_dir) / setup)
        scores[setup] = _score(run, task, seed, with_decoys=setup != "clean")
        scores[setup]["training_seconds"] = round(time.perf_counter() - started, 1)
        _progress(f"[{task.name} seed {seed}] {setup}: {scores[setup]}")
    return summarize(task.name, seed, weight, scores)


def _train(config, train, valid, run_dir):
    from seq2seq.runs.classification import load_run, train_run

    # The training driver prints its early-stopping notes on stdout, which holds the JSON only.
    with contextlib.redirect_stdout(sys.stderr):
        train_run(config, train, valid, run_dir, progress=False,
                  log=lambda message: None if message.startswith("config:") else _progress("  " + message))
    return load_run(run_dir)


def _score(run, task, seed: int, with_decoys: bool) -> dict:
    """Accuracy on the clean test; with decoys, also on the random-decoy test and the flip rate."""
    from seq2seq.runs.classification import evaluate_examples

    scores = {"clean_test_accuracy": evaluate_examples(run, task.test_clean)["accuracy"]}
    if with_decoys:
        scores["random_decoy_accuracy"] = evaluate_examples(run, task.test_random_decoy)["accuracy"]
        scores["flip_rate"] = decoy_flip_rate(run, task.test_random_decoy, task.decoy_pool, seed)
    return scores


def decoy_flip_rate(run, examples, pool: list[str], seed: int) -> float:
    """Fraction of `examples` whose predicted label changes when their mask-0 words are swapped for other `pool` words."""
    from seq2seq.runs.classification import classify_texts
    from seq2seq.shortcut_validation import swap_masked_words

    swapped = swap_masked_words(examples, pool, seed)
    before = classify_texts(run, [e.text for e in examples])["labels"]
    after = classify_texts(run, [e.text for e in swapped])["labels"]
    return round(float((before != after).mean()), 4) if len(examples) else 0.0


def summarize(task: str, seed: int, weight: float, scores: dict) -> dict:
    """One row: accuracies, ratios to the clean model's, flip rates, the targets met; per-setup details."""
    clean = scores["clean"]["clean_test_accuracy"]
    row = {"task": task, "seed": seed, "penalized_weight": weight, "clean_accuracy": clean}
    for setup in ("plain", "penalized"):
        accuracy = scores[setup]["random_decoy_accuracy"]
        row[f"{setup}_accuracy"] = accuracy
        row[f"{setup}_ratio"] = round(accuracy / clean, 4) if clean else None
        row[f"{setup}_flip_rate"] = scores[setup]["flip_rate"]
    row["targets_met"] = bool(
        clean and row["penalized_ratio"] >= PENALIZED_RATIO_TARGET and row["plain_ratio"] <= PLAIN_RATIO_TARGET
        and row["penalized_flip_rate"] <= FLIP_RATE_TARGET
    )
    row["details"] = scores
    return row


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
