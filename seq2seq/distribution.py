"""Training on several devices or machines: the strategy, who writes what, and keeping workers in step.

Under "multiworker" (`tf.distribute.MultiWorkerMirroredStrategy`) every
worker runs the same command on the same data, and each optimizer step is one
global batch split between all the replicas of all the workers. The workers
must then do everything that talks to the others (variable creation, steps,
checkpoint saves) at the same points, and decide alike whether to stop:

- the chief (the "chief" task of `TF_CONFIG`, else worker 0) writes the run
  directory; every other worker writes to a private temporary directory
  (`worker_dir`), deleted at the end, because saving a checkpoint involves
  every worker but only one may write the real one;
- the batches are sharded by data (`with_distribution_options`): each worker
  builds the whole stream and keeps its own slice of each global batch;
- Ctrl-C on any worker, or a callback stopping training on one, stops all of
  them after the same step (`any_worker`), and a run refuses to start when the
  workers do not see the same first batch or resume from the same step
  (`agree_with_chief`).

This module imports TensorFlow only inside the functions that need it, so the
CLI can ask `is_chief_task` before TensorFlow starts.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from seq2seq.errors import UserError

# The strategies `distribution_strategy` builds; the run config validates `train.strategy` against them.
STRATEGIES = ("none", "mirrored", "multiworker")
_CREATED = {}  # the multiworker strategy: TensorFlow allows one per process
_PRIVATE_DIRS = {}  # a worker's private directory -> the run directory it stands for


def distribution_strategy(name: str):
    """The `tf.distribute` strategy called `name`: "none", "mirrored" or "multiworker".

    "mirrored" replicates over all local devices (GPUs, or the logical CPUs
    configured before TensorFlow starts); "multiworker" reads the cluster from
    the `TF_CONFIG` environment variable, must be created before any other
    TensorFlow work, and returns once every worker of the cluster has started.
    Build the model under `strategy.scope()`; `train` then splits each batch
    between the replicas.
    """
    import tensorflow as tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        _read_tf_config()
        if name not in _CREATED:
            _CREATED[name] = tf.distribute.MultiWorkerMirroredStrategy()
        return _CREATED[name]
    raise ValueError(f"Expected one of {STRATEGIES}. Received: name={name!r}")


def _read_tf_config() -> dict:
    if "TF_CONFIG" not in os.environ:
        raise UserError("--strategy multiworker needs the TF_CONFIG environment variable "
                        "(the cluster and this worker's task); see the README")
    try:
        tf_config = json.loads(os.environ["TF_CONFIG"])
        tf_config["cluster"], tf_config["task"]["type"], tf_config["task"]["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"TF_CONFIG is not a cluster and a task ({type(error).__name__}: {error}); "
                        f"see the README. Received: TF_CONFIG={os.environ['TF_CONFIG']!r}") from None
    return tf_config


def is_chief_task() -> bool:
    """Whether this process is the chief of the `TF_CONFIG` cluster, read without TensorFlow."""
    tf_config = _read_tf_config()
    task = tf_config["task"]
    if "chief" in tf_config["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and int(task["index"]) == 0


def is_chief(strategy) -> bool:
    """Whether this process writes the run: always, except on the non-chief workers of a cluster."""
    return bool(strategy.extended.should_checkpoint)


def worker_count(strategy) -> int:
    """The processes training together: the tasks of the cluster, 1 without one."""
    resolver = strategy.cluster_resolver
    if resolver is None:
        return 1
    spec = resolver.cluster_spec()
    return max(1, sum(spec.num_tasks(job) for job in spec.jobs))


@contextlib.contextmanager
def worker_dir(run_dir, chief: bool, copied=()):
    """Yields the directory this worker writes `run_dir`'s files to.

    The chief gets `run_dir` itself. Another worker gets a private temporary
    directory, deleted on exit, into which the entries `copied` of `run_dir`
    (for example the checkpoints to resume from) are copied when they exist;
    a directory that is already this worker's private one is used as is (its
    `copied` entries refreshed from the run directory it stands for).
    """
    run_dir = str(run_dir)
    if chief:
        yield run_dir
        return
    if run_dir in _PRIVATE_DIRS:
        _copy_entries(_PRIVATE_DIRS[run_dir], run_dir, copied)
        yield run_dir
        return
    private = tempfile.mkdtemp(prefix="seq2seq-worker-")
    _PRIVATE_DIRS[private] = run_dir
    try:
        _copy_entries(run_dir, private, copied)
        yield private
    finally:
        del _PRIVATE_DIRS[private]
        shutil.rmtree(private, ignore_errors=True)


def _copy_entries(source, destination, names):
    for name in names:
        path = os.path.join(source, name)
        if os.path.isdir(path):
            shutil.copytree(path, os.path.join(destination, name), dirs_exist_ok=True)
        elif os.path.isfile(path):
            shutil.copyfile(path, os.path.join(destination, name))


def with_distribution_options(dataset):
    """`dataset` with the `tf.data` options for splitting its batches between replicas.

    Sharded by data (for in-memory and generated data): every worker builds
    the same batch stream (seed the shuffle alike) and keeps its slice of each
    global batch; the default (AUTO) would first try to shard by input files,
    which this data does not come from. Without autotuning: after distributed
    training, its thread held up the exit of the process by 30-65 s (observed
    with TensorFlow 2.21), and the pipeline is not what limits the speed.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.autotune.enabled = False
    return dataset.with_options(options)


@contextlib.contextmanager
def fit_workarounds(model, batch):
    """Works around two bugs of Keras 3.15's TensorFlow `fit` under several workers (keras-team/keras#20585).

    `fit` first averages a distributed batch over the workers to learn its
    shapes, which fails for a nested batch: here it builds from this worker's
    first `batch` instead. And it averages each step's metrics over the
    replicas along axis 0, which a scalar lacks: here the steps give them one.
    Nothing changes with one worker.
    """
    import tensorflow as tf

    if worker_count(model.distribute_strategy) <= 1:
        yield
        return

    def build(iterator=None, data_batch=None):
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=batch)

    def with_batch_axis(step):
        return lambda data: tf.nest.map_structure(lambda value: value[tf.newaxis], step(data))

    patches = {"_maybe_symbolic_build": build, "train_step": with_batch_axis(model.train_step),
               "test_step": with_batch_axis(model.test_step)}
    for name, function in patches.items():
        setattr(model, name, function)
    try:
        yield
    finally:
        for name in patches:
            delattr(model, name)


def fingerprint(batch) -> int:
    """A 48-bit hash of a (nested) batch's values: equal batches, equal hashes."""
    import tensorflow as tf

    digest = hashlib.sha256()
    for tensor in tf.nest.flatten(batch):
        digest.update(np.asarray(tensor).tobytes())
    return int.from_bytes(digest.digest()[:6], "big")


class WorkerSum:
    """`WorkerSum(strategy)(values)`: the float64 `values` summed over the workers, on every worker.

    A collective operation: every worker must call it at the same point. Only
    each worker's first replica contributes, so a worker's values count once
    however many devices it has. Exact for integers below 2**53.
    """

    def __init__(self, strategy):
        import tensorflow as tf

        self.strategy = strategy
        local_replicas = len(strategy.extended.worker_devices)

        def replica_sum(values):
            context = tf.distribute.get_replica_context()
            first_of_worker = tf.equal(context.replica_id_in_sync_group % local_replicas, 0)
            return context.all_reduce("SUM", tf.identity(values) * tf.cast(first_of_worker, tf.float64))

        self._sum = tf.function(lambda values: strategy.run(replica_sum, args=(values,)))

    def __call__(self, values) -> list[float]:
        import tensorflow as tf

        total = self._sum(tf.constant(values, tf.float64))
        return [float(v) for v in self.strategy.experimental_local_results(total)[0].numpy()]


@contextlib.contextmanager
def lost_workers_reported():
    """Turns the error a worker gets when another one stops into a `UserError` that says what to do."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.UnavailableError:
        raise UserError("lost another worker of the cluster (it stopped or cannot be reached); rerun the "
                        "same command on every worker to resume from the chief's last checkpoint") from None


def wait_for_workers(strategy) -> None:
    """Returns once every worker has called it, so that they finish together."""
    WorkerSum(strategy)([0.0])


def any_worker(worker_sum: WorkerSum, *flags: bool) -> tuple[bool, ...]:
    """Each flag, true if it is true on any worker (the same answer on every worker)."""
    return tuple(total > 0 for total in worker_sum([float(flag) for flag in flags]))


def agree_with_chief(worker_sum: WorkerSum, values: dict, chief: bool) -> None:
    """Raises `UserError` on every worker unless all workers hold the chief's `values`.

    `values` maps a description to an integer below 2**53 (a step, a hash).
    """
    names = list(values)
    mine = [float(values[name]) for name in names]
    chiefs = worker_sum([value if chief else 0.0 for value in mine])
    differ = worker_sum([float(a != b) for a, b in zip(mine, chiefs)])
    wrong = [name for name, count in zip(names, differ) if count]
    if wrong:
        raise UserError(
            f"the workers disagree on the {' and the '.join(wrong)}: start every worker with the same "
            "command, config and data, and give them the same --out on a shared file system to resume"
        )
