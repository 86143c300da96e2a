"""`seq2seq classifier train | evaluate | predict | export`: attention classifier runs from the command line.

`classifier train` reads its run configuration as `seq2seq train` does: the
`ClassifierRunConfig` defaults, then `--config FILE.toml`, then each
`--set section.key=value`, then the shorthand flags (`--units 32` is
`--set model.units=32`). A shorthand and a `--set` of the same key is an error
naming both, so a command line never says two things about one value.
"""

import json
import shlex
import sys

from seq2seq.cli.io import DEFAULT_MAX_LINE_CHARS, log, read_input_lines
from seq2seq.errors import UserError

# The shorthand flags of `classifier train`: flag, config key, type, metavar, what it does.
SHORTHANDS = (
    ("--epochs", "train.epochs", int, "N", "train at most N passes over --data; early stopping may stop sooner"),
    ("--learning-rate", "train.learning_rate", float, "RATE", "Adam's learning rate"),
    ("--patience", "train.patience", int, "N", "stop after N epochs without a better validation loss"),
    ("--seed", "train.seed", int, "N", "seed of the weight initialisation and the batch shuffling"),
    ("--units", "model.units", int, "N", "LSTM units per direction"),
    ("--embed-dim", "model.embed_dim", int, "N", "width of the token embeddings"),
    ("--layers", "model.encoder_layers", int, "N", "stacked LSTM layers"),
    ("--dropout", "model.dropout", float, "RATE",
     "dropout rate on the embeddings, between stacked LSTMs and on the pooled vector, in [0, 1)"),
    ("--max-len", "batching.max_source_len", int, "N",
     "longest text in pieces, END included (>= 2); longer texts are cut to N - 1 pieces + END"),
    ("--saliency-weight", "model.saliency_weight", float, "LAMBDA",
     "lambda of the saliency penalty on words with mask 0; 0 turns it off"),
    ("--tokenizer", "tokenizer.model", str, "FILE",
     "an existing SentencePiece .model instead of training one on --data"),
    ("--vocab-size", "tokenizer.vocab_size", int, "N",
     "pieces of the tokenizer trained on --data, an upper bound (small data gives fewer; unused with --tokenizer)"),
)
SALIENCY_TARGETS = ("log_max_prob", "sum_log_prob")


def register(subparsers) -> None:
    parser = subparsers.add_parser("classifier", help="train, evaluate, run and export an attention text classifier")
    commands = parser.add_subparsers(dest="classifier_command", metavar="COMMAND", required=True)
    _register_train(commands)

    evaluate = commands.add_parser("evaluate", help="accuracy on a labeled TSV, as JSON")
    _add_model_argument(evaluate)
    evaluate.add_argument("--data", required=True, metavar="FILE",
                          help="TSV file: label TAB text [TAB mask], the mask ignored (required)")
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

    export = commands.add_parser(
        "export", help="write a strings-in SavedModel: label, probabilities, attention and pieces",
        description="Write a SavedModel that serves without the kit (tensorflow and tensorflow-text only): "
                    "its serving_default takes texts [batch] strings and returns label [batch], "
                    "probabilities [batch, classes], attention and pieces [batch, time]. Texts are cut "
                    "to the run's batching.max_source_len, as in training and predict.")
    _add_model_argument(export)
    export.add_argument("--out", required=True, metavar="DIR",
                        help="directory of the SavedModel (required; must not exist, or be empty)")
    export.set_defaults(handler=run_export, with_tensorflow_text=True)  # the SavedModel tokenizes in graph


def _register_train(commands) -> None:
    from seq2seq.runs.classification import DEFAULT_SALIENCY_WEIGHT, ClassifierRunConfig

    defaults = ClassifierRunConfig()
    train = commands.add_parser(
        "train", help="train on label TAB text [TAB mask] lines (resumes if interrupted)",
        description="Train a (Bi)LSTM attention classifier. A line is `label TAB text [TAB mask]`, the mask "
                    "one 0/1 per whitespace word (0 = a word the model should not rely on). The run "
                    "configuration is the defaults, then --config, then --set, then the shorthand flags.")
    train.add_argument("--data", required=True, metavar="FILE",
                       help="training TSV: label TAB text [TAB mask] (required)")
    train.add_argument("--valid", required=True, metavar="FILE",
                       help="validation TSV, same format: early stopping and the reported accuracy (required)")
    train.add_argument("--out", required=True, metavar="DIR",
                       help="run directory (required; created, and an existing run resumes)")
    train.add_argument("--config", metavar="FILE",
                       help="TOML run configuration with [tokenizer], [batching], [model], [train] tables "
                            "(default: none, every key takes its default)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override one config value, e.g. --set model.units=32 (repeatable; wins over "
                            "--config; default: none)")
    shorthands = train.add_argument_group("shorthands (each is one --set; default: --config's value, else the "
                                          "one shown)")
    for flag, key, kind, metavar, what in SHORTHANDS:
        section, name = key.split(".")
        default = getattr(getattr(defaults, section), name)
        if key == "model.saliency_weight":
            default = f"{DEFAULT_SALIENCY_WEIGHT:g} when the training data has masks, else 0"
        elif key == "tokenizer.model":
            default = "none, train one"
        shorthands.add_argument(flag, type=kind, metavar=metavar,
                                help=f"{what} (= --set {key}={metavar}; default: {default})")
    shorthands.add_argument("--saliency-target", choices=SALIENCY_TARGETS,
                            help="what the saliency differentiates: the log-probability of the predicted "
                                 "class, or the sum over classes (= --set model.saliency_target=...; "
                                 f"default: {defaults.model.saliency_target})")
    shorthands.add_argument("--unidirectional", action="store_true",
                            help="a forward LSTM instead of a BiLSTM (= --set model.bidirectional=false; "
                                 f"default: {'bi' if defaults.model.bidirectional else 'uni'}directional)")
    train.add_argument("--strict", action="store_true",
                       help="stop at the first bad line of --data or --valid (default: skip it with a warning)")
    train.add_argument("--no-progress", action="store_true",
                       help="no progress bars (default: progress bars on stderr)")
    # TensorFlow starts after the config and the data are read, so a bad --set fails at once.
    train.set_defaults(handler=run_train, without_tensorflow=True)


def _add_model_argument(parser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="run directory written by `seq2seq classifier train` (required)")


def run_train(args) -> int:
    from seq2seq.runs import classification
    from seq2seq.cli.quiet import import_tensorflow_quietly

    train_examples = _read_labeled(args.data, args.strict)
    valid_examples = _read_labeled(args.valid, args.strict)
    config = train_config(args, train_examples)
    import_tensorflow_quietly()
    try:
        metrics = classification.train_run(config, train_examples, valid_examples, args.out,
                                           progress=not args.no_progress, log=log)
    except KeyboardInterrupt as interrupt:
        log(f"\n{interrupt or 'interrupted'}")
        log(f"resume with: {_train_command(args)}")
        return 130
    print(json.dumps(metrics["valid"]))
    log(f"run written to {args.out} (predict with: seq2seq classifier predict --model {args.out})")
    return 0


def train_config(args, train_examples):
    """The `ClassifierRunConfig` of `classifier train ARGS`: defaults < --config < --set < shorthands.

    Without a saliency weight anywhere, the weight comes from the data
    (`resolve_saliency_weight`: the default weight when `train_examples` carry masks, else 0).
    """
    from seq2seq.runs import classification, config_io

    table = config_io.load_toml(args.config) if args.config else {}
    overrides = config_io.parse_overrides(args.overrides)
    for flag, key in _shorthand_keys(args):
        section, name = key.split(".")
        if name in overrides.get(section, {}):
            raise UserError(f"{flag} and --set {key}={overrides[section][name]} both set {key}: give one of them")
        overrides.setdefault(section, {})[name] = _shorthand_value(args, flag)
    config = config_io.build(classification.ClassifierRunConfig, table, overrides)
    if config.batching.max_source_len < 2:
        raise UserError(f"the classifier needs batching.max_source_len >= 2 (pieces + END). Received: "
                        f"{config.batching.max_source_len}; pass --max-len N")
    given = any("saliency_weight" in source.get("model", {}) for source in (table, overrides))
    weight = classification.resolve_saliency_weight(config.model.saliency_weight if given else None,
                                                    train_examples)
    if not given and weight > 0:
        log(f"the training data has masks: saliency weight {weight:g} (the default; --saliency-weight to change)")
    return classification.with_overrides(config, model={"saliency_weight": weight})


def _shorthand_value(args, flag: str) -> str:
    """The `--set` value a given shorthand stands for."""
    return "false" if flag == "--unidirectional" else str(getattr(args, _dest(flag)))


def _shorthand_keys(args) -> list[tuple[str, str]]:
    """(flag, config key) of each shorthand flag given in `args`."""
    flags = [(flag, key) for flag, key, *_ in SHORTHANDS]
    flags += [("--saliency-target", "model.saliency_target"), ("--unidirectional", "model.bidirectional")]
    return [(flag, key) for flag, key in flags if _given(getattr(args, _dest(flag)))]


def _given(value) -> bool:
    """Whether a flag was given: not None (unset) nor False (a switch left off); a given 0 counts."""
    return value is not None and value is not False


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def _train_command(args) -> str:
    """The `seq2seq classifier train` command line that reruns (resumes) `args`."""
    words = ["seq2seq", "classifier", "train", "--data", args.data, "--valid", args.valid, "--out", args.out]
    if args.config:
        words += ["--config", args.config]
    for override in args.overrides:
        words += ["--set", override]
    for flag, _ in _shorthand_keys(args):
        words += [flag] if flag == "--unidirectional" else [flag, str(getattr(args, _dest(flag)))]
    words += [flag for flag in ("--strict", "--no-progress") if getattr(args, _dest(flag))]
    return shlex.join(words)


def run_evaluate(args) -> int:
    from seq2seq.runs.classification import evaluate_examples, load_run

    run = load_run(args.model)
    examples = _read_labeled(args.data, strict=False)
    print(json.dumps(evaluate_examples(run, examples, what=args.data)))
    return 0


def run_predict(args) -> int:
    from seq2seq.runs.classification import load_run, predictions

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


def run_export(args) -> int:
    from seq2seq.runs.classification import export_run, load_run

    path = export_run(load_run(args.model), args.out)
    log(f"exported to {path}")
    return 0


def _read_labeled(path, strict: bool):
    from seq2seq.data.reader import read_labeled_tsv

    examples, report = read_labeled_tsv(path, strict=strict)
    if report.total_skipped:
        reasons = ", ".join(f"{reason}: {count} (first at {report.skipped_at[reason][0]})"
                            for reason, count in report.skipped.most_common())
        log(f"skipped {report.total_skipped} bad lines of {path}: {reasons}")
    return examples
