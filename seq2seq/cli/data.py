"""`seq2seq data ...`: check a corpus, build one from gettext catalogs, generate a toy task.

Parsing and dispatch only; the work is in `seq2seq.data`. Nothing here
imports TensorFlow, so these commands answer in about a second.
"""

import argparse
from pathlib import Path

from seq2seq.errors import UserError

_SPLIT_NAMES = ("train", "valid", "test")


def register(subparsers) -> None:
    """Adds `data` and its subcommands `check`, `gettext` and `generate`."""
    parser = subparsers.add_parser("data", help="check, build and generate corpora")
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    _register_check(commands)
    _register_gettext(commands)
    _register_generate(commands)


def _register_check(commands) -> None:
    from seq2seq.data.reader import DEFAULT_MAX_LINE_CHARS, FORMATS

    parser = commands.add_parser(
        "check",
        help="validate and summarise a corpus",
        description="Validate a corpus and print the pairs accepted, skipped lines by reason (with their "
        "first file:line), length percentiles and the padding fraction of the kit's batching.",
    )
    parser.add_argument("path", metavar="PATH", help="the corpus file (the source file for --format aligned)")
    parser.add_argument("--target-file", metavar="FILE", help="target file of line-aligned files (implies --format aligned)")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="tsv: source TAB target (default); aligned: PATH and --target-file; "
                        "labeled: label TAB text [TAB mask]")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad line (exit code 2)")
    parser.add_argument("--truncate", action="store_true", help="cut over-long fields instead of skipping the line")
    parser.add_argument("--max-line-chars", type=int, default=DEFAULT_MAX_LINE_CHARS, metavar="N",
                        help=f"longest accepted field in characters (default {DEFAULT_MAX_LINE_CHARS})")
    parser.add_argument("--tokenizer", metavar="MODEL", help="a SentencePiece .model: count lengths in pieces")
    parser.set_defaults(handler=run_check, without_tensorflow=True)


def _register_gettext(commands) -> None:
    from seq2seq.data.gettext import DEFAULT_LOCALE_DIR

    parser = commands.add_parser(
        "gettext",
        help="build a parallel corpus from the machine's gettext catalogs",
        description="Pair English msgids with their translations from <locale-dir>/<target>/LC_MESSAGES/*.mo "
        "and write the deterministic split as OUT/train.tsv, OUT/valid.tsv and OUT/test.tsv.",
    )
    parser.add_argument("--target", required=True, metavar="LANG", help="target language: fr, de, es, pt_BR, ...")
    parser.add_argument("--source", default="en", metavar="LANG",
                        help="source language (default en; another language pivots through the English msgids)")
    parser.add_argument("--locale-dir", default=DEFAULT_LOCALE_DIR, metavar="DIR",
                        help=f"directory of <lang>/LC_MESSAGES/*.mo (default {DEFAULT_LOCALE_DIR})")
    _add_split_arguments(parser)
    parser.set_defaults(handler=run_gettext, without_tensorflow=True)


def _register_generate(commands) -> None:
    from seq2seq.data.generated import TASKS

    tasks = sorted(TASKS) + ["labeled", "sentences"]
    parser = commands.add_parser(
        "generate",
        help="write a small generated task (for demos, tests and tokenizer training)",
        description="Write a generated task, deterministic from the seed: a pair task as source TAB target "
        "lines, 'labeled' as label TAB text TAB mask lines, 'sentences' as plain text lines.",
    )
    parser.add_argument("--task", required=True, choices=tasks)
    parser.add_argument("--n", type=int, default=1000, help="number of examples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    parser.set_defaults(handler=run_generate, without_tensorflow=True)


def _add_split_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument("--valid-fraction", type=float, default=0.05, help="share for validation (default 0.05)")
    parser.add_argument("--test-fraction", type=float, default=0.05, help="share for testing (default 0.05)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for train.tsv, valid.tsv, test.tsv")


def run_check(args: argparse.Namespace) -> int:
    """Prints the corpus summary; a refused corpus raises UserError (exit code 2)."""
    from seq2seq.data.check import check_corpus

    fmt = args.format or ("aligned" if args.target_file else "tsv")
    result = check_corpus(
        args.path, fmt=fmt, target_path=args.target_file, strict=args.strict, truncate=args.truncate,
        max_line_chars=args.max_line_chars, tokenizer=args.tokenizer,
    )
    print("\n".join(result.summary_lines()))
    return 0


def run_gettext(args: argparse.Namespace) -> int:
    """Reads the catalogs, splits them and writes the three TSV files."""
    from seq2seq.data.gettext import read_gettext
    from seq2seq.data.reader import write_parallel_tsv

    out = _output_directory(args.out)
    pairs, report = read_gettext(args.target, locale_dir=args.locale_dir, source_lang=args.source)
    split = _split(pairs, args)
    print("\n".join(report.summary_lines()))
    for name in _SPLIT_NAMES:
        part, path = getattr(split, name), out / f"{name}.tsv"
        _write(path, lambda: write_parallel_tsv(path, part))
        print(f"{name}: {len(part)} pairs -> {path}")
    return 0


def _write(path: Path, write) -> None:
    """Runs `write`, turning a file system error into a UserError naming `path`."""
    try:
        write()
    except OSError as error:
        raise UserError(f"Cannot write {path}: {error.strerror or error}. Check the --out path.") from None


def _split(items, args):
    from seq2seq.data.split import split_pairs

    try:
        return split_pairs(items, seed=args.seed, valid_fraction=args.valid_fraction, test_fraction=args.test_fraction)
    except ValueError as error:
        raise UserError(f"{error} (--valid-fraction, --test-fraction)") from None


def _output_directory(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"Expected --out to be a directory. Received: {out}, which is a file.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"Cannot create the output directory {out}: {error.strerror or error}.") from None
    return out


def run_generate(args: argparse.Namespace) -> int:
    """Writes the generated examples, one per line."""
    from seq2seq.data import generated

    try:
        if args.task == "sentences":
            lines = generated.generate_sentences(args.n, args.seed)
        elif args.task == "labeled":
            examples = generated.generate_labeled(args.n, args.seed)
            lines = [f"{x.label}\t{x.text}\t{' '.join(map(str, x.mask))}" for x in examples]
        else:
            lines = [f"{pair.source}\t{pair.target}" for pair in generated.generate_pairs(args.task, args.n, args.seed)]
    except ValueError as error:
        raise UserError(f"{error} (--n)") from None
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"Expected --out to be a file path. Received: {out}, which is a directory.")
    text = "".join(line + "\n" for line in lines)
    _write(out, lambda: (out.parent.mkdir(parents=True, exist_ok=True), out.write_text(text, encoding="utf-8")))
    print(f"{len(lines)} {args.task} examples (seed {args.seed}) -> {out}")
    return 0
