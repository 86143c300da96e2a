"""`seq2seq diagnose`: tells whether a model's outputs show end-token collapse, and why.

    seq2seq diagnose --predictions FILE --references FILE [--format text|ids]
    seq2seq diagnose --model DIR --data FILE [--beam N]
                     [--targets FILE] [--padding-masked | --no-padding-masked]
                     [--json OUT.json] [--plots DIR]

Outputs of any model: prediction and reference files hold one output per line
(an empty line is an empty output). A run directory of the kit (`--model`):
the TSV's sources are translated with the run's model and diagnosed as token
ids against the references' ids (pieces + END), so END at the first step and
outputs that never end are measured, not inferred from text. The targets file
holds one training target per line as space-separated token ids. The text
report goes to stdout.
"""

import argparse
import json
import sys
from pathlib import Path

from seq2seq.cli.io import read_lines
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
    source.add_argument("--predictions", type=Path, metavar="FILE", help="decoded outputs")
    source.add_argument("--references", type=Path, metavar="FILE", help="expected outputs")
    source.add_argument("--model", type=Path, metavar="DIR",
                        help="a run directory (seq2seq train or a recipe): decode --data with its model")
    source.add_argument("--data", type=Path, metavar="FILE", help="with --model: TSV, source TAB reference")
    source.add_argument("--beam", type=int, default=None, metavar="N",
                        help="with --model: beam size (1 = greedy; default: the run's)")
    source.add_argument(
        "--format",
        choices=("text", "ids"),
        default="text",
        help="lines are text (whitespace words) or space-separated token ids (default: text; "
        "ignored with --model, which always diagnoses token ids)",
    )
    training = parser.add_argument_group("training (optional: finds the cause)")
    training.add_argument(
        "--targets", type=Path, metavar="FILE", help="training targets as space-separated ids"
    )
    training.add_argument(
        "--padding-masked",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether training masked the padding (default: unknown; with --model: yes, as the "
        "kit always trains)",
    )
    ids = parser.add_argument_group("special ids (default: the kit's)")
    ids.add_argument("--start-id", type=int, default=START_ID)
    ids.add_argument("--end-id", type=int, default=END_ID)
    ids.add_argument("--pad-id", type=int, default=PAD_ID)
    output = parser.add_argument_group("reports")
    output.add_argument(
        "--json", type=Path, metavar="OUT.json", help="also write the report as JSON"
    )
    output.add_argument("--plots", type=Path, metavar="DIR", help="also write PNG charts into DIR")
    parser.set_defaults(handler=run, without_tensorflow=True)  # only --model decodes (it starts TF itself)


def run(args: argparse.Namespace) -> int:
    from seq2seq.diagnostics import diagnose, save_plots

    predictions, references = load_outputs(args)
    targets = read_id_lines(args.targets) if args.targets is not None else None
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
    print(diagnosis.to_text(), end="")
    if args.json is not None:
        _write_json(diagnosis.to_dict(), args.json)
        print(f"wrote {args.json}")
    if args.plots is not None:
        for path in save_plots(diagnosis, args.plots):
            print(f"wrote {path}")
    return 0


def load_outputs(args: argparse.Namespace) -> tuple[list, list]:
    """The predictions and references to diagnose, from whichever source was given."""
    if args.model is not None or args.data is not None:
        if args.predictions is not None or args.references is not None:
            raise UserError("give either --model DIR --data FILE or --predictions FILE "
                            "--references FILE, not both")
        return decode_data(args.model, args.data, args.beam)
    if args.predictions is None or args.references is None:
        raise UserError("diagnose needs --predictions FILE and --references FILE "
                        "(or --model DIR --data FILE)")
    read = read_id_lines if args.format == "ids" else read_lines
    predictions, references = read(args.predictions), read(args.references)
    if len(predictions) != len(references):
        raise UserError(
            f"{args.predictions} has {len(predictions)} lines but {args.references} has "
            f"{len(references)}: expected one reference per prediction, in the same order"
        )
    if not predictions:
        raise UserError(f"{args.predictions} is empty: expected one output per line")
    return predictions, references


def decode_data(model: Path | None, data: Path | None, beam: int | None) -> tuple[list, list]:
    """Token ids of the run's translations of the TSV's sources, and of its references."""
    if model is None or data is None:
        raise UserError("--model DIR and --data FILE go together: give both")
    if beam is not None and beam < 1:
        raise UserError(f"--beam must be 1 (greedy) or more. Received: --beam {beam}")
    from seq2seq.cli.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from seq2seq.collapse import decode_run
    from seq2seq.data.reader import read_parallel_tsv
    from seq2seq.translation import load_run

    run = load_run(model)
    pairs, report = read_parallel_tsv(data)
    if report.total_skipped:
        print(f"skipped {report.total_skipped} bad lines of {data}", file=sys.stderr)
    return decode_run(run, pairs, beam_size=beam)


def read_id_lines(path: Path) -> list[list[int]]:
    """One list of token ids per line (space-separated integers)."""
    rows = []
    for number, line in enumerate(read_lines(path), start=1):
        try:
            rows.append([int(token) for token in line.split()])
        except ValueError:
            raise UserError(
                f"{path}, line {number}: expected space-separated token ids. "
                f"Received: {line[:60]!r}"
            ) from None
    return rows


def _write_json(report: dict, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot write {path}: {error}") from error
