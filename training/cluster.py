"""A multi-worker run's cluster: who this process is in `TF_CONFIG`, and where it writes.

`TF_CONFIG` is the standard variable `tf.distribute.MultiWorkerMirroredStrategy` reads:

    {"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}}

The chief (the task of type "chief", or worker 0 when there is none) writes the run directory:
checkpoints, backups, TensorBoard logs, the final model. Every other worker runs the same
program (the strategy's collectives need every worker to save and to log) into a folder of its
own under the system's temporary folder, named after the run directory and its index, so that a
restarted worker finds its backup again; it is removed when the run finishes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import NamedTuple


class Task(NamedTuple):
    type: str
    index: int
    workers: int  # tasks that train (chief and workers)


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1, for the workers of a cluster on one machine."""
    import socket

    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def current_task() -> Task:
    """This process's task in `TF_CONFIG`; ValueError says what is missing or malformed."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError("--distribute multiworker reads the cluster from TF_CONFIG, which is not set "
                         "(docs/distributed.md shows one per worker)")
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        kind, index = str(task["type"]), int(task["index"])
        members = {name: list(addresses) for name, addresses in cluster.items()}
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"TF_CONFIG is malformed ({type(error).__name__}: {error}); it needs "
                         '{"cluster": {"worker": [...]}, "task": {"type": ..., "index": ...}}') from None
    if kind not in members or not 0 <= index < len(members[kind]):
        raise ValueError(f"TF_CONFIG's task {kind}:{index} is not in its cluster {sorted(members)}")
    if kind not in ("chief", "worker"):
        raise ValueError(f"TF_CONFIG's task type {kind!r} does not train; use 'chief' or 'worker'")
    return Task(kind, index, len(members.get("chief", [])) + len(members.get("worker", [])))


def is_chief(task: Task) -> bool:
    if task.type == "chief":
        return True
    return task.type == "worker" and task.index == 0 and not _has_chief()


def _has_chief() -> bool:
    return "chief" in json.loads(os.environ["TF_CONFIG"])["cluster"]


def output_dir(run_dir: str, task: Task) -> str:
    """The run directory for the chief; for another worker, its own folder under the system's
    temporary folder (the same on every restart)."""
    if is_chief(task):
        return run_dir
    digest = hashlib.sha1(os.path.abspath(run_dir).encode("utf-8")).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), "tfode-workers", digest, f"{task.type}-{task.index}")


def patch_keras_for_multiworker() -> None:
    """Two places where Keras 3.15's TensorFlow trainer fails under a multi-worker
    `MultiWorkerMirroredStrategy` (tensorflow/tensorflow#72388; TF's legacy Keras 2 trainer did
    not): it averages the first input batch across workers before building the metrics, which
    fails for integer batches; and it averages every step's logs with `axis=0`, which fails for
    scalar logs. Both read values that are already the same on every replica (the batch's
    structure and dtypes; metric results, which are synchronised), so one replica's value is
    taken instead, as Keras 2 did. Applied once, only by `--distribute multiworker`."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_tfode_multiworker_patch", False):
        return
    replaced = {"reduce_per_replica": trainer, "_collective_all_reduce_multi_worker": trainer,
                "_maybe_symbolic_build": trainer.TensorFlowTrainer}
    missing = [name for name, owner in replaced.items() if not hasattr(owner, name)]
    if missing:  # a Keras upgrade moved what is replaced: say so rather than train wrongly
        import keras

        raise RuntimeError(
            f"--distribute multiworker works around two faults of Keras 3.15's TensorFlow trainer, and "
            f"Keras {keras.__version__} has no {', '.join(missing)}: check whether it fixed them, then "
            "adapt or drop training.cluster.patch_keras_for_multiworker."
        )

    def first_replica(value, strategy):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    reduce_per_replica = trainer.reduce_per_replica

    def reduce_logs(values, strategy, reduction):
        if reduction == "auto" and trainer._collective_all_reduce_multi_worker(strategy):  # noqa: SLF001
            return tf.nest.map_structure(lambda value: first_replica(value, strategy), values)
        return reduce_per_replica(values, strategy, reduction)

    symbolic_build = trainer.TensorFlowTrainer._maybe_symbolic_build  # noqa: SLF001

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy  # noqa: SLF001
        if iterator is None or strategy is None or not trainer._collective_all_reduce_multi_worker(strategy):  # noqa: SLF001
            return symbolic_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            batch = next(batches)
            break
        with strategy.scope():
            self._symbolic_build(data_batch=tf.nest.map_structure(lambda value: first_replica(value, strategy), batch))

    trainer.reduce_per_replica = reduce_logs
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build  # noqa: SLF001
    trainer._tfode_multiworker_patch = True  # noqa: SLF001


def newest_common_step(strategy):
    """`agree` for `TrainingBackup.restore`: given this worker's newest backed-up step, the smallest
    of every worker's, which every worker holds (no worker is more than one backup ahead). A
    collective: every worker calls it, once, before `fit`."""
    import tensorflow as tf

    def agree(step: int) -> int:
        def gather():
            return tf.distribute.get_replica_context().all_gather(tf.constant([step], tf.int64), axis=0)

        gathered = strategy.experimental_local_results(strategy.run(gather))[0]
        return int(tf.reduce_min(gathered))

    return agree
