"""Reproduce end-token collapse, then train the three fixes with the same model and budget.

    python recipes/end_token_collapse.py --out runs/collapse             # 1.5 minutes on 2 busy CPU cores
    python recipes/end_token_collapse.py --quick --out runs/collapse     # 3 epochs: 53 s of CPU, 1-2 minutes
    python recipes/end_token_collapse.py --epochs 8 --out runs/collapse  # where the fixes go, 2.5 minutes
    python recipes/end_token_collapse.py --corpus gettext --out runs/collapse-fr  # real text, 6+ minutes

The naive setup is the original failure: targets padded with repeated end tokens
([START, 12, 7, END, END, END, ...]), no masking, a plain cross-entropy. The
fixes: (1) `masked`: 0-padding with mask_zero and MaskedSparseCrossentropy;
(2) `end_pad_weighted`: the end token's class weight by the user's recipe, on
the END padding only (each target's real end keeps weight 1); (3) `boundary`:
BoundaryAwareLoss. A last row, `end_weighted`, is the user's recipe as written
(the weight on every END): it shows why that one runs long. Each setup trains
the same Translator from the same initial weights on the same batches for the
same number of epochs, with deterministic ops (see `seq2seq.studies.collapse_setups` for why
each fix is set up the way it is and what was measured). Prints one row per
setup (exact match, BLEU, empty outputs, END at the first step, length ratio,
END weight, verdict, the verdict after each epoch) and writes into --out:
results.json, and per setup diagnosis.json / diagnosis.txt / lengths.png /
end_by_position.png / translations.tsv.
"""

import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from seq2seq.studies.collapse_setups import EXTRA_SETUPS, SETUP_NAMES  # noqa: E402
from seq2seq.studies.collapse_study import StudyConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Generated "dedup" task (target lengths vary independently of the source), every
# target padded to 32 pieces: END is about 92% of the naive targets. 4 epochs (188 steps).
GENERATED = StudyConfig(corpus="generated", task="dedup",
                        tokenizer_model=str(REPO / "tokenizers" / "generated.model"))
GENERATED_QUICK = dataclasses.replace(GENERATED, test_pairs=100, probe_size=32, epochs=3)
# gettext messages (real text; a 2000-piece SentencePiece model trained on the training split).
# Measured with four setups: about 5 minutes, --quick about 2; the fifth row adds a quarter.
GETTEXT = StudyConfig(corpus="gettext", train_pairs=6000, vocab_size=2000, units=128, embed_dim=128,
                      epochs=4)
GETTEXT_QUICK = dataclasses.replace(GETTEXT, train_pairs=3000, test_pairs=100, probe_size=32, epochs=3)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/end-token-collapse", help="output directory")
    parser.add_argument("--corpus", choices=("generated", "gettext"), default="generated",
                        help="generated toy task (default, a few minutes) or this machine's gettext catalogs")
    parser.add_argument("--target", default="fr", help="gettext: target locale")
    parser.add_argument("--quick", action="store_true", help="less data and fewer epochs")
    parser.add_argument("--setups", type=setup_list, default=SETUP_NAMES,
                        help=f"comma-separated, in order (default: {','.join(SETUP_NAMES)}; "
                        f"also: {','.join(setup.name for setup in EXTRA_SETUPS)})")
    parser.add_argument("--seed", type=int, default=0, help="data, initial weights and batch order")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="train every setup this long (default: the preset's)")
    return parser.parse_args(argv)


def setup_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    known = SETUP_NAMES + tuple(setup.name for setup in EXTRA_SETUPS)
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected names among {','.join(known)}; received {text!r}")
    return names


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {text!r}")
    return int(text)


def build_config(args) -> StudyConfig:
    presets = {("generated", False): GENERATED, ("generated", True): GENERATED_QUICK,
               ("gettext", False): GETTEXT, ("gettext", True): GETTEXT_QUICK}
    preset = presets[args.corpus, args.quick]
    return dataclasses.replace(preset, target_lang=args.target, seed=args.seed, epochs=args.epochs or preset.epochs)


def main(argv=None) -> int:
    import logging

    from seq2seq.cli.quiet import import_tensorflow_quietly
    from seq2seq.studies.collapse_study import results_table, run_study
    from seq2seq.errors import UserError

    args = parse_args(argv)
    # The collapse monitor warns at every collapsed epoch; the table's last column sums that up.
    logging.getLogger("seq2seq.callbacks").setLevel(logging.ERROR)
    try:
        import_tensorflow_quietly()
        results = run_study(build_config(args), args.out, setups=args.setups,
                            log=lambda message: print(message, file=sys.stderr))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(results_table(results))
    print(f"\nreports: {args.out}/<setup>/diagnosis.txt; all numbers: {args.out}/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
