"""The decoy experiment: a plain classifier, a saliency-regularized one and one trained without the decoy.

    python recipes/decoy_classifier.py --out runs/decoy           # about 3 minutes on 2 CPU cores
    python recipes/decoy_classifier.py --quick --out runs/decoy   # fewer texts, about 2 minutes
    python recipes/decoy_classifier.py --small --out runs/decoy   # forward LSTM of 16 units, Adam 1e-2

By default the classifier is the one `seq2seq classifier train` trains by
default (BiLSTM 64 units, embeddings 64, Adam 1e-3, 20 epochs, early stopping)
and the regularized setup uses the CLI's default saliency weight, so the table
measures the documented default.

Generated texts (`seq2seq.data.generated.generate_labeled`): a keyword decides
the label and the first word is a decoy naming the label in every training
text (mask 0 on it); 20% of the training labels follow the decoy instead of
the keyword, so the decoy is the better predictor. Each model is scored on a
test set whose decoy is random and on the same texts without the decoy; see
`seq2seq.studies.decoy` for the setup. Prints the results table and writes
results.json and one run directory per setup into --out.
"""

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from seq2seq.runs.classification import with_overrides  # noqa: E402
from seq2seq.studies.decoy import DecoyConfig, format_table, quick, run_experiment, small_run  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/decoy", help="output directory")
    parser.add_argument("--quick", action="store_true", help="fewer training texts")
    parser.add_argument("--saliency-weight", type=float, default=None,
                        help="weight of the regularized setup (default: the CLI's default weight)")
    parser.add_argument("--seed", type=int, default=0, help="data, initial weights and batch order")
    parser.add_argument("--small", action="store_true",
                        help="a forward LSTM of 16 units at Adam 1e-2 instead of the CLI's default model")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the CLI's)")
    parser.add_argument("--learning-rate", type=float, default=None, help="Adam learning rate (default: the CLI's)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    config = DecoyConfig(seed=args.seed)
    if args.saliency_weight is not None:
        config = dataclasses.replace(config, saliency_weight=args.saliency_weight)
    if args.small:
        config = dataclasses.replace(config, run=small_run())
    train = {key: value for key, value in (("epochs", args.epochs), ("learning_rate", args.learning_rate))
             if value is not None}
    if train:
        config = dataclasses.replace(config, run=with_overrides(config.run, train=train))
    if args.quick:
        config = quick(config)
    out = Path(args.out)
    rows = run_experiment(config, out, log=lambda message: print(message, file=sys.stderr))
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
