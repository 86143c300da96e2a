"""`seq2seq tokenizer train`: train a SentencePiece model with the kit's reserved ids.

Parsing and dispatch only; the work is in `seq2seq.tokenizer`.
"""

import argparse
import time

from seq2seq.cli.io import positive_int

DEFAULT_VOCAB_SIZE = 8000


def register(subparsers) -> None:
    """Adds `tokenizer` and its subcommand `train`."""
    parser = subparsers.add_parser("tokenizer", help="train SentencePiece tokenizers")
    commands = parser.add_subparsers(dest="tokenizer_command", metavar="SUBCOMMAND", required=True)
    train = commands.add_parser(
        "train",
        help="train a SentencePiece model (pad=0, unk=1, start=2, end=3)",
        description="Train a SentencePiece model on text files (one sentence per line; each column of a "
        ".tsv file is a sentence) and write OUT/NAME.model and OUT/NAME.vocab.",
    )
    text = train.add_mutually_exclusive_group(required=True)
    text.add_argument("--input", nargs="+", metavar="FILE", help="training text files")
    text.add_argument("--generated", type=positive_int, metavar="N",
                      help="train on N sentences of seq2seq.data.generated instead of files")
    train.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE, metavar="N",
                       help=f"pieces in the vocabulary, the 4 reserved ones included (default {DEFAULT_VOCAB_SIZE})")
    train.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    train.add_argument("--name", default="spm", help="file stem of the model (default spm)")
    train.add_argument("--model-type", default="unigram", choices=("unigram", "bpe", "char", "word"),
                       help="SentencePiece algorithm (default unigram)")
    train.add_argument("--character-coverage", type=float, default=1.0, metavar="F",
                       help="fraction of characters covered (default 1.0; ~0.9995 for CJK)")
    train.add_argument("--max-sentences", type=positive_int, default=200_000, metavar="N",
                       help="train on a seeded sample of at most N sentences (default 200000)")
    train.add_argument("--seed", type=int, default=0, help="seed of the sample and of --generated (default 0)")
    train.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from seq2seq import tokenizer

    options = dict(
        name=args.name, vocab_size=args.vocab_size, model_type=args.model_type,
        character_coverage=args.character_coverage, max_sentences=args.max_sentences, seed=args.seed,
    )
    start = time.perf_counter()
    if args.generated:
        from seq2seq.data.generated import generate_sentences

        sentences = generate_sentences(args.generated, args.seed)
        path = tokenizer.train_sentencepiece_from_sentences(sentences, args.out, **options)
    else:
        path = tokenizer.train_sentencepiece(args.input, args.out, **options)
    seconds = time.perf_counter() - start
    print(f"wrote {path} and {path.with_suffix('.vocab')} ({args.vocab_size} pieces) in {seconds:.1f} s")
    return 0


