"""Training callbacks: `CollapseMonitor` watches decoded outputs for end-token collapse;
`SelectionScorer` scores a validation sample's translations (BLEU, chrF) each epoch, for
choosing the best checkpoint; `TimeBudget` stops training after a wall-clock budget. (The
learning-rate schedule is the training driver's: `seq2seq.training.TrainConfig.lr_schedule`.)"""

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence

import keras
import tensorflow as tf

from tensorflow.core.framework import summary_pb2

from seq2seq.diagnostics import Diagnosis, Thresholds, analyze_targets, diagnose
from seq2seq.tokens import END_ID, PAD_ID, START_ID

logger = logging.getLogger(__name__)


class CollapseMonitor(keras.callbacks.Callback):
    """Decodes a fixed probe set during training; warns, or stops, on collapse.

    Every `every_n_steps` training steps, or at each epoch's end when
    `every_n_steps` is None, calls `decode_fn(probe_sources)` and diagnoses its
    outputs against `probe_references` with `seq2seq.diagnostics.diagnose`. A
    `collapsed` verdict is logged as a warning (logger `seq2seq.callbacks`)
    with its reasons and fixes, `at_risk` at INFO level. With
    `stop_on_collapse=True`, training stops (`model.stop_training = True`) once
    `patience` checks in a row say `collapsed`. An epoch-end check also adds
    `probe_empty_rate` and `probe_first_token_end_rate` to the epoch's logs.

    Decoding costs time: keep the probe set small (a few dozen examples).

    Steps are the optimizer's (`model.optimizer.iterations`), so a resumed run
    checks at the same steps as an uninterrupted one; `resume_state` (the
    collapsed checks in a row) is what `seq2seq.training.train` checkpoints.

    Args:
        decode_fn: `decode_fn(probe_sources) -> list`, one output per probe:
            token-id lists (with END) or strings.
        probe_sources: the probes' model inputs, passed to `decode_fn` as is.
        probe_references: the probes' expected outputs, of `decode_fn`'s kind.
        every_n_steps: check every this many training steps; None: each epoch.
        stop_on_collapse: stop training after `patience` collapsed checks in a row.
        patience: collapsed checks in a row before stopping (early training
            often passes through a short collapse that more steps undo).
        targets: the training targets, analysed once here so that the fixes
            carry the recommended end-token weight; None to skip.
        padding_masked: whether the training masks padding; None if unknown.
        thresholds: where the verdict turns; `Thresholds()` by default.
        start_id, end_id, pad_id: special ids of the outputs and targets.

    Attributes:
        diagnoses: `(step, Diagnosis)` of every check, in order.
        collapsed_in_a_row: collapsed checks since the last other verdict.
        resume_state: `{"collapsed_in_a_row": tf.Variable}`, for the checkpoints.
    """

    def __init__(
        self,
        decode_fn: Callable,
        probe_sources,
        probe_references: Sequence,
        every_n_steps: int | None = None,
        stop_on_collapse: bool = False,
        patience: int = 2,
        targets: Iterable | None = None,
        padding_masked: bool | None = None,
        thresholds: Thresholds | None = None,
        start_id: int = START_ID,
        end_id: int = END_ID,
        pad_id: int = PAD_ID,
    ):
        super().__init__()
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(
                f"`every_n_steps` must be None or >= 1. Received: every_n_steps={every_n_steps}"
            )
        if patience < 1:
            raise ValueError(f"`patience` must be >= 1. Received: patience={patience}")
        self.decode_fn = decode_fn
        self.probe_sources = probe_sources
        self.probe_references = list(probe_references)
        self.every_n_steps = every_n_steps
        self.stop_on_collapse = stop_on_collapse
        self.patience = patience
        self.thresholds = thresholds or Thresholds()
        self.special_ids = dict(start_id=start_id, end_id=end_id, pad_id=pad_id)
        self.target_stats = None
        if targets is not None:
            self.target_stats = analyze_targets(
                targets, padding_masked=padding_masked, end_id=end_id, pad_id=pad_id
            )
        self.diagnoses: list[tuple[int, Diagnosis]] = []
        self.resume_state = {"collapsed_in_a_row": tf.Variable(0, dtype=tf.int64, trainable=False)}
        self._step = 0  # the optimizer step, as of the last batch

    @property
    def collapsed_in_a_row(self) -> int:
        return int(self.resume_state["collapsed_in_a_row"].numpy())

    def on_train_begin(self, logs=None):
        self._step = self._optimizer_step()

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution > 1 Keras calls this once per execution: a check is due
        # when a multiple of every_n_steps was passed since the last call.
        previous, self._step = self._step, self._optimizer_step()
        n = self.every_n_steps
        if n is not None and self._step // n > previous // n:
            self.check()

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_steps is not None:
            return
        diagnosis = self.check()
        if logs is not None:
            logs["probe_empty_rate"] = diagnosis.outputs.empty_rate
            logs["probe_first_token_end_rate"] = diagnosis.outputs.first_token_end_rate

    def check(self) -> Diagnosis:
        """Decodes the probes now, records and reports the diagnosis, stops if due."""
        outputs = list(self.decode_fn(self.probe_sources))
        diagnosis = diagnose(
            outputs,
            self.probe_references,
            self.target_stats,
            thresholds=self.thresholds,
            **self.special_ids,
        )
        self.diagnoses.append((self._step, diagnosis))
        self._report(diagnosis)
        return diagnosis

    def _optimizer_step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _report(self, diagnosis: Diagnosis) -> None:
        collapsed = self.resume_state["collapsed_in_a_row"]
        if diagnosis.verdict != "collapsed":
            collapsed.assign(0)
            if diagnosis.verdict == "at_risk":
                logger.info(
                    "Probe outputs at risk of collapse at step %d: %s",
                    self._step,
                    "; ".join(diagnosis.reasons),
                )
            return
        collapsed.assign_add(1)
        logger.warning(
            "End-token collapse on the probe set at step %d (%d check(s) in a row).\n"
            "Why:\n  - %s\nFixes:\n  - %s",
            self._step,
            self.collapsed_in_a_row,
            "\n  - ".join(diagnosis.reasons),
            "\n  - ".join(diagnosis.fixes),
        )
        if self.stop_on_collapse and self.collapsed_in_a_row >= self.patience:
            logger.warning(
                "Stopping training: collapsed %d checks in a row.", self.collapsed_in_a_row
            )
            self.model.stop_training = True


class SelectionScorer(keras.callbacks.Callback):
    """Translates a fixed validation sample at each epoch's end; adds its BLEU and chrF to the logs.

    Calls `decode_fn(sources)` (detokenized strings, one per source) and
    scores them against `references` with `seq2seq.evaluation.evaluate_translations`
    (sacreBLEU, 0-100), adding `val_bleu` and `val_chrf` to the epoch's logs.
    Placed before `seq2seq.training_state.TrainingState` (as `train`'s extra
    callbacks are), it lets the best checkpoint and early stopping follow
    either (`TrainConfig(monitor="val_bleu", monitor_mode="max")`); the history
    and the TensorBoard scalars (`validation/epoch_bleu`, `epoch_chrf`) record
    them. With `log_dir`, the first `samples` sources, references and
    translations also go to TensorBoard as a text table (tag `translations`,
    step = epochs done), in `log_dir/validation`, and with `picture_fn` as well,
    the picture it draws of them (tag `attention`: an attention heatmap).

    The scores are a function of the weights alone (a deterministic decoding
    of fixed sentences), so the callback holds no state of its own: the best
    value and the epochs without improvement are `TrainingState`'s, which
    checkpoints them, and a resumed run scores as an uninterrupted one.

    Args:
        decode_fn: `decode_fn(sources) -> list[str]`, e.g. greedy translations.
        sources: the sample's source texts.
        references: one reference translation per source.
        log_dir: TensorBoard log root (the run's `logs/`); None = no text.
        samples: sentences shown as TensorBoard text each epoch.
        picture_fn: `picture_fn(sources) -> (png bytes, width, height)` for the
            first `samples` sources; None = no picture.
    """

    TEXT_METADATA = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text")
    ).SerializeToString()
    IMAGE_METADATA = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="images")
    ).SerializeToString()

    def __init__(self, decode_fn: Callable, sources: Sequence[str], references: Sequence[str],
                 log_dir: str | None = None, samples: int = 3, picture_fn: Callable | None = None):
        super().__init__()
        self.sources, self.references = list(sources), list(references)
        if not self.sources or len(self.sources) != len(self.references):
            raise ValueError("Expected one reference per source, and at least one source. Received: "
                             f"{len(self.sources)} sources and {len(self.references)} references")
        if samples < 0:
            raise ValueError(f"Expected samples >= 0. Received: samples={samples!r}")
        self.decode_fn = decode_fn
        self.log_dir = log_dir
        self.samples = samples
        self.picture_fn = picture_fn
        self.last_translations: list[str] = []  # of the last epoch's end
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        from seq2seq.evaluation import evaluate_translations

        self.last_translations = [str(text) for text in self.decode_fn(self.sources)]
        scores = evaluate_translations(self.last_translations, self.references)
        if logs is not None:
            logs["val_bleu"], logs["val_chrf"] = scores["bleu"], scores["chrf"]
        if self.log_dir and self.samples:
            self._write_samples(epoch + 1)

    def sample_table(self) -> str:
        """The first `samples` sources, references and last translations as a Markdown table."""
        def cell(text):
            return text.replace("|", "\\|").replace("\n", " ") or " "

        rows = ["| source | reference | translation |", "|---|---|---|"]
        rows += [f"| {cell(s)} | {cell(r)} | {cell(t)} |" for s, r, t in
                 list(zip(self.sources, self.references, self.last_translations))[: self.samples]]
        return "\n".join(rows)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write_samples(self, step: int) -> None:
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "validation"))
        with self._writer.as_default():
            tf.summary.write("translations", tf.constant(self.sample_table()), step=step,
                             metadata=self.TEXT_METADATA)
            if self.picture_fn is not None:
                png, width, height = self.picture_fn(self.sources[: self.samples])
                # The images plugin's layout: [width, height, encoded image...] as strings.
                tf.summary.write("attention", tf.constant([str(width), str(height), png]), step=step,
                                 metadata=self.IMAGE_METADATA)
        self._writer.flush()


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `seconds` of wall-clock time have passed since `on_train_begin`.

    The check runs after every batch; the epoch in progress ends early, so the
    usual end-of-epoch work (validation, checkpoint) still happens. A learning
    rate schedule with a `time_fraction` variable (the driver's cosine) is told
    the share of the budget used after each batch, so it anneals by the end of
    the budget even when the epochs would last longer.
    """

    def __init__(self, seconds: float):
        super().__init__()
        if not seconds > 0:
            raise ValueError(f"Expected a positive time budget. Received: seconds={seconds!r}")
        self.seconds = float(seconds)
        self.exhausted = False
        self._started = None

    def on_train_begin(self, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        fraction = (time.perf_counter() - self._started) / self.seconds
        schedule = getattr(self.model.optimizer, "_learning_rate", None)
        if hasattr(schedule, "time_fraction"):
            schedule.time_fraction.assign(min(1.0, fraction))
        if fraction >= 1.0:
            self.exhausted = True
            self.model.stop_training = True
