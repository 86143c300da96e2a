"""`seq2seq bench NAME`: runs one benchmark and prints its JSON object on stdout."""

import importlib
import json

BENCHMARKS = {
    "decode": "greedy and beam decoding against re-running the model over the prefix",
    "saliency": "saliency-penalised and weight-0 train steps against a plain step",
    "classifier": "10,000 classifier predictions with attention",
    "train": "training throughput and loss against a plain Keras model.fit baseline",
    "quality": "BLEU/chrF of seq2seq train's defaults against the Keras tutorial model on several gettext pairs",
    "numbers": "English to French number words with seq2seq train's defaults: exact match (needs num2words)",
    "saliency-quality": "clean, plain and penalised classifiers on real-text decoy tasks: accuracy and flip rate",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark; prints one JSON object")
    names = parser.add_subparsers(dest="benchmark", metavar="NAME", required=True)
    for name, help_text in BENCHMARKS.items():
        module = importlib.import_module(f"seq2seq.bench.{name.replace('-', '_')}")
        sub = names.add_parser(name, help=help_text)
        module.add_arguments(sub)
        sub.set_defaults(handler=lambda args, module=module: _run(module, args))


def _run(module, args) -> int:
    result = module.run(args)
    print(json.dumps(result, indent=2))
    return 0
