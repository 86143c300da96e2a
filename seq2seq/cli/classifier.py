"""`seq2seq classifier train | evaluate | predict`: attention classifier runs from the command line."""

import json
import sys

from seq2seq.cli.io import DEFAULT_MAX_LINE_CHARS, log, read_input_lines


def register(subparsers) -> None:
    parser = subparsers.add_parser("classifier", help="train, evaluate and run an attention text classifier")
    commands = parser.add_subparsers(dest="classifier_command", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train", help="train on label TAB text [TAB mask] lines (resumes if interrupted)",
        description="Train a (Bi)LSTM attention classifier. A line is `label TAB text [TAB mask]`, the mask "
                    "one 0/1 per whitespace word (0 = a word the model should not rely on). With masks and "
                    "no --saliency-weight, the default weight of seq2seq.classification applies.")
    train.add_argument("--data", required=True, help="training TSV: label TAB text [TAB mask]")
    train.add_argument("--valid", required=True, help="validation TSV, same format (early stopping)")
    train.add_argument("--out", required=True, help="run directory (created; an existing run resumes)")
    train.add_argument("--saliency-weight", type=float, default=None,
                       help="lambda of the saliency penalty (default: the documented default when the "
                            "data has masks, else 0)")
    train.add_argument("--saliency-target", choices=("log_max_prob", "sum_log_prob"), default=None,
                       help="what the saliency differentiates (default: the run config's)")
    train.add_argument("--tokenizer", help="existing SentencePiece .model (default: train one on --data)")
    train.add_argument("--vocab-size", type=int, help="pieces of the trained tokenizer (an upper bound)")
    for flag, kind in (("--epochs", int), ("--units", int), ("--embed-dim", int), ("--layers", int),
                       ("--dropout", float), ("--learning-rate", float), ("--patience", int), ("--seed", int),
                       ("--max-len", int)):
        train.add_argument(flag, type=kind, help=f"see seq2seq.classification ({kind.__name__})")
    train.add_argument("--unidirectional", action="store_true", help="forward LSTM instead of a BiLSTM")
    train.add_argument("--strict", action="store_true", help="stop at the first bad line instead of skipping it")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser("evaluate", help="accuracy on a labeled TSV, as JSON")
    _add_model_argument(evaluate)
    evaluate.add_argument("--data", required=True, help="TSV file: label TAB text [TAB mask]")
    evaluate.set_defaults(handler=run_evaluate)

    predict = commands.add_parser(
        "predict", help="label, probabilities and per-word attention, one JSON line per input line")
    _add_model_argument(predict)
    predict.add_argument("--input", metavar="FILE", help="text file, one text per line (default: standard input)")
    predict.add_argument("--strict", action="store_true",
                         help="stop with an error (exit 2) at the first line that is not UTF-8, holds a NUL "
                              f"byte or has over {DEFAULT_MAX_LINE_CHARS} characters (default: off; each such "
                              'line, and each blank line, gets {"error": ...} as its JSON line and a warning '
                              "on stderr)")
    predict.set_defaults(handler=run_predict)


def _add_model_argument(parser) -> None:
    parser.add_argument("--model", required=True, help="run directory written by `seq2seq classifier train`")


def run_train(args) -> int:
    from seq2seq import classification

    train_examples = _read_labeled(args.data, args.strict)
    valid_examples = _read_labeled(args.valid, args.strict)
    weight = classification.resolve_saliency_weight(args.saliency_weight, train_examples)
    if args.saliency_weight is None and weight > 0:
        log(f"the training data has masks: saliency weight {weight:g} (the default; --saliency-weight to change)")
    config = classification.with_overrides(
        classification.ClassifierRunConfig(),
        tokenizer=_given(model=args.tokenizer, vocab_size=args.vocab_size),
        batching=_given(max_source_len=args.max_len),
        model=_given(saliency_weight=weight, saliency_target=args.saliency_target, units=args.units,
                     embed_dim=args.embed_dim, encoder_layers=args.layers, dropout=args.dropout,
                     bidirectional=False if args.unidirectional else None),
        train=_given(epochs=args.epochs, learning_rate=args.learning_rate, patience=args.patience, seed=args.seed),
    )
    metrics = classification.train_run(config, train_examples, valid_examples, args.out,
                                       progress=not args.no_progress, log=log)
    print(json.dumps(metrics["valid"]))
    log(f"run written to {args.out} (predict with: seq2seq classifier predict --model {args.out})")
    return 0


def run_evaluate(args) -> int:
    from seq2seq.classification import evaluate_examples, load_run

    run = load_run(args.model)
    examples = _read_labeled(args.data, strict=False)
    print(json.dumps(evaluate_examples(run, examples, what=args.data)))
    return 0


def run_predict(args) -> int:
    from seq2seq.classification import load_run, predictions

    run = load_run(args.model)
    lines = read_input_lines(args.input, strict=args.strict)
    for index in lines.readable():
        if not lines.texts[index].strip():
            lines.problems[index] = "blank line, nothing to classify"
    lines.warn("wrote its error as the JSON line")
    rows = {index: {"error": f"line {index + 1}: {problem}"} for index, problem in lines.problems.items()}
    readable = lines.readable()
    if readable:
        rows.update(zip(readable, predictions(run, [lines.texts[i] for i in readable])))
    sys.stdout.write("".join(json.dumps(rows[i], ensure_ascii=False) + "\n" for i in range(len(lines.texts))))
    return 0


def _given(**values) -> dict:
    """The options the user set (None = keep the config default)."""
    return {key: value for key, value in values.items() if value is not None}


def _read_labeled(path, strict: bool):
    from seq2seq.data.reader import read_labeled_tsv

    examples, report = read_labeled_tsv(path, strict=strict)
    if report.total_skipped:
        reasons = ", ".join(f"{reason}: {count} (first at {report.skipped_at[reason][0]})"
                            for reason, count in report.skipped.most_common())
        log(f"skipped {report.total_skipped} bad lines of {path}: {reasons}")
    return examples
