"""The configuration of a run: one frozen dataclass per TOML section.

`TokenizerConfig` and `TrainingConfig` serve both run kinds (the classifier's
`seq2seq.runs.classification.ClassifierRunConfig` holds them too, with its own
defaults where its measurements chose others); the other sections here are the
translator's. `seq2seq train --config run.toml --set model.units=128` builds a `RunConfig`
from the file and the overrides (`seq2seq.runs.config_io.build`); every field has a
default, so an empty file is a valid configuration. The resolved configuration
is written to the run directory as `config.toml`, which is how `translate`,
`evaluate` and `export` rebuild the run.
"""

from dataclasses import dataclass, field

from seq2seq.data.batching import BatchingConfig
from seq2seq.distribution import STRATEGIES
from seq2seq.schedules import LR_SCHEDULES

CORPORA = ("gettext", "tsv", "aligned", "generated")
LOSSES = ("masked", "boundary")
PRECISIONS = ("float32", "mixed_bfloat16")
BEST_METRICS = ("loss", "bleu", "chrf")
LONG_PAIRS = ("cut", "drop")


@dataclass(frozen=True)
class DataConfig:
    """Where the parallel text comes from and how it is split."""

    # "gettext" (the machine's catalogs), "tsv" (source TAB target), "aligned"
    # (two line-aligned files) or "generated" (a toy task).
    corpus: str = "gettext"
    # gettext: the target language, as in /usr/share/locale/<target_lang>.
    target_lang: str = "fr"
    # gettext: the catalog root.
    locale_dir: str = "/usr/share/locale"
    # tsv: the corpus file; aligned: the source file.
    path: str = ""
    # aligned: the target file.
    target_path: str = ""
    # generated: the task ("reverse", "copy", "sort", "dedup", "translate") and its size.
    task: str = "reverse"
    generated_pairs: int = 5000
    # Keep at most this many pairs of the training split (0 = all).
    max_train_pairs: int = 0
    # Keep only training pairs whose source has at most this many whitespace
    # words (0 = all); validation and test are never filtered.
    max_train_words: int = 0
    # Training pairs longer than the length cuts (batching.max_source_len /
    # max_target_len): "cut" (truncated, keeping END) or "drop" (left out of
    # training). Validation and test pairs are always cut, never dropped.
    long_pairs: str = "cut"
    # Seed of the train/valid/test split.
    seed: int = 0
    valid_fraction: float = 0.03
    test_fraction: float = 0.03

    def __post_init__(self):
        if self.corpus not in CORPORA:
            raise ValueError(f"Expected data.corpus in {CORPORA}. Received: corpus={self.corpus!r}")
        if self.corpus in ("tsv", "aligned") and not self.path:
            raise ValueError(f"data.corpus={self.corpus!r} needs data.path (the corpus file).")
        if self.long_pairs not in LONG_PAIRS:
            raise ValueError(f"Expected data.long_pairs in {LONG_PAIRS}. Received: long_pairs={self.long_pairs!r}")
        if self.corpus == "aligned" and not self.target_path:
            raise ValueError("data.corpus='aligned' needs data.target_path (the target-side file).")


@dataclass(frozen=True)
class TokenizerConfig:
    """The SentencePiece model shared by source and target."""

    # An existing .model file; "" trains one on the training split into the run directory.
    model: str = ""
    # Pieces, the reserved ones included; an upper bound (a corpus with fewer pieces gets fewer).
    # 0 = chosen from the training data: its characters + one piece per 50 pairs (`seq2seq.runs.data_defaults`).
    vocab_size: int = 0
    model_type: str = "unigram"
    character_coverage: float = 1.0


@dataclass(frozen=True)
class ModelConfig:
    """Arguments of `seq2seq.models.Translator`."""

    embed_dim: int = 256
    units: int = 256
    encoder_layers: int = 1
    bidirectional: bool = False
    # "luong" (dot/general score) or "bahdanau" (additive).
    attention: str = "luong"
    # Luong scores divided by sqrt(memory depth): without it the attention can lock onto
    # the first source token early in training and stay there (docs/translation-defaults.md).
    scaled_attention: bool = True
    # Feed the previous attentional state to the decoder (Luong et al.; OpenNMT's default).
    input_feeding: bool = False
    # The attention also reads the source embeddings, so tokens to copy reach the decoder as they are.
    memory_embeddings: bool = True
    dropout: float = 0.0
    # lambda of the saliency penalty (needs source annotations; 0 = off).
    saliency_weight: float = 0.0
    # "float32", or "mixed_bfloat16": bfloat16 compute with float32 weights (1.34x the
    # tokens/s on a CPU with AVX512_BF16, at the same validation loss after 1.5 minutes;
    # slower where the CPU has no bfloat16 instructions). Saved with the model.
    precision: str = "float32"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"Expected model.precision in {PRECISIONS}. Received: precision={self.precision!r}")
        if self.precision != "float32" and self.saliency_weight > 0:
            raise ValueError("model.precision=mixed_bfloat16 with a saliency penalty is not supported: the "
                             "penalty differentiates twice and was measured in float32 only. Set "
                             "model.precision=float32 or model.saliency_weight=0")


@dataclass(frozen=True)
class TrainingConfig:
    """How a run of either kind is trained: the driver's settings (`seq2seq.training.TrainConfig`,
    built by `driver_config`), the translator's loss and its selection measure, and the classifier's
    shortcut selection. A setting one kind does not use is refused for it (`TRANSLATOR_ONLY` and
    `CLASSIFIER_ONLY`)."""

    # 0 = chosen from the training data (translator only): about 5 million target tokens, 2 to 40 epochs.
    epochs: int = 0
    learning_rate: float = 5e-3
    # "constant", or "cosine": anneal to 2% of learning_rate along half a cosine
    # over the epochs (`seq2seq.training.TrainConfig.lr_schedule`); with max_minutes, the
    # curve follows the steps through half the budget, then its tail is compressed so
    # that it ends with the budget (`seq2seq.training.BudgetedCosineDecay`).
    lr_schedule: str = "cosine"
    clipnorm: float = 1.0
    # Epochs without a better validation measure (best_metric) before stopping.
    patience: int = 3
    # The validation measure that picks the best epoch (best/, model.keras, export) and that early
    # stopping follows: "loss" (the validation loss), or "bleu" / "chrf" of the greedy translations of
    # the first selection_sentences validation pairs, decoded at each epoch's end (docs/checkpoints.md).
    best_metric: str = "loss"
    # Validation pairs decoded each epoch when best_metric is "bleu" or "chrf".
    selection_sentences: int = 200
    # Batches per epoch (0 = one pass over the training split).
    steps_per_epoch: int = 0
    # Stop after this many minutes of training (0 = no limit); the best weights are kept.
    max_minutes: float = 0.0
    # "masked" (MaskedSparseCrossentropy) or "boundary" (BoundaryAwareLoss).
    loss: str = "masked"
    label_smoothing: float = 0.0
    # Weight of the end token in the loss: 1.0 = plain; 0 = computed from the
    # training targets (mean count of the other classes / end-token count).
    end_token_weight: float = 1.0
    # Seed of weight initialisation and batch shuffling.
    seed: int = 0
    # Deterministic TensorFlow ops: with the same seed, the same loss curve bit for bit (CPU).
    deterministic: bool = False
    # Also checkpoint every this many optimizer steps inside an epoch (0 = at epoch ends only).
    checkpoint_every_steps: int = 0
    # Step checkpoints kept in checkpoints/ (the newest); `seq2seq average --last N` needs N of them.
    keep_checkpoints: int = 2
    # "none" (one device), "mirrored" (all local devices) or "multiworker" (the workers of TF_CONFIG).
    strategy: str = "none"
    # Classifier with masked data: validation is also scored on texts whose mask-0 words are swapped
    # for other mask-0 words of the training set (`seq2seq.shortcut_validation`); true = select (early
    # stopping, best checkpoint) on that loss instead of val_loss. The classifier's default is true
    # (`seq2seq.runs.classification.CLASSIFIER_TRAINING`); translator runs leave it false.
    select_on_swapped: bool = False

    def __post_init__(self):
        if self.epochs < 0:
            raise ValueError(f"Expected train.epochs >= 0 (0 = chosen from the data). Received: epochs={self.epochs!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"Expected train.loss in {LOSSES}. Received: loss={self.loss!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"Expected train.strategy in {STRATEGIES}. Received: strategy={self.strategy!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"Expected train.lr_schedule in {LR_SCHEDULES}. Received: lr_schedule={self.lr_schedule!r}")
        if self.best_metric not in BEST_METRICS:
            raise ValueError(f"Expected train.best_metric in {BEST_METRICS}. Received: best_metric={self.best_metric!r}")
        if self.selection_sentences < 1:
            raise ValueError("Expected train.selection_sentences >= 1. "
                             f"Received: selection_sentences={self.selection_sentences!r}")
        if self.keep_checkpoints < 1:
            raise ValueError(f"Expected train.keep_checkpoints >= 1. Received: keep_checkpoints={self.keep_checkpoints!r}")
        if self.checkpoint_every_steps < 0:
            raise ValueError("Expected train.checkpoint_every_steps >= 0. "
                             f"Received: checkpoint_every_steps={self.checkpoint_every_steps!r}")


# [train] settings a resumed run may change: they steer what comes next, not what was trained.
RESUMABLE_TRAIN_FIELDS = ("epochs", "learning_rate", "lr_schedule", "clipnorm", "patience", "max_minutes",
                          "checkpoint_every_steps", "keep_checkpoints", "strategy", "deterministic")
# [train] settings only one kind of run uses; the other refuses a value that is not the default.
TRANSLATOR_ONLY = ("loss", "label_smoothing", "end_token_weight", "best_metric", "selection_sentences", "strategy")
CLASSIFIER_ONLY = ("select_on_swapped",)


def check_train_fields(train: TrainingConfig, unused: tuple[str, ...], kind: str) -> None:
    """Raises ValueError naming each of `unused` that `train` sets to other than TrainingConfig's default."""
    default = TrainingConfig()
    changed = [name for name in unused if getattr(train, name) != getattr(default, name)]
    if changed:
        raise ValueError(f"train.{', train.'.join(changed)} {'does' if len(changed) == 1 else 'do'} not apply to "
                         f"a {kind} run; remove {'it' if len(changed) == 1 else 'them'} from the config")


def driver_config(train: TrainingConfig, out_dir, *, progress: bool = True, monitor: str = "val_loss",
                  monitor_mode: str = "min"):
    """The training driver's `seq2seq.training.TrainConfig` for `train` (resolved: epochs > 0)."""
    from seq2seq.training import TrainConfig

    return TrainConfig(
        out_dir=str(out_dir), epochs=train.epochs, learning_rate=train.learning_rate,
        lr_schedule=train.lr_schedule, clipnorm=train.clipnorm, patience=train.patience, progress=progress,
        steps_per_epoch=train.steps_per_epoch or None,
        checkpoint_every_steps=train.checkpoint_every_steps or None,
        keep_checkpoints=train.keep_checkpoints, monitor=monitor, monitor_mode=monitor_mode,
    )


@dataclass(frozen=True)
class DecodeConfig:
    """How translations are produced for evaluation and export."""

    # 1 = greedy search.
    beam_size: int = 4
    # Longest output in pieces, the end token included.
    max_length: int = 64
    # GNMT length-penalty exponent for beam search (0 = none).
    length_penalty: float = 0.6
    # GNMT coverage-penalty weight beta for beam search (0 = none): a finished hypothesis' score
    # adds beta * sum_i log(min(attention source word i received, 1)), <= 0 (docs/decoding.md).
    coverage_penalty: float = 0.0
    # Sentences translated per call.
    batch_size: int = 64
    # Read a source's first word lowercased when training saw it capitalised
    # rarely and lowercase often ("Open file" -> "open file"), and capitalise the
    # translation again (`seq2seq.casing`).
    first_word_casing: bool = True
    # Replace placeholders (%s, {0}, $HOME, <b>...) by reserved tokens in the training pairs and
    # the sources, decode each of a source's exactly once, and put them back
    # (`seq2seq.placeholders`, docs/placeholders.md). Off for a tokenizer without the tokens.
    protect_placeholders: bool = True

    def __post_init__(self):
        if not self.coverage_penalty >= 0:
            raise ValueError(f"Expected decode.coverage_penalty >= 0 (0 = none). "
                             f"Received: coverage_penalty={self.coverage_penalty!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a translator run; sections map to TOML tables."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    # 0 = the lengths chosen from the training data (the 98th percentile of pieces).
    batching: BatchingConfig = field(default_factory=lambda: BatchingConfig(
        max_source_len=0, max_target_len=0, tokens_per_batch=2048))
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainingConfig = field(default_factory=TrainingConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def __post_init__(self):
        check_train_fields(self.train, CLASSIFIER_ONLY, "translator")
