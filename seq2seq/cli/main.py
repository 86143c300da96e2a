"""Entry point of the `seq2seq` command: builds the parser and dispatches.

Each subcommand lives in its own module with a `register(subparsers)`
function that adds its parser and sets `handler=` to a function taking the
parsed arguments and returning an exit code. Heavy imports (TensorFlow) happen
inside the handlers, so `seq2seq --help` answers at once; before a handler
runs, TensorFlow is started with its start-up noise hidden, unless the
subcommand set `without_tensorflow=True`; tensorflow-text with it only if the
subcommand set `with_tensorflow_text=True` (the exports: the tokenizer runs the
`sentencepiece` library everywhere else, see `seq2seq.tokenizer`).
"""

import argparse
import importlib
import os
import sys

from seq2seq import __version__
from seq2seq.cli.quiet import import_tensorflow_quietly
from seq2seq.errors import UserError
from seq2seq.memory import limit_malloc_arenas

COMMAND_MODULES = (
    "seq2seq.cli.data",
    "seq2seq.cli.diagnose",
    "seq2seq.cli.tokenizer",
    "seq2seq.cli.translator",
    "seq2seq.cli.classifier",
    "seq2seq.cli.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seq2seq",
        description="Train, decode, evaluate, export and diagnose seq2seq models.",
    )
    parser.add_argument("--version", action="version", version=f"seq2seq-kit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Keep TensorFlow's start-up noise off the user's screen.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    limit_malloc_arenas()  # before TensorFlow's threads: keeps long runs' memory flat
    args = build_parser().parse_args(argv)
    try:
        if not getattr(args, "without_tensorflow", False):
            import_tensorflow_quietly(text=getattr(args, "with_tensorflow_text", False))
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
