"""The end-token collapse study behind `recipes/end_token_collapse.py`.

`run_study(StudyConfig(...), out_dir)` trains one Translator per setup of
`seq2seq.studies.collapse_setups` (the naive END-padded setup and the fixes) and diagnoses each
on held-out pairs. Every setup starts from the same seed, so the same initial
weights, and trains on the same batches (one padded length, `pad_length`, so
that END padding is what the original user had) for the same number of epochs,
with TensorFlow's deterministic ops (`StudyConfig.deterministic`): a seed gives
the same table bit for bit.
A `CollapseMonitor` decodes a probe set after each epoch, so the table shows
when each setup collapsed, not only where it ended.

Writes into `out_dir`: `results.json` (the config and every row), and per setup
`diagnosis.json`, `diagnosis.txt`, the PNG plots, `translations.tsv` and the
training directory (`train/`: checkpoints, TensorBoard logs, history).
"""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from seq2seq.diagnostics.translator import decode_ids, diagnose_translator, reference_ids
from seq2seq.studies.collapse_setups import (EXTRA_SETUPS, SETUP_NAMES, SETUPS, Setup, collect_targets,
                                             end_padded_dataset, end_weight, make_loss, weighted_dataset)

CORPORA = ("generated", "gettext")


@dataclass(frozen=True)
class StudyConfig:
    """One run of the study; every setup trains with these same values."""

    # "generated" (a toy task, no download) or "gettext" (this machine's catalogs).
    corpus: str = "generated"
    # generated: the task ("dedup": target lengths vary independently of the source)
    # and the source lengths, in words.
    task: str = "dedup"
    min_words: int = 3
    max_words: int = 10
    # gettext: the target language, as in /usr/share/locale/<target_lang>.
    target_lang: str = "fr"
    locale_dir: str = "/usr/share/locale"
    # A SentencePiece .model; "" trains one on the training split: `vocab_size`
    # pieces of `tokenizer_type` ("unigram", "bpe", "char" or "word").
    tokenizer_model: str = ""
    tokenizer_type: str = "unigram"
    vocab_size: int = 2000
    train_pairs: int = 3000
    test_pairs: int = 200
    # Every source and target is padded (and cut) to this many pieces, END included:
    # the user's one fixed length (maxlen). Real corpora have a long tail (gettext fr:
    # median 6 words, longest 137), so most targets are far shorter than it; here END
    # is about 92% of the END-padded default targets.
    pad_length: int = 32
    batch_size: int = 64
    embed_dim: int = 64
    units: int = 64
    epochs: int = 4
    learning_rate: float = 2e-3
    # Test sources decoded after each epoch to follow the verdict (0 = none).
    probe_size: int = 64
    seed: int = 0
    # TensorFlow's deterministic ops (process-wide, cannot be turned off): the same
    # seed then gives the same table bit for bit. Without them, runs differ in the
    # loss's third decimal from the first epoch on, enough to move a verdict.
    deterministic: bool = True

    def __post_init__(self):
        if self.corpus not in CORPORA:
            raise ValueError(f"Expected corpus in {CORPORA}. Received: corpus={self.corpus!r}")
        for name in ("train_pairs", "test_pairs", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"Expected {name} >= 1. Received: {name}={getattr(self, name)!r}")
        if self.pad_length < 2:
            raise ValueError(f"Expected pad_length >= 2. Received: pad_length={self.pad_length!r}")


def load_pairs(config: StudyConfig) -> tuple[list, list]:
    """`(train, test)` pairs of the configured corpus; gettext pairs are shuffled with the seed."""
    size = config.train_pairs + config.test_pairs
    if config.corpus == "generated":
        from seq2seq.data.generated import generate_pairs

        pairs = generate_pairs(config.task, size, config.seed, min_words=config.min_words,
                               max_words=config.max_words)
    else:
        import random

        from seq2seq.data.gettext import read_gettext

        pairs, _ = read_gettext(config.target_lang, locale_dir=config.locale_dir)
        random.Random(config.seed).shuffle(pairs)
        pairs = pairs[:size]
    return pairs[: config.train_pairs], pairs[config.train_pairs : size]


def tokenizer_path(config: StudyConfig, train_pairs: list, out_dir: Path) -> Path:
    """The configured SentencePiece model, or one trained on the training split into `out_dir`."""
    if config.tokenizer_model:
        return Path(config.tokenizer_model)
    from seq2seq.tokenizer import train_sentencepiece_from_sentences

    sentences = [pair.source for pair in train_pairs] + [pair.target for pair in train_pairs]
    return Path(train_sentencepiece_from_sentences(sentences, out_dir, name="tokenizer",
                                                   vocab_size=config.vocab_size,
                                                   model_type=config.tokenizer_type, seed=config.seed))


def batching_config(config: StudyConfig):
    """One bucket of `pad_length`: every batch is `batch_size` examples padded to it."""
    from seq2seq.data.batching import BatchingConfig

    length = config.pad_length
    return BatchingConfig(max_source_len=length, max_target_len=length,
                          tokens_per_batch=length * config.batch_size, bucket_lengths=(length,))


def run_setup(setup: Setup, config: StudyConfig, pairs: tuple[list, list], tokenizer_file: Path,
              out_dir: Path, log=print) -> dict:
    """Trains one setup from the shared seed, diagnoses it on the test pairs, writes its reports."""
    import keras

    from seq2seq.tokenizer import SentencePieceTokenizer

    # Seed first: tf.random.set_seed clears TensorFlow's kernel caches, and with them
    # the SentencePiece resource of a tokenizer loaded earlier.
    keras.utils.set_random_seed(config.seed)
    tokenizer = SentencePieceTokenizer.from_file(tokenizer_file)
    translator, targets, monitor = _train(setup, config, pairs, tokenizer, out_dir)
    result = _score(setup, config, pairs[1], translator, tokenizer, targets, out_dir)
    result["epoch_verdicts"] = [diagnosis.verdict for _, diagnosis in monitor.diagnoses]
    result["end_weight"] = end_weight(setup, targets, tokenizer.vocab_size)
    log(f"{setup.name}: {result['verdict']}, exact match {result['exact_match']:.2f}, "
        f"per epoch {_verdict_letters(result['epoch_verdicts'])}")
    return result


def _train(setup: Setup, config: StudyConfig, pairs: tuple[list, list], tokenizer, out_dir: Path):
    """Returns the trained translator, its `target_out` rows and its collapse monitor."""
    from seq2seq.callbacks import CollapseMonitor
    from seq2seq.data.pipeline import make_translation_dataset
    from seq2seq.models.translator import Translator
    from seq2seq.training import TrainConfig, train

    train_pairs, test_pairs = pairs
    dataset = make_translation_dataset([p.source for p in train_pairs], [p.target for p in train_pairs],
                                       tokenizer, batching_config(config), training=True, seed=config.seed)
    if setup.end_padded:
        dataset = end_padded_dataset(dataset)
    targets = collect_targets(dataset)
    loss = make_loss(setup, targets, tokenizer.vocab_size)
    dataset = weighted_dataset(setup, dataset, targets, tokenizer.vocab_size)
    translator = Translator(tokenizer.vocab_size, embed_dim=config.embed_dim, units=config.units)
    probes = test_pairs[: config.probe_size]
    monitor = CollapseMonitor(
        lambda sources: decode_ids(translator, tokenizer, sources, max_source_len=config.pad_length,
                                   max_length=config.pad_length),
        [p.source for p in probes], reference_ids(tokenizer, [p.target for p in probes], config.pad_length))
    train_config = TrainConfig(out_dir=str(out_dir / "train"), epochs=config.epochs,
                               learning_rate=config.learning_rate, patience=None, resume=False,
                               progress=False)
    train(translator, dataset, loss=loss, config=train_config, callbacks=[monitor] if probes else [])
    return translator, targets, monitor


def _score(setup: Setup, config: StudyConfig, test_pairs: list, translator, tokenizer, targets,
           out_dir: Path) -> dict:
    """Decodes the test pairs, writes the diagnosis, returns the setup's row of the table."""
    from seq2seq.evaluation import evaluate_translations

    references = [p.target for p in test_pairs]
    diagnosis, hypotheses = diagnose_translator(
        translator, tokenizer, [p.source for p in test_pairs], references,
        max_source_len=config.pad_length, max_length=config.pad_length,
        targets=targets, padding_masked=not setup.end_padded)
    _write_reports(out_dir, diagnosis, test_pairs, hypotheses)
    scores = evaluate_translations(hypotheses, references)
    return {
        "setup": setup.name,
        "description": setup.description,
        "exact_match": scores["exact_match"],
        "bleu": scores["bleu"],
        "chrf": scores["chrf"],
        "empty_rate": diagnosis.outputs.empty_rate,
        "first_token_end_rate": diagnosis.outputs.first_token_end_rate,
        "length_ratio": diagnosis.outputs.length_ratio,
        "verdict": _outputs_verdict(diagnosis),
        "verdict_with_targets": diagnosis.verdict,
        "target_end_share": diagnosis.targets.end_share,
    }


def run_study(config: StudyConfig, out_dir, setups=SETUP_NAMES, log=print) -> list[dict]:
    """Runs the setups named in `setups`, in order; writes `results.json` and a report per setup."""
    known = {setup.name: setup for setup in SETUPS + EXTRA_SETUPS}
    unknown = [name for name in setups if name not in known]
    if unknown:
        raise ValueError(f"Expected setups among {tuple(known)}. Received: {unknown}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log("config: " + json.dumps(dataclasses.asdict(config)))
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    pairs = load_pairs(config)
    tokenizer_file = tokenizer_path(config, pairs[0], out_dir)
    results = [run_setup(known[name], config, pairs, tokenizer_file, out_dir / name, log)
               for name in setups]
    report = {"config": dataclasses.asdict(config), "results": results}
    (out_dir / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    return results


def results_table(results: list[dict]) -> str:
    """The study's table, one row per setup, for people."""
    width = max([13] + [len(r["setup"]) for r in results])
    header = (f"{'setup':{width}s} {'exact':>6s} {'BLEU':>6s} {'chrF':>6s} {'empty':>6s} {'END 1st':>7s} "
              f"{'len':>5s} {'END %':>6s} {'END w':>6s}  {'verdict':10s} {'+targets':10s} per epoch")
    lines = [header, "-" * len(header)]
    for r in results:
        ratio = "n/a" if r["length_ratio"] is None else f"{r['length_ratio']:.2f}"
        lines.append(
            f"{r['setup']:{width}s} {r['exact_match']:6.1%} {r['bleu']:6.1f} {r['chrf']:6.1f} {r['empty_rate']:6.1%} "
            f"{r['first_token_end_rate']:7.1%} {ratio:>5s} {r['target_end_share']:6.1%} {r['end_weight']:6.2g}  "
            f"{r['verdict']:10s} {r['verdict_with_targets']:10s} {_verdict_letters(r['epoch_verdicts'])}")
    lines.append("")
    lines.append("len: predicted / reference length; END %: END's share of the training targets; "
                 "END w: the weight on END (end_pad_weighted: on the END padding only); "
                 "verdict: from the outputs alone; +targets: with the training targets (END-padded "
                 "targets are at least at_risk); per epoch: C collapsed, a at_risk, h healthy.")
    return "\n".join(lines)


def _outputs_verdict(diagnosis) -> str:
    from seq2seq.diagnostics.verdict import judge

    return judge(diagnosis.outputs, None, diagnosis.thresholds)[0]


def _verdict_letters(verdicts: list[str]) -> str:
    return "".join({"collapsed": "C", "at_risk": "a", "healthy": "h"}[v] for v in verdicts) or "-"


def _write_reports(out_dir: Path, diagnosis, test_pairs: list, hypotheses: list[str]) -> None:
    from seq2seq.diagnostics import save_plots

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "diagnosis.json").write_text(json.dumps(diagnosis.to_dict(), indent=2) + "\n")
    (out_dir / "diagnosis.txt").write_text(diagnosis.to_text())
    save_plots(diagnosis, out_dir)
    lines = [f"{p.source}\t{p.target}\t{h}" for p, h in zip(test_pairs, hypotheses)]
    (out_dir / "translations.tsv").write_text("source\treference\toutput\n" + "\n".join(lines) + "\n")
