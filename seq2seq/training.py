"""The training driver used by the CLI and the recipes.

`train(model, train_ds, valid_ds, loss=..., out_dir=...)` compiles the model
with Adam and gradient clipping, then fits it with:

- a tqdm progress bar showing the loss terms and tokens/s;
- a checkpoint each epoch, and every `checkpoint_every_steps` optimizer
  steps, in `out_dir/checkpoints` (what it holds: `seq2seq.training_state`),
  from which a second call with the same `out_dir` resumes after a kill:
  only the steps since that checkpoint are redone, and a seeded run with
  deterministic ops, killed at any moment any number of times, ends with the
  same weights and history as an uninterrupted one, bit for bit on CPU;
- Ctrl-C (SIGINT): the step in progress finishes, a checkpoint is saved and
  `TrainingInterrupted` (a `KeyboardInterrupt`) is raised; a second Ctrl-C
  stops at once;
- early stopping on the validation loss (or another epoch log: `monitor`,
  e.g. the `val_bleu` of `seq2seq.callbacks.SelectionScorer`), restoring the
  best weights;
- TensorBoard scalars under `out_dir/logs/{train,validation}`;
- a `TrainingDivergedError` naming the step at the first NaN/Inf loss (or
  non-finite weights when a checkpoint is due), so no checkpoint ever holds
  NaN weights.

Training reads `train_ds.repeat()` through one iterator, in one `fit` call:
an epoch is `steps_per_epoch` batches (default: the batches of one pass,
counted once at the start). `Dataset.shuffle` draws a new order each time an
iterator over its dataset starts, so the stream depends on the iterators made
before it: a resumed run makes the same ones (counting the batches, the
first batch, the stream) and skips the batches already trained on
(`optimizer.iterations` of them) on the stream's own iterator; a resumed
epoch ends after the steps it had left (`EndOfResumedEpoch`).

Checkpoints are atomic: TensorFlow writes the files of a checkpoint, then
replaces the `checkpoint` pointer file (write to a temporary name, rename), so
a kill during a write leaves the previous checkpoint as the latest; and a
checkpoint that does not load anyway (a torn disk) is skipped for the one
before it. The per-epoch history is kept in `out_dir/history.json` across resumes.

Under a multi-worker strategy (`seq2seq.distribution`) every worker calls
`train` alike: only the chief writes `out_dir` (and checks its free space,
logs to TensorBoard and shows the bars); the other workers save the same
checkpoints to a private temporary directory, resume from a copy of the
chief's, and stop after the same step as the others.
"""

import contextlib
import dataclasses
import math
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from seq2seq import distribution
from seq2seq.errors import UserError
from seq2seq.memory import release_freed_memory
from seq2seq.schedules import COSINE_FLOOR, LR_SCHEDULES
from seq2seq.training_state import (
    BEST_DIR, CHECKPOINT_DIR, HISTORY_FILE, EndOfResumedEpoch, TrainingDivergedError, TrainingInterrupted,
    TrainingState,
)

__all__ = ["TrainConfig", "TrainingDivergedError", "TrainingInterrupted", "train"]

LOG_DIR = "logs"
# The share of a time budget through which the cosine follows the planned steps (`BudgetedCosineDecay`).
BUDGET_HOLD = 0.5
MONITOR_MODES = ("min", "max")
# What a worker other than the chief copies from the run directory to resume.
RESUME_STATE = (CHECKPOINT_DIR, BEST_DIR, HISTORY_FILE)


@dataclass(frozen=True)
class TrainConfig:
    """How `train` runs. Only `out_dir` has no default."""

    # Where checkpoints, the best weights, TensorBoard logs and history go.
    out_dir: str
    # Total epochs, counting those of earlier (interrupted) runs.
    epochs: int = 10
    # Adam's learning rate.
    learning_rate: float = 1e-3
    # "constant", or "cosine": from `learning_rate` down to COSINE_FLOOR times it
    # along half a cosine over all `epochs` (counted in optimizer steps, so a
    # resumed run continues the curve where it stopped).
    lr_schedule: str = "constant"
    # Clip each gradient step to this global norm (Keras `global_clipnorm`); None = no clipping.
    clipnorm: float | None = 1.0
    # Stop after this many epochs without a lower validation loss, then
    # restore the best weights; None = never stop early (best still restored).
    patience: int | None = 3
    # Smallest decrease of the validation loss that counts as better.
    min_delta: float = 0.0
    # Continue from the last checkpoint in `out_dir` if there is one.
    resume: bool = True
    # Show a tqdm progress bar.
    progress: bool = True
    # Batches per epoch; None = one pass over `train_ds` (counted once at the start).
    steps_per_epoch: int | None = None
    # Also checkpoint every this many optimizer steps inside an epoch; None = at epoch ends only.
    checkpoint_every_steps: int | None = None
    # Checkpoints kept in `out_dir/checkpoints` (the newest; `seq2seq.runs.averaging` averages them).
    keep_checkpoints: int = 2
    # The epoch log that early stopping and the best weights follow: "val_loss", or one a callback
    # adds to the epoch's logs (`seq2seq.callbacks.SelectionScorer`: "val_bleu", "val_chrf").
    monitor: str = "val_loss"
    # "min": lower `monitor` is better (a loss); "max": higher is better (BLEU, chrF).
    monitor_mode: str = "min"

    def __post_init__(self):
        if not self.out_dir:
            raise ValueError(f"Expected a directory in out_dir. Received: out_dir={self.out_dir!r}")
        for name in ("epochs", "patience", "steps_per_epoch", "checkpoint_every_steps", "keep_checkpoints"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"Expected a positive int in {name}. Received: {name}={value!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"Expected lr_schedule in {LR_SCHEDULES}. Received: lr_schedule={self.lr_schedule!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"Expected learning_rate > 0. Received: learning_rate={self.learning_rate!r}")
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ValueError(f"Expected clipnorm > 0 or None. Received: clipnorm={self.clipnorm!r}")
        if self.monitor_mode not in MONITOR_MODES:
            raise ValueError(f"Expected monitor_mode in {MONITOR_MODES}. Received: monitor_mode={self.monitor_mode!r}")


def train(model, train_ds, valid_ds=None, *, loss, config: TrainConfig | None = None, callbacks=(),
          **overrides) -> dict:
    """Trains `model` (compiled here with Adam) and returns a summary dict.

    Args:
        model: a Keras model, usually a `SaliencyModel`, built under the
            distribution strategy it trains with (if any).
        train_ds, valid_ds: `tf.data.Dataset`s of `(x, y[, sample_weight])`
            batches; without `valid_ds` there is no early stopping. Seed the
            shuffle of `train_ds` for a resumed run to see the same batches.
        loss: the task loss, e.g. `MaskedSparseCrossentropy()`.
        callbacks: extra Keras callbacks, run after the NaN stop and before
            the checkpointing, logging and progress bar; the `resume_state`
            (name -> `tf.Variable`) of those that have one is checkpointed.
        config: a `TrainConfig`; keyword `overrides` replace its fields (or
            build one: `train(..., loss=l, out_dir="runs/x", epochs=5)`).

    Returns:
        `{"history": {metric: [per epoch]}, "epochs": completed epochs,
        "best_epoch": 1-based or None, "best_metric": `config.monitor`,
        "best_value": its value at the best epoch, "best_val_loss": the
        validation loss at the best epoch, "stopped_early", "final": the last
        epoch's metrics}`, history spanning resumed runs.

    Raises:
        TrainingDivergedError: at the first batch whose loss is not finite.
        TrainingInterrupted: on Ctrl-C, after saving a checkpoint.
        UserError: `out_dir` lacks the space for the checkpoints; or, with
            several workers, they disagree on where training starts, or one
            of them is lost.
    """
    config = dataclasses.replace(config, **overrides) if config else TrainConfig(**overrides)
    chief = distribution.is_chief(model.distribute_strategy)
    with distribution.worker_dir(config.out_dir, chief, copied=RESUME_STATE) as out_dir:
        config = dataclasses.replace(config, out_dir=out_dir, progress=config.progress and chief)
        try:
            return _train(model, train_ds, valid_ds, loss, config, callbacks)
        finally:
            # What training freed (step buffers, traced graphs) back to the OS before what comes next
            # (decoding the test split, exporting): 1,084 -> 1,001 MB after training at issue 20's sizes.
            release_freed_memory()


def _train(model, train_ds, valid_ds, loss, config, callbacks) -> dict:
    """`train` in the directory this worker writes to."""
    os.makedirs(config.out_dir, exist_ok=True)
    chief = distribution.is_chief(model.distribute_strategy)
    steps = config.steps_per_epoch or _count_batches(train_ds)
    with model.distribute_strategy.scope():
        model.compile(optimizer=keras.optimizers.Adam(_learning_rate(config, steps), global_clipnorm=config.clipnorm),
                      loss=loss)
    first_batch = next(iter(train_ds))
    _build(model, first_batch)
    state = TrainingState(model, config, steps, callbacks)
    if chief:
        _check_free_space(model, config)
    if config.resume:
        state.restore()
        if config.lr_schedule == "constant":
            model.optimizer.learning_rate = config.learning_rate  # the checkpoint holds the old one
    workers = _WorkerSync.of_several(model, state, first_batch)
    logger = _ScalarLogger(os.path.join(config.out_dir, LOG_DIR)) if chief else None
    cut = EndOfResumedEpoch(state, steps)
    # The extra callbacks before the state, so that its checkpoints hold what they did at that step or
    # epoch end; the sync after every callback that may stop training, and the cut after the sync.
    callbacks = [cut.undo, _StopOnNonFinite(), *callbacks, state,
                 *filter(None, [logger, config.progress and _ProgressBar(), workers]), cut]
    try:
        with _sigint_flag(workers.pressed if workers else state.interrupted), _lost_workers_reported(workers):
            _fit(model, train_ds, valid_ds, config, state, callbacks, first_batch)
    finally:
        if logger:
            logger.close()
    state.restore_best()
    return state.summary()


def _learning_rate(config: TrainConfig, steps: int):
    """Adam's learning rate: the number, or a schedule over the optimizer step (evaluated in the graph)."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    return BudgetedCosineDecay(config.learning_rate, decay_steps=config.epochs * steps, alpha=COSINE_FLOOR)


@keras.saving.register_keras_serializable(package="seq2seq")
class BudgetedCosineDecay(keras.optimizers.schedules.CosineDecay):
    """Keras' `CosineDecay`, whose tail a time budget compresses.

    `seq2seq.callbacks.TimeBudget` sets `time_fraction` (the share of the
    budget used, in [0, 1]). The curve is evaluated at `max(step, budget_step)`
    with `budget_step = decay_steps * max(0, (time_fraction - BUDGET_HOLD) /
    (1 - BUDGET_HOLD))`: through the first half of the budget the rate follows
    the cosine of the planned steps, then catches up so that a run the budget
    ends early still anneals to the floor by then. A run without a budget
    (`time_fraction` stays 0) follows `CosineDecay` exactly. (Evaluating at
    `time_fraction * decay_steps` from the start, the first rule, annealed a
    5-minute en→es run from its first epoch on and cost it 12 BLEU:
    docs/translation-quality.md.)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_fraction = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="time_fraction")

    def __call__(self, step):
        caught_up = tf.maximum(0.0, (self.time_fraction - BUDGET_HOLD) / (1.0 - BUDGET_HOLD))
        budget_step = tf.cast(caught_up * self.decay_steps, tf.float32)
        return super().__call__(tf.maximum(tf.cast(step, tf.float32), budget_step))


def _fit(model, train_ds, valid_ds, config, state, callbacks, first_batch):
    """Runs the remaining epochs on the batch stream, from where the checkpoint left it.

    One `fit` call reads one iterator over `train_ds.repeat()`, from the
    batch after the last one trained on: the stream an uninterrupted run reads,
    because `Dataset.shuffle` draws a new order each time an iterator over
    `train_ds` starts (a second iterator would draw other orders). A resumed
    epoch ends after the steps it had left (`EndOfResumedEpoch`).
    """
    if state.epochs_done >= config.epochs or state.stopped_early:
        return
    position = int(model.optimizer.iterations.numpy())  # batches consumed so far
    if position:
        print(f"Skipping the {position} batch(es) already trained on.")
    replicas = model.distribute_strategy.num_replicas_in_sync
    valid_ds = None if valid_ds is None else _with_known_length(_distributable(valid_ds, replicas))
    stream = _distributable(train_ds, replicas).repeat().skip(position)
    with distribution.fit_workarounds(model, first_batch), _built_from(model, first_batch):
        model.fit(stream, epochs=config.epochs, initial_epoch=state.epochs_done, steps_per_epoch=state.steps,
                  validation_data=valid_ds, callbacks=callbacks, shuffle=False, verbose=0)


@contextlib.contextmanager
def _built_from(model, batch):
    """Under a strategy of one worker and several replicas, `fit` and `evaluate` build from `batch`.

    Keras 3.15 first reads a batch of its own there, through a new iterator
    (over the training stream: another shuffle order drawn, so a resumed run
    would read other batches), and averages it over the replicas to learn the
    shapes, which fails when the replicas hold different numbers of examples.
    (Several workers: `distribution.fit_workarounds` does the same.)
    """
    strategy = model.distribute_strategy
    if strategy.num_replicas_in_sync <= 1 or distribution.worker_count(strategy) > 1:
        yield
        return

    def build(iterator=None, data_batch=None):
        with strategy.scope():
            model._symbolic_build(data_batch=batch)

    model._maybe_symbolic_build = build
    try:
        yield
    finally:
        del model._maybe_symbolic_build


def _with_known_length(dataset):
    """`dataset` with its number of batches stated: `fit` then validates on exactly those batches instead
    of reading until the data runs out, which Keras reports as "Your input ran out of data"."""
    count = int(dataset.cardinality().numpy())
    if count == tf.data.UNKNOWN_CARDINALITY:
        count = int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1).numpy())
    return dataset.apply(tf.data.experimental.assert_cardinality(count)) if count > 0 else dataset


def _distributable(dataset, replicas: int):
    """`dataset` ready to split between replicas (`distribution.with_distribution_options`),
    without the batches too small to give every replica an example (a replica with none fails
    inside `tf.distribute`); with one replica, `dataset` as is."""
    if replicas <= 1:
        return dataset

    def big_enough(*batch):
        return tf.shape(tf.nest.flatten(batch)[-1])[0] >= replicas

    return distribution.with_distribution_options(dataset.filter(big_enough))


def _build(model, batch):
    """Creates the model's and the optimizer's variables from `batch`, so a checkpoint can restore into them."""
    strategy = model.distribute_strategy
    with strategy.scope():
        if not model.built:
            x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
            model(x)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)


def _count_batches(dataset) -> int:
    """Batches in one pass of `dataset` (iterates it once when its cardinality is unknown)."""
    count = int(dataset.cardinality().numpy())
    if count == tf.data.INFINITE_CARDINALITY:
        raise ValueError("train_ds is infinite: set steps_per_epoch.")
    if count < 0:
        count = int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1).numpy())
    if count == 0:
        raise UserError("the training dataset is empty: no batch to train on")
    return count


def _check_free_space(model, config):
    """Refuses to start when `out_dir` cannot hold the checkpoints (the kept ones and the one being
    written, plus the best weights)."""
    variables = model.variables + model.optimizer.variables
    size = sum(math.prod(v.shape) * _item_bytes(v.dtype) for v in variables)
    needed, free = (config.keep_checkpoints + 2) * size, shutil.disk_usage(config.out_dir).free
    if free < needed:
        raise UserError(f"not enough space in {config.out_dir!r} for the checkpoints: {free:,} bytes free, "
                        f"{needed:,} needed; free some space or pass another output directory")


def _item_bytes(dtype) -> int:
    """Bytes per element of a variable; 0 for dtypes without a fixed size (strings)."""
    dtype = tf.as_dtype(dtype)
    return 0 if dtype == tf.string or dtype == tf.resource or dtype == tf.variant else dtype.size


@contextlib.contextmanager
def _sigint_flag(flag: threading.Event):
    """While active, the first Ctrl-C sets `flag` instead of raising; the second raises."""
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()
        print("\nCtrl-C: saving a checkpoint after this step (press again to stop without saving)",
              file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class _WorkerSync(keras.callbacks.Callback):
    """Keeps the workers of a cluster in step; runs after every other callback.

    After each batch, all workers stop if a callback stopped one, and all
    save and stop (at the next step) if Ctrl-C reached one: the workers must
    reach every collective operation, checkpoint saves included, together.
    """

    def __init__(self, strategy, interrupted: threading.Event):
        super().__init__()
        self.sum = distribution.WorkerSum(strategy)
        self.pressed = threading.Event()  # Ctrl-C on this worker, set by the signal handler
        self.interrupted = interrupted  # Ctrl-C on any worker, as of the last batch

    @classmethod
    def of_several(cls, model, state, first_batch):
        """The sync of a cluster's workers (None for one worker), once they agree on where training starts:
        every worker must see the chief's first batch and resume from its step."""
        strategy = model.distribute_strategy
        if distribution.worker_count(strategy) <= 1:
            return None
        sync = cls(strategy, state.interrupted)
        start = {"first training batch": distribution.fingerprint(first_batch),
                 "optimizer step to resume from": int(model.optimizer.iterations.numpy())}
        distribution.agree_with_chief(sync.sum, start, distribution.is_chief(strategy))
        return sync

    def on_train_batch_end(self, batch, logs=None):
        stop, pressed = distribution.any_worker(self.sum, self.model.stop_training, self.pressed.is_set())
        self.model.stop_training = stop
        if pressed:
            self.interrupted.set()


def _lost_workers_reported(workers):
    return distribution.lost_workers_reported() if workers else contextlib.nullcontext()


class _StopOnNonFinite(keras.callbacks.Callback):
    """Raises `TrainingDivergedError` at the first batch whose running loss is NaN or Inf."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get("loss")
        if value is None or math.isfinite(float(value)):
            return
        step = int(self.model.optimizer.iterations.numpy())
        terms = ", ".join(f"{k}={float(v):.4g}" for k, v in logs.items())
        raise TrainingDivergedError(
            f"loss became {float(value)} at optimizer step {step} (epoch {self.epoch + 1}, batch {batch + 1}): "
            f"{terms}. Lower the learning rate, set clipnorm or the saliency weight lower; "
            "training can resume from the last checkpoint."
        )


class _ProgressBar(keras.callbacks.Callback):
    """A tqdm bar per epoch with the loss terms and tokens/s (from the model's `tokens` metric).

    A resumed epoch's bar starts at the steps done before the interruption;
    the saliency penalty is shown only for a model that has one (weight > 0).
    """

    # bleu, chrf (`SelectionScorer`) and swapped_* (`seq2seq.shortcut_validation.SwappedValidation`): validation only.
    SHOWN = ("loss", "task_loss", "saliency_penalty", "accuracy", "bleu", "chrf", "swapped_loss", "swapped_accuracy")

    def on_train_begin(self, logs=None):
        with_penalty = getattr(self.model, "saliency_weight", 0) > 0
        self.shown = [name for name in self.SHOWN if with_penalty or name != "saliency_penalty"]

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm.auto import tqdm

        total = self.params.get("steps") if self.params else None
        done = int(self.model.optimizer.iterations.numpy()) - epoch * total if total else 0
        self.bar = tqdm(total=total, initial=done, desc=f"epoch {epoch + 1}/{self.params.get('epochs', '?')}",
                        unit="batch", leave=True, dynamic_ncols=True)
        self.start, self.tokens_before = time.perf_counter(), None

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        if self.tokens_before is None:  # the epoch's (or the resumed epoch's) tokens before this run's steps
            self.tokens_before = float(logs.get("tokens", 0.0))
            self.start = time.perf_counter()
        self.bar.update(1)
        self.bar.set_postfix_str(self._describe(logs), refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.set_postfix_str(self._describe(logs or {}, validation=True))
        self.bar.close()

    def _describe(self, logs, validation=False):
        parts = [f"{k}={float(logs[k]):.4f}" for k in self.shown if k in logs]
        if validation:
            parts += [f"val_{k}={float(logs['val_' + k]):.4f}" for k in self.shown if "val_" + k in logs]
        tokens = float(logs.get("tokens", 0.0)) - (self.tokens_before or 0.0)
        if self.tokens_before is not None and tokens > 0:
            parts.append(f"tok/s={tokens / max(time.perf_counter() - self.start, 1e-9):,.0f}")
        return " ".join(parts)


class _ScalarLogger(keras.callbacks.Callback):
    """Epoch metrics as TensorBoard scalars in `log_dir/train` and `log_dir/validation`.

    Writes the summaries with TensorFlow's own `tf.summary.write` and the
    scalars plugin's metadata, so the `tensorboard` package is needed only to
    view the logs, not to write them.
    """

    METADATA = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    ).SerializeToString()

    def __init__(self, log_dir):
        super().__init__()
        self.writers = {
            split: tf.summary.create_file_writer(os.path.join(log_dir, split)) for split in ("train", "validation")
        }

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            split, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            with self.writers[split].as_default():
                tf.summary.write(f"epoch_{tag}", tf.constant(float(value), tf.float32), step=epoch + 1,
                                 metadata=self.METADATA)
        for writer in self.writers.values():
            writer.flush()

    def close(self):
        for writer in self.writers.values():
            writer.close()
