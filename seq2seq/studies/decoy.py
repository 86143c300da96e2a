"""The decoy experiment: does the saliency penalty stop a classifier from taking a shortcut?

After Ross, Hughes and Doshi-Velez's decoy MNIST, on `generate_labeled`'s task:
a keyword decides the label, and the first word is a decoy ("alfa"/"omeg") that
names the label in every training text (mask 0 on it). Three classifiers train
with the same sizes, seed and budget:

- plain: weight 0, so nothing stops it from reading the decoy;
- regularized: `DEFAULT_SALIENCY_WEIGHT`, the default the CLI applies to masked data;
- without decoy: weight 0 on the same texts with the decoy word removed (the
  reference: what a model that never saw the shortcut achieves).

Each is scored on a test set whose decoy is drawn at random (agreement 0.5: a
model reading it is at chance on the texts where it lies) and on a clean test
set without decoy words, and by its decoy flip rate: the fraction of
random-decoy texts whose prediction changes when only the decoy is swapped
(the shortcut measured directly). With `label_noise` a fraction of training texts have
their label (and decoy, which stays tied to it) flipped away from the keyword,
so the decoy becomes the *better* predictor, as in Ross et al.'s setup.

The clean test set is out of distribution for the two models trained with a
decoy (every training text starts with one): removing the first word shifts
both towards one class, whether or not they read the decoy. The random-decoy
accuracy (the decoy present but uninformative) and the flip rate are the
measures of the shortcut; the clean column measures that shift.
"""

import random
from dataclasses import dataclass, field, replace
from pathlib import Path

from seq2seq.runs.classification import (DEFAULT_SALIENCY_WEIGHT, ClassifierRunConfig, evaluate_examples, load_run,
                                    train_run, with_overrides)
from seq2seq.data.generated import DECOY_WORDS, LABELS, generate_labeled
from seq2seq.data.reader import LabeledText

SETUPS = ("plain", "regularized", "without_decoy")
# The classifier the experiment trains: the CLI's defaults (`ClassifierRunConfig()`:
# BiLSTM of 64 units, embeddings 64, the default learning rate and epochs), so
# the regularized row measures exactly the default `seq2seq classifier train`
# applies to masked data. `small_run()` is the smaller model of earlier versions.
DECOY_RUN = ClassifierRunConfig()


def small_run() -> ClassifierRunConfig:
    """A forward LSTM of 16 units (embeddings 16), 6 epochs at Adam 1e-2: the penalty is not evaded at this size."""
    return with_overrides(ClassifierRunConfig(), model={"units": 16, "embed_dim": 16, "bidirectional": False},
                          train={"epochs": 6, "learning_rate": 1e-2})


@dataclass(frozen=True)
class DecoyConfig:
    """Sizes of the decoy experiment; the classifier's own settings are in `run`."""

    train_texts: int = 2000
    valid_texts: int = 300
    test_texts: int = 1000
    # Fraction of training texts whose label and decoy are flipped away from the keyword.
    label_noise: float = 0.2
    # Weight of the regularized setup.
    saliency_weight: float = DEFAULT_SALIENCY_WEIGHT
    seed: int = 0
    run: ClassifierRunConfig = field(default_factory=lambda: DECOY_RUN)


def decoy_splits(config: DecoyConfig) -> dict[str, list[LabeledText]]:
    """train / valid (decoy tied to the label, noisy keyword), test_random_decoy, test_clean."""
    seed = config.seed
    test_random = generate_labeled(config.test_texts, seed=seed * 10 + 3, decoy_agreement=0.5)
    return {
        "train": add_label_noise(generate_labeled(config.train_texts, seed=seed * 10 + 1), config.label_noise, seed),
        "valid": add_label_noise(generate_labeled(config.valid_texts, seed=seed * 10 + 2), config.label_noise,
                                 seed + 1),
        "test_random_decoy": test_random,
        "test_clean": [without_decoy(e) for e in test_random],
    }


def add_label_noise(examples: list[LabeledText], fraction: float, seed: int) -> list[LabeledText]:
    """Flips the label of `fraction` of the examples, and their decoy with it (the keyword stays)."""
    rng = random.Random(f"decoy-noise/{seed}")
    noisy = []
    for example in examples:
        if rng.random() < fraction:
            label = LABELS[1 - LABELS.index(example.label)]
            words = example.text.split()
            example = LabeledText(label, " ".join([DECOY_WORDS[label]] + words[1:]), example.mask)
        noisy.append(example)
    return noisy


def without_decoy(example: LabeledText) -> LabeledText:
    """The example without its first word (the decoy) and that word's mask value."""
    words = example.text.split()
    mask = None if example.mask is None else example.mask[1:]
    return LabeledText(example.label, " ".join(words[1:]), mask)


def run_experiment(config: DecoyConfig, out_dir, *, progress: bool = False, log=print) -> list[dict]:
    """Trains the three setups into `out_dir/<setup>` and returns one result row per setup."""
    splits = decoy_splits(config)
    rows = []
    for setup in SETUPS:
        weight = config.saliency_weight if setup == "regularized" else 0.0
        train, valid = splits["train"], splits["valid"]
        if setup == "without_decoy":
            train, valid = [without_decoy(e) for e in train], [without_decoy(e) for e in valid]
        run_config = with_overrides(config.run, model={"saliency_weight": weight})
        log(f"--- {setup} (saliency_weight={weight:g})")
        metrics = train_run(run_config, train, valid, Path(out_dir) / setup, progress=progress, log=log)
        run = load_run(Path(out_dir) / setup)
        rows.append({
            "setup": setup,
            "saliency_weight": weight,
            "valid_accuracy": metrics["valid"]["accuracy"],
            "random_decoy_accuracy": evaluate_examples(run, splits["test_random_decoy"])["accuracy"],
            "clean_accuracy": evaluate_examples(run, splits["test_clean"])["accuracy"],
            "decoy_attention": _mean_first_word_attention(run, splits["test_random_decoy"]) if setup != "without_decoy" else None,
            "decoy_flip_rate": _decoy_flip_rate(run, splits["test_random_decoy"]) if setup != "without_decoy" else None,
            "epochs": metrics["training"]["epochs"],
            "training_seconds": metrics["training_seconds"],
        })
    return rows


def _mean_first_word_attention(run, examples: list[LabeledText]) -> float:
    from seq2seq.runs.classification import classify_texts

    attention = classify_texts(run, [e.text for e in examples])["word_attention"]
    return round(float(sum(a[0] for a in attention) / len(attention)), 4)


def _decoy_flip_rate(run, examples: list[LabeledText]) -> float:
    """Fraction of texts whose predicted label changes when only the decoy is swapped (alfa <-> omeg).

    The direct measure of the shortcut: 0 = the decoy's identity never decides, 1 = it always does.
    """
    from seq2seq.runs.classification import classify_texts

    swap = {DECOY_WORDS[label]: DECOY_WORDS[LABELS[1 - i]] for i, label in enumerate(LABELS)}
    texts = [e.text for e in examples]
    swapped = [" ".join([swap[t.split()[0]]] + t.split()[1:]) for t in texts]
    before, after = classify_texts(run, texts)["labels"], classify_texts(run, swapped)["labels"]
    return round(float((before != after).mean()), 4)


def format_table(rows: list[dict]) -> str:
    """The results as a Markdown table."""
    lines = ["| setup | saliency weight | random-decoy test acc. | clean test acc. | decoy flip rate | "
             "attention on decoy | valid acc. |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        decoy = "-" if row["decoy_attention"] is None else f"{row['decoy_attention']:.3f}"
        flips = "-" if row.get("decoy_flip_rate") is None else f"{row['decoy_flip_rate']:.3f}"
        lines.append(f"| {row['setup']} | {row['saliency_weight']:g} | {row['random_decoy_accuracy']:.3f} | "
                     f"{row['clean_accuracy']:.3f} | {flips} | {decoy} | {row['valid_accuracy']:.3f} |")
    return "\n".join(lines)


def quick(config: DecoyConfig) -> DecoyConfig:
    """A smaller, faster version of `config` (fewer texts)."""
    return replace(config, train_texts=1000, valid_texts=200, test_texts=400)
