"""English→French (or any locale) translator from this machine's gettext catalogs, end to end.

    python recipes/translate_gettext.py --out runs/en-fr            # about 7 minutes on 2 CPU cores
    python recipes/translate_gettext.py --quick --out runs/en-fr    # about 2 minutes
    python recipes/translate_gettext.py --target de --out runs/en-de

Trains a SentencePiece tokenizer and a Translator on the English→<target>
message pairs of /usr/share/locale/<target>/LC_MESSAGES/*.mo, reports BLEU /
chrF / exact match on the held-out test split (and again with the last two
checkpoints averaged, in --out/averaged), prints sample translations,
draws an attention heatmap and exports a strings-in, strings-out SavedModel.
Everything lands in --out, which `seq2seq translate --model DIR`,
`seq2seq evaluate --model DIR` and `seq2seq diagnose --model DIR` accept as is.
An interrupted run resumes when started again with the same arguments.
"""

import argparse
import dataclasses
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from seq2seq.runs import config_io  # noqa: E402
from seq2seq.runs.config import (  # noqa: E402
    BatchingConfig, DataConfig, DecodeConfig, ModelConfig, RunConfig, TokenizerConfig, TrainingConfig,
)

SAMPLES = ["Open file", "Save as", "Print the document", "Close the window", "Search for files"]

# The full run: `seq2seq train`'s own defaults (settings chosen from the
# corpus: vocabulary, length cuts, epochs; see docs/translation-defaults.md),
# seeded and deterministic, so it gives the same model and numbers every time
# on the same machine (more time under load, never other results).
FULL = RunConfig(train=TrainingConfig(deterministic=True))
# --quick: about 2 minutes in all on a 2-core CPU (~1.5 of them training).
# Only ~1,000 optimizer steps fit, so everything is bent towards short UI
# strings: a small vocabulary (common words are single pieces), sequences cut
# to 12/16 pieces (long messages train as roughly aligned prefixes and cost
# little), small batches for many updates, a small fast LSTM, a high learning
# rate without dropout, and greedy decoding of the test split.
QUICK = RunConfig(
    data=DataConfig(max_train_pairs=16000),
    tokenizer=TokenizerConfig(vocab_size=1000),
    batching=BatchingConfig(max_source_len=12, max_target_len=16, tokens_per_batch=1024,
                            bucket_lengths=(6, 8, 12, 16)),
    model=ModelConfig(embed_dim=128, units=128, dropout=0.0),
    train=TrainingConfig(epochs=100, learning_rate=1e-2, clipnorm=1.0, max_minutes=1.5, patience=100),
    decode=DecodeConfig(beam_size=1),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="fr", help="target locale, as in /usr/share/locale/<target>")
    parser.add_argument("--locale-dir", default="/usr/share/locale", help="root of the gettext catalogs")
    parser.add_argument("--out", default=None, help="run directory (default: runs/en-<target>[-quick])")
    parser.add_argument("--quick", action="store_true", help="a 2-minute run with a smaller model")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override any config value, e.g. --set train.max_minutes=30")
    return parser.parse_args(argv)


def build_config(args) -> RunConfig:
    preset = QUICK if args.quick else FULL
    data = dataclasses.replace(preset.data, corpus="gettext", target_lang=args.target, locale_dir=args.locale_dir)
    table = config_io.to_dict(dataclasses.replace(preset, data=data))
    return config_io.build(RunConfig, table, config_io.parse_overrides(args.overrides))


def main(argv=None) -> int:
    from seq2seq.cli.quiet import import_tensorflow_quietly
    from seq2seq.errors import UserError
    from seq2seq.memory import limit_malloc_arenas

    args = parse_args(argv)
    out = args.out or f"runs/en-{args.target}{'-quick' if args.quick else ''}"
    limit_malloc_arenas()  # before TensorFlow's threads, as the `seq2seq` command does
    try:
        import_tensorflow_quietly(text=True)  # the export tokenizes in graph; imported here, its start-up lines stay hidden
        return run(build_config(args), out)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(config: RunConfig, out: str) -> int:
    from pathlib import Path

    from seq2seq.attention_plot import save_attention_heatmaps
    from seq2seq.runs.averaging import averaged_scores
    from seq2seq.runs.translation import attention_alignments, export_run, load_run, train_run, translate_texts

    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    metrics = train_run(config, out, log=log, decode_cache=True)  # the first translate of the run starts fast
    run = load_run(out)
    print(f"\ntest split: {json.dumps(metrics['test'])}")
    averaged = averaged_scores(out, Path(out) / "averaged", last=2, log=log)
    if averaged:
        print(f"test split, the last 2 checkpoints averaged: {json.dumps(averaged['test'])}")
    print("\nsample translations:")
    for source, translation in zip(SAMPLES, translate_texts(run, SAMPLES)):
        print(f"  {source!r:28} -> {translation!r}")
    # The same texts in the same batches as the translations printed above, so the picture shows them.
    heatmap = save_attention_heatmaps(attention_alignments(run, SAMPLES), Path(out) / "attention.png")
    exported = Path(out) / "exported"
    if not exported.exists():
        export_run(run, exported)
    print(f"\nattention heatmap: {heatmap}\nexported translator: {exported}\n"
          f"translate more with: seq2seq translate --model {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
