"""`seq2seq train | translate | evaluate | score | export | average`: translator runs from the command line."""

import json
import shlex
import sys
from pathlib import Path

from seq2seq.cli.io import DEFAULT_MAX_LINE_CHARS, log, positive_int, read_input_lines, read_pair_lines
from seq2seq.errors import UserError


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="train a translator from a TOML config (resumes if interrupted)")
    train.add_argument("--config", metavar="FILE",
                       help="TOML run configuration (default: none, every key takes its default)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override one config value, e.g. --set model.units=128 (repeatable; default: none)")
    train.add_argument("--out", required=True, metavar="DIR",
                       help="run directory (required; created, and an existing run resumes)")
    train.add_argument("--no-progress", action="store_true",
                       help="no progress bars (default: progress bars on stderr)")
    train.add_argument("--seed", type=int, default=None, metavar="N",
                       help="seed weights and shuffling and turn on deterministic ops: the same loss curve "
                            "bit for bit on CPU (= --set train.seed=N --set train.deterministic=true; "
                            "default: the config's train.seed and train.deterministic)")
    train.add_argument("--strategy", choices=("none", "mirrored", "multiworker"), default=None,
                       help="distribute training: mirrored = all local devices; multiworker = the "
                            "workers in TF_CONFIG (= --set train.strategy=...; default: the config's, "
                            "which defaults to none)")
    # TensorFlow starts after the run directory is checked, so a bad --out fails at once.
    train.set_defaults(handler=run_train, without_tensorflow=True)

    translate = subparsers.add_parser(
        "translate", help="translate lines from stdin or --input to stdout, one output line per input line")
    _add_model_argument(translate)
    translate.add_argument("--input", metavar="FILE",
                           help="text file, one sentence per line (default: standard input)")
    _add_decoding_arguments(translate)
    _add_n_best_arguments(translate)
    _add_sampling_arguments(translate)
    _add_strict_argument(translate, "writes an empty line for it")
    # A run's cached decoding graph needs neither tensorflow-text nor Keras (seq2seq.runs.decode_cache).
    translate.set_defaults(handler=run_translate)

    evaluate = subparsers.add_parser("evaluate", help="BLEU, chrF and exact match on a TSV corpus, as JSON")
    _add_model_argument(evaluate)
    evaluate.add_argument("--data", required=True, metavar="FILE",
                          help="TSV file, one 'source TAB reference' pair per line (required)")
    _add_decoding_arguments(evaluate)
    _add_strict_argument(evaluate, "leaves it out of the scores and lists it under skipped_lines")
    evaluate.set_defaults(handler=run_evaluate)

    score = subparsers.add_parser(
        "score", help="the model's log-probability of each given translation of a TSV corpus, one JSON line each")
    _add_model_argument(score)
    score.add_argument("--data", required=True, metavar="FILE",
                       help="TSV file, one 'source TAB translation' pair per line (required)")
    score.add_argument("--per-token", action="store_true",
                       help='add "token_log_probs", one per target piece and the end token (default: off)')
    score.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                       help="pairs scored together; bounds memory, not the results (default: the run's "
                            "decode.batch_size)")
    _add_strict_argument(score, "writes a JSON line with a null log_prob for it")
    score.set_defaults(handler=run_score)

    export = subparsers.add_parser("export", help="write a strings-in, strings-out SavedModel")
    _add_model_argument(export)
    export.add_argument("--out", required=True, metavar="DIR",
                        help="directory of the SavedModel (required; must not exist, or be empty)")
    # No --batch-size: an export translates whatever batch its caller passes.
    _add_decoding_arguments(export, batch_size=False)
    export.set_defaults(handler=run_export, with_tensorflow_text=True)  # the SavedModel tokenizes in graph

    average = subparsers.add_parser(
        "average", help="write a run whose weights are the mean of a run's last N step checkpoints")
    _add_model_argument(average)
    average.add_argument("--last", required=True, type=positive_int, metavar="N",
                         help="how many of the newest checkpoints to average (required; at most the run's "
                              "train.keep_checkpoints)")
    average.add_argument("--out", required=True, metavar="DIR",
                         help="directory of the averaged run (required; must not exist, or be empty)")
    average.add_argument("--evaluate", action="store_true",
                         help="also score the averaged run on the run's test split and print it as JSON next "
                              "to the run's own score (default: off)")
    average.set_defaults(handler=run_average)


def _add_model_argument(parser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="run directory written by `seq2seq train` or a recipe (required)")


def _add_decoding_arguments(parser, *, batch_size: bool = True) -> None:
    parser.add_argument("--beam", type=positive_int, default=None, metavar="N",
                        help="beam size, 1 = greedy (default: the run's decode.beam_size)")
    parser.add_argument("--max-length", type=positive_int, default=None, metavar="N",
                        help="longest output in pieces, END included (default: the run's decode.max_length)")
    if batch_size:
        parser.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                            help="sentences decoded together; bounds memory, not the results "
                                 "(default: the run's decode.batch_size)")


def _add_n_best_arguments(parser) -> None:
    parser.add_argument("--n-best", type=positive_int, default=None, metavar="N",
                        help="write the N best translations of each line, at most --beam (default: 1); "
                             "with this flag or the next two, one JSON line per input line: "
                             '{"source": ..., "hypotheses": [{"text": ..., ...}, ...]}')
    parser.add_argument("--with-scores", action="store_true",
                        help='add each hypothesis\'s "log_prob" (its pieces\' log-probability, end token '
                             'included) and "score" (log_prob over the length penalty, what beam search ranks '
                             "by) (default: off)")
    parser.add_argument("--with-alignments", choices=("hard", "soft"), default=None,
                        help='add each hypothesis\'s "alignment": hard = the index of the source piece each '
                             "output piece attended to most, soft = the attention matrix [output pieces]"
                             "[source pieces + end token] (default: none)")


def _add_sampling_arguments(parser) -> None:
    parser.add_argument("--sample", action="store_true",
                        help="draw each token at random from the model's distribution instead of searching "
                             "(back-translation); implies --beam 1 (default: off)")
    parser.add_argument("--temperature", type=float, default=None, metavar="T",
                        help="with --sample: divide the logits by T > 0; below 1 sharpens (default: 1.0)")
    parser.add_argument("--top-k", type=int, default=None, metavar="K",
                        help="with --sample: draw among the K likeliest tokens only, 0 = all (default: 0)")
    parser.add_argument("--top-p", type=float, default=None, metavar="P",
                        help="with --sample: draw among the fewest likeliest tokens whose probability reaches P, "
                             "1 = all (default: 1.0)")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help="with --sample: the same seed, input and --batch-size give the same samples "
                             "(default: 0)")


def _sampling(args):
    """The `seq2seq.decoding.Sampling` of `--sample` and its options, or None; UserError on a bad combination."""
    from seq2seq.decoding import Sampling

    given = {name: getattr(args, name) for name in ("temperature", "top_k", "top_p", "seed")
             if getattr(args, name) is not None}
    if not args.sample:
        if given:
            flags = " ".join("--" + name.replace("_", "-") for name in given)
            raise UserError(f"{flags} only apply to sampling; add --sample, or leave them out")
        return None
    if args.beam not in (None, 1) or (args.n_best or 1) > 1:
        raise UserError(f"--sample draws one translation per line; leave out --beam {args.beam} "
                        f"and --n-best {args.n_best}, or leave out --sample to search")
    sampling = Sampling(**given)
    try:
        from seq2seq.decoding import SamplingSearch

        SamplingSearch(sampling.temperature, sampling.top_k, sampling.top_p)
    except ValueError as error:
        raise UserError(f"bad sampling option: {error}") from None
    return sampling


def _add_strict_argument(parser, lenient: str) -> None:
    parser.add_argument("--strict", action="store_true",
                        help="stop with an error (exit 2) at the first line that is not UTF-8, holds a NUL "
                             f"byte or has over {DEFAULT_MAX_LINE_CHARS} characters (default: off; each such "
                             f"line gets a warning on stderr and the command {lenient})")


def run_train(args) -> int:
    from seq2seq.runs import config_io
    from seq2seq.distribution import is_chief_task, worker_dir
    from seq2seq.runs.config import RunConfig

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides += [f"train.seed={args.seed}", "train.deterministic=true"]
    if args.strategy is not None:
        overrides.append(f"train.strategy={args.strategy}")
    table = config_io.load_toml(args.config) if args.config else {}
    config = config_io.build(RunConfig, table, config_io.parse_overrides(overrides))
    # Under multiworker only the chief writes --out; the other workers write their run to a temporary directory.
    chief = config.train.strategy != "multiworker" or is_chief_task()
    with worker_dir(args.out, chief) as out:
        metrics = _train_in(config, Path(out), args, chief)
    if metrics is None:
        return 130
    if chief:
        print(json.dumps(metrics["test"]))
        log(f"run written to {args.out} (translate with: seq2seq translate --model {args.out})")
    else:
        log(f"worker done; the chief writes the run to {args.out}")
    return 0


def _train_in(config, out: Path, args, chief: bool):
    """Checks `out`, starts TensorFlow and trains into `out`; None after Ctrl-C."""
    from seq2seq.cli.quiet import import_tensorflow_quietly
    from seq2seq.distribution import distribution_strategy, lost_workers_reported, wait_for_workers
    from seq2seq.runs.translation import prepare_run_dir, train_run

    prepare_run_dir(config, out, log=log)
    multiworker = config.train.strategy == "multiworker"
    # Created before TensorFlow starts its devices; returns once every worker has started.
    strategy = distribution_strategy("multiworker") if multiworker else None
    import_tensorflow_quietly()
    try:
        metrics = train_run(config, out, progress=not args.no_progress and chief, log=log,
                            decode_cache=True)  # the first translate starts fast
    except KeyboardInterrupt as interrupt:
        log(f"\n{interrupt or 'interrupted'}")
        log(f"resume with: {_train_command(args)}")
        return None
    if multiworker:  # the other workers return once the chief has written the run
        with lost_workers_reported():
            wait_for_workers(strategy)
    return metrics


def _train_command(args) -> str:
    """The `seq2seq train` command line that reruns (resumes) `args`."""
    words = ["seq2seq", "train"]
    if args.config:
        words += ["--config", args.config]
    for override in args.overrides:
        words += ["--set", override]
    words += ["--out", args.out]
    if args.no_progress:
        words.append("--no-progress")
    if args.seed is not None:
        words += ["--seed", str(args.seed)]
    if args.strategy is not None:
        words += ["--strategy", args.strategy]
    return shlex.join(words)


def run_translate(args) -> int:
    from seq2seq.runs.decode_cache import cached_translator
    from seq2seq.runs.translation import load_run

    sampling = _sampling(args)
    as_json = args.n_best is not None or args.with_scores or args.with_alignments is not None
    if as_json or sampling is not None:
        run = load_run(args.model)
        if as_json and sampling is None:
            _check_n_best(run, args)
    else:
        # The decoding graph saved by this run's first translate, without retracing (seq2seq.runs.decode_cache).
        translator = cached_translator(args.model, beam_size=args.beam, max_length=args.max_length, log=log)
    lines = read_input_lines(args.input, strict=args.strict)
    lines.warn("wrote a JSON line without hypotheses" if as_json else "wrote an empty line")
    readable = lines.readable()
    texts = [lines.texts[i] for i in readable]
    if as_json:
        translations = [json.dumps(result, ensure_ascii=False)
                        for result in _translate_n_best(run, texts, args, sampling)]
        outputs = [json.dumps({"source": text, "hypotheses": []}, ensure_ascii=False) for text in lines.texts]
    elif sampling is not None:
        translations = _translate_sampled(run, texts, args, sampling)
        outputs = [""] * len(lines.texts)
    else:
        translations = translator.translate(texts, batch_size=args.batch_size)
        outputs = [""] * len(lines.texts)
    for index, translation in zip(readable, translations):
        outputs[index] = translation
    sys.stdout.write("".join(line + "\n" for line in outputs))
    return 0


def _check_n_best(run, args) -> None:
    beam = args.beam or run.config.decode.beam_size
    if (args.n_best or 1) > beam:
        raise UserError(f"--n-best {args.n_best} asks for more hypotheses than the beam keeps ({beam}); "
                        f"add --beam {args.n_best} (or more), or lower --n-best")


def _translate_n_best(run, texts, args, sampling) -> list[dict]:
    """`seq2seq.inference.translate_n_best` with the run's decoding settings and the command's options."""
    from seq2seq.inference import translate_n_best

    return translate_n_best(run.translator, run.tokenizer, texts, n_best=args.n_best or 1,
                            with_scores=args.with_scores, alignments=args.with_alignments,
                            **_inference_options(run, args, sampling))


def _translate_sampled(run, texts, args, sampling) -> list[str]:
    """`seq2seq.inference.translate_batches` drawing with `sampling`, else as `translate_texts` decodes."""
    from seq2seq.inference import translate_batches

    return translate_batches(run.translator, run.tokenizer, texts, **_inference_options(run, args, sampling))


def _inference_options(run, args, sampling) -> dict:
    """Keyword arguments of `seq2seq.inference`'s functions: the run's settings, the command's overrides."""
    from seq2seq.runs.translation import decode_options

    return dict(casing=run.casing, protect_placeholders=run.config.decode.protect_placeholders,
                batch_size=args.batch_size or run.config.decode.batch_size, sampling=sampling,
                **decode_options(run, beam_size=1 if sampling else args.beam, max_length=args.max_length))


def run_evaluate(args) -> int:
    from seq2seq.evaluation import evaluate_translations
    from seq2seq.runs.translation import load_run, translate_texts

    run = load_run(args.model)
    lines, pairs = read_pair_lines(args.data, strict=args.strict)
    lines.warn("left out of the scores")
    if not pairs:
        raise UserError(f"no 'source TAB reference' line to evaluate in {args.data}")
    sources = [pair.source for pair in pairs]
    hypotheses = translate_texts(run, sources, beam_size=args.beam, max_length=args.max_length,
                                 batch_size=args.batch_size, progress=True)
    scores = evaluate_translations(hypotheses, [pair.target for pair in pairs], sources=sources)
    print(json.dumps({**scores, "skipped_lines": [index + 1 for index in sorted(lines.problems)]}))
    return 0


def run_score(args) -> int:
    from seq2seq.scoring import score_pairs
    from seq2seq.runs.translation import decode_options, load_run

    run = load_run(args.model)
    lines, pairs = read_pair_lines(args.data, strict=args.strict)
    lines.warn("wrote a JSON line with a null log_prob")
    scores = iter(score_pairs(
        run.translator, run.tokenizer, [pair.source for pair in pairs], [pair.target for pair in pairs],
        max_source_len=decode_options(run)["max_source_len"], casing=run.casing,
        protect_placeholders=run.config.decode.protect_placeholders,
        batch_size=args.batch_size or run.config.decode.batch_size, per_token=args.per_token))
    outputs = []
    for index, text in enumerate(lines.texts):  # one line per pair, blank lines left out
        if index in lines.problems:
            outputs.append({"source": None, "target": None, "log_prob": None, "tokens": None})
        elif text.strip():
            outputs.append(next(scores))
    sys.stdout.write("".join(json.dumps(output, ensure_ascii=False) + "\n" for output in outputs))
    return 0


def run_export(args) -> int:
    from seq2seq.runs.translation import export_run, load_run

    path = export_run(load_run(args.model), args.out, beam_size=args.beam, max_length=args.max_length)
    log(f"exported to {path}")
    return 0


def run_average(args) -> int:
    from seq2seq.runs.averaging import average_and_evaluate, average_run

    if args.evaluate:
        metrics = average_and_evaluate(args.model, args.out, args.last, progress=True, log=log)
        print(json.dumps({"test": metrics["test"], "test_without_averaging": metrics["test_without_averaging"]}))
    else:
        average_run(args.model, args.out, args.last, log=log)
    log(f"translate with: seq2seq translate --model {args.out}")
    return 0
