"""The training driver's resumable state: checkpoints, early stopping and the history.

`TrainingState` is the callback behind `seq2seq.training.train`'s guarantees:
a checkpoint each epoch and every `checkpoint_every_steps` optimizer steps
under `out_dir/checkpoints`; the best weights under `out_dir/best`; the
per-epoch history in `out_dir/history.json`, written through a rename.
`restore` loads the newest checkpoint that loads (an older one when the newest
is torn). The last `keep_checkpoints` checkpoints stay on disk (what
`seq2seq.runs.averaging` averages).

Early stopping and the best weights follow `config.monitor`, an epoch log
(`val_loss` by default; `val_bleu` or `val_chrf` when a selection callback
such as `seq2seq.callbacks.SelectionScorer` adds it), lower or higher being
better as `config.monitor_mode` says ("min" or "max").

A checkpoint holds everything an uninterrupted run carries from one step to
the next, so that a resumed run continues it exactly: the weights, the
optimizer (its step and moments), the seed-generator states of the model's
layers (dropout masks), the epoch and the position in it, the early-stopping
state, the running sums of the epoch's metrics (so the history of an
interrupted epoch covers all of its steps), and the `resume_state` variables
of the other callbacks (e.g. `CollapseMonitor`'s collapsed checks in a row).
The data position is the optimizer step (see `seq2seq.training`).
"""

import json
import math
import os
import sys
import threading

import keras
import tensorflow as tf

from seq2seq.atomic import atomic_write_json
from seq2seq.errors import UserError

CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"
HISTORY_FILE = "history.json"


class TrainingDivergedError(UserError):
    """The loss became NaN or Inf; the message names the step."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training after saving `checkpoint` at optimizer step `step`."""

    def __init__(self, checkpoint: str, step: int):
        super().__init__(f"interrupted at optimizer step {step}; checkpoint saved to {checkpoint}")
        self.checkpoint = checkpoint
        self.step = step



class TrainingState(keras.callbacks.Callback):
    """Checkpoints each epoch and every N steps, early-stops on `config.monitor`, keeps the best weights and the history.

    `callbacks`: the other callbacks of the run; the `resume_state` dict
    (name -> `tf.Variable`) of those that have one is checkpointed too. Build
    the model and its optimizer first: the checkpoint lists their variables.
    """

    def __init__(self, model, config, steps: int, callbacks=()):
        super().__init__()
        self.config = config
        self.steps = steps  # optimizer steps per epoch
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        # Steps done in the epoch after `epoch` (0 at an epoch's end).
        self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
        # The best monitored value so far, negated when higher is better ("max"): lower is always better here.
        self.best_val_loss = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_val_loss")
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="wait")
        weights = {id(v) for v in model.weights}
        # The running sums behind the epoch's logs (loss, task_loss, tokens, ...); Keras zeroes them
        # at each epoch's start, so a resumed epoch puts the checkpoint's back (`on_epoch_begin`).
        self.epoch_metrics = list(model.metrics_variables)
        self._resumed_metrics = None
        self.checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=model.optimizer,
            epoch=self.epoch,
            step_in_epoch=self.step_in_epoch,
            best_val_loss=self.best_val_loss,
            best_epoch=self.best_epoch,
            wait=self.wait,
            # The layers' seed-generator states (dropout): the model's variables that are not weights.
            rng=_group(v for v in model.variables if id(v) not in weights),
            epoch_metrics=_group(self.epoch_metrics),
            callbacks=tf.train.Checkpoint(**{
                f"{i}_{name}": variable for i, callback in enumerate(callbacks)
                for name, variable in sorted(getattr(callback, "resume_state", {}).items())
            }),
        )
        directory = os.path.join(config.out_dir, CHECKPOINT_DIR)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=config.keep_checkpoints)
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=model), os.path.join(config.out_dir, BEST_DIR), max_to_keep=1
        )
        self.history_path = os.path.join(config.out_dir, HISTORY_FILE)
        self.history: dict[str, list[float]] = {}
        self.stopped_early = False
        self.interrupted = threading.Event()
        self._epoch_index = 0

    @property
    def epochs_done(self) -> int:
        return int(self.epoch.numpy())

    @property
    def epoch_step(self) -> int:
        return int(self.step_in_epoch.numpy())

    def restore(self):
        """Loads the newest checkpoint that loads (an older one if the newest is torn)."""
        path = self._restore_newest()
        if path is None:
            return
        if os.path.exists(self.history_path):
            with open(self.history_path) as f:
                history = json.load(f)
            # The history may be ahead of an older checkpoint: keep what the checkpoint has done.
            self.history = {name: values[: self.epochs_done] for name, values in history.items()}
        if self.epoch_step:
            self._resumed_metrics = [v.numpy() for v in self.epoch_metrics]
        patience = self.config.patience
        self.stopped_early = patience is not None and int(self.wait.numpy()) >= patience
        step = int(self.checkpoint.optimizer.iterations.numpy())
        print(f"Resuming from {path}: {self.epochs_done} epoch(s) and {self.epoch_step} step(s) of the next done, "
              f"optimizer step {step}.")

    def _restore_newest(self):
        paths = list(reversed(self.manager.checkpoints))
        for path in paths:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
                return path
            except (tf.errors.OpError, ValueError, AssertionError) as error:
                print(f"warning: checkpoint {path} does not load ({type(error).__name__}); trying an older one",
                      file=sys.stderr)
        if paths:
            raise UserError(f"no checkpoint in {self.manager.directory} loads; move that directory away "
                            "to start over, or pass another output directory")
        return None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_index = epoch
        if self._resumed_metrics is not None:  # the interrupted epoch: its sums so far
            for variable, value in zip(self.epoch_metrics, self._resumed_metrics):
                variable.assign(value)
            self._resumed_metrics = None

    def on_train_batch_end(self, batch, logs=None):
        self.step_in_epoch.assign_add(1)
        if self.epoch_step >= self.steps:
            return  # the epoch's last step: on_epoch_end saves, with the validation results
        step = int(self.model.optimizer.iterations.numpy())
        if self.interrupted.is_set():
            raise TrainingInterrupted(self._save(step), step)
        every = self.config.checkpoint_every_steps
        if every and step % every == 0:
            self._save(step)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for name, value in logs.items():
            self.history.setdefault(name, []).append(float(value))
        self.epoch.assign(epoch + 1)
        self.step_in_epoch.assign(0)
        monitored = logs.get(self.config.monitor)
        if monitored is not None:
            self._early_stopping(epoch, float(monitored))
        atomic_write_json(self.history_path, self.history)
        step = int(self.model.optimizer.iterations.numpy())
        path = self._save(step)
        if self.interrupted.is_set():
            raise TrainingInterrupted(path, step)

    def _save(self, step) -> str:
        """Saves a checkpoint numbered by the optimizer step, after checking the weights are finite."""
        if not all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in self.model.trainable_variables):
            raise TrainingDivergedError(
                f"the weights became NaN or Inf by optimizer step {step} (epoch {self._epoch_index + 1}); "
                "not saving them. Lower the learning rate or set clipnorm; training can resume from "
                f"the last checkpoint ({self.manager.latest_checkpoint})."
            )
        return self.manager.save(checkpoint_number=step)

    def _early_stopping(self, epoch, value):
        score = value if self.config.monitor_mode == "min" else -value  # lower is better
        if score < float(self.best_val_loss.numpy()) - self.config.min_delta:
            self.best_val_loss.assign(score)
            self.best_epoch.assign(epoch + 1)
            self.wait.assign(0)
            self.best_manager.save(checkpoint_number=epoch + 1)
            return
        self.wait.assign_add(1)
        if self.config.patience is not None and int(self.wait.numpy()) >= self.config.patience:
            self.stopped_early = True
            self.model.stop_training = True
            print(f"Early stopping after epoch {epoch + 1}: {self.config.monitor} has not improved for "
                  f"{self.config.patience} epoch(s); best {self.best_value:.4f} "
                  f"at epoch {int(self.best_epoch.numpy())}.")

    @property
    def best_value(self) -> float:
        """The best value of `config.monitor` so far (inf, or -inf for "max", before any)."""
        score = float(self.best_val_loss.numpy())
        return score if self.config.monitor_mode == "min" else -score

    def restore_best(self):
        """Loads the weights of the epoch with the best `config.monitor`, if any was recorded."""
        if self.best_manager.latest_checkpoint is not None and int(self.best_epoch.numpy()) < int(self.epoch.numpy()):
            self.best_manager.checkpoint.restore(self.best_manager.latest_checkpoint).expect_partial()

    def summary(self) -> dict:
        best_epoch = int(self.best_epoch.numpy()) or None
        val_losses = self.history.get("val_loss", [])
        best_val_loss = val_losses[best_epoch - 1] if best_epoch and len(val_losses) >= best_epoch else None
        return {
            "history": self.history,
            "epochs": int(self.epoch.numpy()),
            "best_epoch": best_epoch,
            "best_metric": self.config.monitor,
            "best_value": self.best_value if best_epoch else None,
            # The validation loss of the best epoch (the best value itself when monitoring val_loss).
            "best_val_loss": self.best_value if best_epoch and self.config.monitor == "val_loss" else best_val_loss,
            "stopped_early": self.stopped_early,
            "final": {name: values[-1] for name, values in self.history.items() if values},
        }


class EndOfResumedEpoch(keras.callbacks.Callback):
    """Ends the resumed epoch after the steps it had left, inside one `fit` call.

    `fit` makes every epoch `fit_steps` steps long, the resumed one included,
    so that one `fit` call, and so one iterator over the batch stream, serves
    the whole run. After the resumed epoch's last step this callback, last in
    the list (after any callback that may stop training), sets `stop_training`
    to end `fit`'s epoch; its `undo` callback, first in the list, puts back
    what the other callbacks had asked for before any `on_epoch_end` runs.
    """

    def __init__(self, state: TrainingState, fit_steps: int):
        super().__init__()
        self.state = state
        self.fit_steps = fit_steps
        self.requested = None  # stop_training as the other callbacks left it, while the cut holds
        self.undo = _UndoEpochEnd(self)

    def on_train_batch_end(self, batch, logs=None):
        if self.state.epoch_step >= self.state.steps and batch + 1 < self.fit_steps:
            self.requested = self.model.stop_training
            self.model.stop_training = True


class _UndoEpochEnd(keras.callbacks.Callback):
    """`EndOfResumedEpoch`'s other half: restores `stop_training` at the cut epoch's end."""

    def __init__(self, cut: EndOfResumedEpoch):
        super().__init__()
        self.cut = cut

    def on_epoch_end(self, epoch, logs=None):
        if self.cut.requested is not None:
            self.model.stop_training, self.cut.requested = self.cut.requested, None


def _group(variables) -> tf.train.Checkpoint:
    """`variables` as one checkpoint node, named by position."""
    return tf.train.Checkpoint(**{str(i): variable for i, variable in enumerate(variables)})
