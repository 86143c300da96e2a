"""`seq2seq diagnose`: tells whether a model's outputs show end-token collapse, and why.

    seq2seq diagnose --predictions FILE --references FILE [--format text|ids]
    seq2seq diagnose --model DIR --data FILE [--beam N]
                     [--targets FILE] [--padding-masked | --no-padding-masked]
                     [--json OUT.json | --json -] [--plots DIR] [--strict]

Outputs of any model: prediction and reference files hold one output per line
(an empty line is an empty output). A run directory of the kit (`--model`):
the TSV's sources are translated with the run's model and diagnosed as token
ids against the references' ids (pieces + END), so END at the first step and
outputs that never end are measured, not inferred from text. The targets file
holds one training target per line as space-separated token ids. The text
report goes to stdout (to stderr with `--json -`, which puts the JSON there).

A line that cannot be read (not UTF-8, a NUL byte, over 1000 characters) is left out with
a warning naming it, together with the line of the same number in the other
file, so predictions and references stay aligned; `--strict` stops there.
"""

import argparse
import json
import sys
from pathlib import Path

from seq2seq.cli.io import DEFAULT_MAX_LINE_CHARS, read_input_lines, read_pair_lines
from seq2seq.errors import UserError
from seq2seq.tokens import END_ID, PAD_ID, START_ID


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "diagnose",
        help="diagnose end-token collapse (empty outputs, END first) and say which fix applies",
        description=(
            "Measure decoded outputs against references (empty outputs, END at the first step, "
            "length ratio, repetition), check the training targets if given (end-token share, "
            "end-padding, recommended end-token weight), and print a verdict with the fixes "
            "that apply. Files hold one output (or target) per line."
        ),
    )
    source = parser.add_argument_group("outputs to diagnose")
    source.add_argument("--predictions", type=Path, metavar="FILE",
                        help="decoded outputs, one per line (with --references; default: none)")
    source.add_argument("--references", type=Path, metavar="FILE",
                        help="expected outputs, line N for line N of --predictions (default: none)")
    source.add_argument("--model", type=Path, metavar="DIR",
                        help="a run directory (seq2seq train or a recipe): decode --data with its model "
                             "(default: none)")
    source.add_argument("--data", type=Path, metavar="FILE",
                        help="with --model: TSV, one 'source TAB reference' per line (default: none)")
    source.add_argument("--beam", type=int, default=None, metavar="N",
                        help="with --model: beam size, 1 = greedy (default: the run's decode.beam_size)")
    source.add_argument(
        "--format",
        choices=("text", "ids"),
        default="text",
        help="lines are text (whitespace words) or space-separated token ids (default: text; "
        "ignored with --model, which always diagnoses token ids)",
    )
    source.add_argument(
        "--strict", action="store_true",
        help="stop with an error (exit 2) at the first line that is not UTF-8, holds a NUL byte or has "
        f"over {DEFAULT_MAX_LINE_CHARS} characters (default: off; each such line gets a warning on stderr "
        "and is left out of the diagnosis, with the line of the same number in the other file)",
    )
    training = parser.add_argument_group("training (optional: finds the cause)")
    training.add_argument(
        "--targets", type=Path, metavar="FILE",
        help="training targets as space-separated ids, one per line (default: none, the cause stays unknown)",
    )
    training.add_argument(
        "--padding-masked",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether training masked the padding (default: unknown; with --model: yes, as the "
        "kit always trains)",
    )
    ids = parser.add_argument_group("special ids")
    ids.add_argument("--start-id", type=int, default=START_ID, metavar="ID",
                     help=f"id of the start token (default: {START_ID}, the kit's)")
    ids.add_argument("--end-id", type=int, default=END_ID, metavar="ID",
                     help=f"id of the end token (default: {END_ID}, the kit's)")
    ids.add_argument("--pad-id", type=int, default=PAD_ID, metavar="ID",
                     help=f"id of the padding (default: {PAD_ID}, the kit's)")
    output = parser.add_argument_group("reports (the text report goes to stdout)")
    output.add_argument(
        "--json", type=Path, metavar="OUT.json",
        help="also write the report as JSON to this file; '-' writes it to stdout and moves the text "
        "report to stderr (default: no JSON)",
    )
    output.add_argument("--plots", type=Path, metavar="DIR",
                        help="also write PNG charts into DIR (default: no charts)")
    parser.set_defaults(handler=run, without_tensorflow=True)  # only --model decodes (it starts TF itself)


def run(args: argparse.Namespace) -> int:
    from seq2seq.diagnostics import diagnose, save_plots

    predictions, references = load_outputs(args)
    targets = read_id_lines(args.targets, args.strict) if args.targets is not None else None
    padding_masked = args.padding_masked
    if padding_masked is None and args.model is not None:
        padding_masked = True  # the kit pads with 0 and masks it
    try:
        diagnosis = diagnose(
            predictions,
            references,
            targets,
            padding_masked=padding_masked,
            start_id=args.start_id,
            end_id=args.end_id,
            pad_id=args.pad_id,
        )
    except ValueError as error:
        raise UserError(str(error)) from error
    json_to_stdout = args.json is not None and str(args.json) == "-"
    report = sys.stderr if json_to_stdout else sys.stdout  # stdout carries only the JSON then
    print(diagnosis.to_text(), end="", file=report)
    if json_to_stdout:
        print(json.dumps(diagnosis.to_dict(), indent=2, ensure_ascii=False))
    elif args.json is not None:
        _write_json(diagnosis.to_dict(), args.json)
        print(f"wrote {args.json}")
    if args.plots is not None:
        for path in save_plots(diagnosis, args.plots):
            print(f"wrote {path}", file=report)
    return 0


def load_outputs(args: argparse.Namespace) -> tuple[list, list]:
    """The predictions and references to diagnose, from whichever source was given."""
    if args.model is not None or args.data is not None:
        if args.predictions is not None or args.references is not None:
            raise UserError("give either --model DIR --data FILE or --predictions FILE "
                            "--references FILE, not both")
        return decode_data(args.model, args.data, args.beam, args.strict)
    if args.predictions is None or args.references is None:
        raise UserError("diagnose needs --predictions FILE and --references FILE "
                        "(or --model DIR --data FILE)")
    predictions = read_input_lines(args.predictions, strict=args.strict)
    references = read_input_lines(args.references, strict=args.strict)
    if len(predictions.texts) != len(references.texts):
        raise UserError(
            f"{args.predictions} has {len(predictions.texts)} lines but {args.references} has "
            f"{len(references.texts)}: expected one reference per prediction, in the same order"
        )
    if not predictions.texts:
        raise UserError(f"{args.predictions} is empty: expected one output per line")
    for lines in (predictions, references):
        lines.warn("left out of the diagnosis with the other file's line", with_name=True)
    kept = sorted(set(predictions.readable()) & set(references.readable()))
    if not kept:
        raise UserError(f"no line of {args.predictions} and {args.references} could be read")
    if args.format == "ids":
        return ([_parse_ids(predictions.texts[i], args.predictions, i + 1) for i in kept],
                [_parse_ids(references.texts[i], args.references, i + 1) for i in kept])
    return [predictions.texts[i] for i in kept], [references.texts[i] for i in kept]


def decode_data(model: Path | None, data: Path | None, beam: int | None,
                strict: bool = False) -> tuple[list, list]:
    """Token ids of the run's translations of the TSV's sources, and of its references."""
    if model is None or data is None:
        raise UserError("--model DIR and --data FILE go together: give both")
    if beam is not None and beam < 1:
        raise UserError(f"--beam must be 1 (greedy) or more. Received: --beam {beam}")
    from seq2seq.cli.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from seq2seq.diagnostics.translator import decode_run
    from seq2seq.runs.translation import load_run

    run = load_run(model)
    lines, pairs = read_pair_lines(data, strict=strict)
    lines.warn("left out of the diagnosis", with_name=True)
    if not pairs:
        raise UserError(f"no 'source TAB reference' line to diagnose in {data}")
    return decode_run(run, pairs, beam_size=beam)


def read_id_lines(path: Path, strict: bool = False) -> list[list[int]]:
    """One list of token ids per readable line (space-separated integers); unreadable lines are left out."""
    lines = read_input_lines(path, strict=strict)
    lines.warn("left out", with_name=True)
    return [_parse_ids(lines.texts[i], path, i + 1) for i in lines.readable()]


def _parse_ids(line: str, path, number: int) -> list[int]:
    try:
        return [int(token) for token in line.split()]
    except ValueError:
        raise UserError(
            f"{path}, line {number}: expected space-separated token ids. Received: {line[:60]!r}"
        ) from None


def _write_json(report: dict, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot write {path}: {error}") from error
