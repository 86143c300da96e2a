"""Checkpoint averaging: a run directory whose weights are the mean of a run's last N step checkpoints.

    seq2seq average --model runs/en-fr --last 5 --out runs/en-fr-avg

A translator run keeps its last `train.keep_checkpoints` checkpoints under
`checkpoints/` (one each epoch, and every `train.checkpoint_every_steps`
optimizer steps). `average_run` reads the model weights of the newest `last`
of them (not the optimizer's moments, nor the training state), takes their
element-wise mean in float64, and writes a new run directory: the run's
`config.toml`, `tokenizer.model` and `casing.json` copied, a `model.keras` with
the mean weights, and `averaged.json` naming the checkpoints averaged. That
directory is a run like any other for `seq2seq translate | evaluate | export
--model` (it has no checkpoints of its own: it is not for resuming training).

`average_and_evaluate` also scores the averaged run on the run's test split
next to the run's own score: the hook a recipe calls to report BLEU with and
without averaging. Why and when averaging helps: docs/checkpoints.md.
"""

import json
import shutil
from pathlib import Path

from seq2seq.errors import UserError
from seq2seq.runs.directory import CONFIG_FILE
from seq2seq.training_state import CHECKPOINT_DIR
from seq2seq.runs.translation import CASING_FILE, METRICS_FILE, MODEL_FILE, TOKENIZER_FILE

AVERAGED_FILE = "averaged.json"
# What an averaged run copies from its run as is (casing.json when the run has one).
COPIED_FILES = (CONFIG_FILE, TOKENIZER_FILE, CASING_FILE)
_PREFIX = "ckpt-"


def step_checkpoints(run_dir) -> list[tuple[int, str]]:
    """`(optimizer step, checkpoint path)` of each checkpoint kept in `run_dir/checkpoints`, oldest first.

    Read from the files on disk (`ckpt-<step>.index`), not from the
    `checkpoint` state file, so a run directory moved elsewhere still lists them.
    """
    found = []
    for index in (Path(run_dir) / CHECKPOINT_DIR).glob(f"{_PREFIX}*.index"):
        step = index.name[len(_PREFIX): -len(".index")]
        if step.isdigit():
            found.append((int(step), str(index.with_suffix(""))))
    return sorted(found)


def last_checkpoints(run_dir, last: int) -> list[tuple[int, str]]:
    """The newest `last` of `step_checkpoints(run_dir)`, oldest first.

    Raises:
        ValueError: `last` < 1.
        UserError: the run keeps fewer than `last`; the message says how many it
            has and which settings keep more.
    """
    if last < 1:
        raise ValueError(f"Expected last >= 1 checkpoints to average. Received: last={last!r}")
    kept = step_checkpoints(run_dir)
    if last > len(kept):
        steps = ", ".join(str(step) for step, _ in kept) or "none"
        raise UserError(
            f"cannot average the last {last} checkpoints: {Path(run_dir) / CHECKPOINT_DIR} keeps {len(kept)} "
            f"(optimizer steps: {steps}); average at most {len(kept)}, or train with "
            f"--set train.keep_checkpoints={last} (and train.checkpoint_every_steps to save them more often "
            "than once an epoch)"
        )
    return kept[-last:]


def mean_weights(model, paths: list[str]) -> list:
    """The element-wise means of `model.weights`' values in the checkpoints `paths`, in that order.

    Each checkpoint is one `seq2seq.training_state.TrainingState` saved (a
    `tf.train.Checkpoint` of the model and of its optimizer); only the model's
    weights are read, into `model` (built, of the run's class and config),
    whose weights are overwritten. Some weights (the recurrent layers', held
    in lists) are reachable in a checkpoint only through the optimizer's list
    of trainable variables, which training builds from `model.trainable_variables`
    in that order: they are read from there.
    Before each read every float weight is set to NaN, and a weight still NaN
    after it is an error: no weight is silently left out. The means are
    float64 NumPy arrays; a weight that is not floating point gives the last
    checkpoint's value.
    """
    import numpy as np
    import tensorflow as tf

    if not paths:
        raise ValueError("Expected at least one checkpoint to average. Received: paths=[]")
    floating = [np.issubdtype(np.dtype(weight.dtype), np.floating) for weight in model.weights]
    sums = [np.zeros(weight.shape, np.float64) for weight in model.weights]
    optimizer = tf.train.Checkpoint(_trainable_variables=list(model.trainable_variables))
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    for path in paths:
        for weight, is_float in zip(model.weights, floating):
            if is_float:
                weight.assign(tf.fill(weight.shape, tf.constant(np.nan, weight.dtype)))
        try:
            checkpoint.restore(path).expect_partial()
        except (tf.errors.OpError, ValueError, AssertionError) as error:
            detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise UserError(f"checkpoint {path} does not load ({detail}); average fewer checkpoints with --last") \
                from None
        missing = [weight.path for weight, is_float in zip(model.weights, floating)
                   if is_float and np.isnan(weight.numpy()).any()]
        if missing:
            raise UserError(f"checkpoint {path} lacks weights of the run's model ({', '.join(missing[:3])}"
                            f"{', ...' if len(missing) > 3 else ''}); was it written by another run?")
        for index, weight in enumerate(model.weights):
            sums[index] = sums[index] + weight.numpy() if floating[index] else weight.numpy()
    return [total / len(paths) if is_float else total for total, is_float in zip(sums, floating)]


def assign_weights(model, values) -> None:
    """Sets `model.weights` to `values` (in that order), each cast to its weight's dtype."""
    for weight, value in zip(model.weights, values, strict=True):
        weight.assign(value.astype(weight.dtype))


def average_run(run_dir, out_dir, last: int, *, log=print) -> Path:
    """Writes to `out_dir` a run whose weights are the mean of `run_dir`'s last `last` step checkpoints.

    Args:
        run_dir: a trained translator run directory with its `checkpoints/`.
        out_dir: the averaged run's directory; must not exist, or be empty.
        last: how many of the newest checkpoints to average (1 = the last
            checkpoint's weights alone, which are not always model.keras's:
            model.keras holds the best epoch's).

    Returns:
        `out_dir` as a Path. Raises `UserError` when the run keeps fewer than
        `last` checkpoints or `out_dir` holds files.
    """
    from seq2seq.runs.translation import load_run

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"{out_dir} already exists and is not an empty directory; pass a new --out directory")
    run = load_run(run_dir)  # the model to average into, and a check that the run is whole
    chosen = last_checkpoints(run_dir, last)
    assign_weights(run.translator, mean_weights(run.translator, [path for _, path in chosen]))
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in COPIED_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, out_dir / name)
    run.translator.save(out_dir / MODEL_FILE)
    record = {"run": str(run_dir), "steps": [step for step, _ in chosen], "checkpoints": [p for _, p in chosen]}
    (out_dir / AVERAGED_FILE).write_text(json.dumps(record, indent=2) + "\n")
    log(f"averaged the checkpoints of optimizer steps {', '.join(map(str, record['steps']))} into {out_dir}")
    return out_dir


def average_and_evaluate(run_dir, out_dir, last: int, *, progress: bool = False, log=print) -> dict:
    """`average_run`, then the averaged run's test-split scores next to the run's own.

    The test split is the run's (its config's corpus and split seed). The run's
    own score is read from its `metrics.json` (`train_run` wrote it with the
    same decoding settings), or computed when that file is missing.

    Returns (and writes to `out_dir/metrics.json`):
        `{"averaged_steps": [optimizer steps], "test": averaged run's metrics,
        "test_without_averaging": the run's}`, each metrics dict as
        `seq2seq.runs.translation.evaluate_pairs` returns it (bleu, chrf, ...).
    """
    from seq2seq.runs.translation import evaluate_pairs, load_run, load_splits

    out_dir = average_run(run_dir, out_dir, last, log=log)
    averaged = load_run(out_dir)
    test = load_splits(averaged.config, log).test
    saved = Path(run_dir) / METRICS_FILE
    before = json.loads(saved.read_text()).get("test") if saved.is_file() else None
    if before is None:
        before = evaluate_pairs(load_run(run_dir), test, progress=progress)
    metrics = {
        "averaged_steps": json.loads((out_dir / AVERAGED_FILE).read_text())["steps"],
        "test": evaluate_pairs(averaged, test, progress=progress),
        "test_without_averaging": before,
    }
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def averaged_scores(run_dir, out_dir, last: int, *, log=print) -> dict | None:
    """`average_and_evaluate`'s result, read back from `out_dir` when an earlier call wrote it,
    or None when the run keeps fewer than `last` checkpoints (a run that stopped in its first epochs)."""
    saved = Path(out_dir) / METRICS_FILE
    if saved.is_file():
        return json.loads(saved.read_text())
    if len(step_checkpoints(run_dir)) < last:
        log(f"not averaging: {run_dir} keeps fewer than {last} checkpoints")
        return None
    return average_and_evaluate(run_dir, out_dir, last, log=log)
