"""Train a tfode model with `keras` `fit`.

    python -m training.train --data synthetic|tatoeba|PATH --decoder trajectory|odernn|gru \\
        --run-dir DIR [--epochs N] [--time-budget SECONDS] [--preset NAME] [...]

The configuration is the defaults, then `--preset`, then the flags; it is written to
DIR/config.json. Running the same command again on an unfinished DIR resumes it (a `TrainingBackup`
keeps the state mid-epoch); a finished DIR is refused unless --overwrite.

`--distribute multiworker` trains on the cluster in TF_CONFIG (training/cluster.py): run the same
command on every worker; the chief writes DIR, the others write only to their own temporary
folders. `--batch-size` is per replica: a step's global batch is it times the replicas.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import warnings

from . import builder, presets
from .data import DataError
from .rundir import CONFIG_FILE, MODEL_FILE, RunError, read_config, write_json_atomically
from . import rundir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run-dir", required=True, help="where config, vocabulary, checkpoints and logs go")
    parser.add_argument("--preset", choices=sorted(presets.PRESETS),
                        help="named configuration to start from (default: none)")
    builder.add_flags(parser)
    parser.add_argument("--overwrite", action="store_true", help="start again in a finished run directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar: one line per epoch")
    return parser


def resolve_config(args) -> dict:
    """The run's configuration from `--preset` and the flags given; refuses (ValueError, naming
    the flag) a flag that does not apply and any value out of range."""
    given = {key for key, value in vars(args).items() if key in builder.FLAGS and value is not None}
    config = presets.resolve(args.preset, {key: getattr(args, key) for key in given})
    config["preset"] = args.preset
    builder.check_flags(config, given)
    return config


def prepare_run_dir(run_dir: str, config: dict, overwrite: bool) -> None:
    """Refuses a directory that holds another run or a finished one (unless `overwrite`)."""
    if os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
        previous = read_config(run_dir)
        finished = os.path.exists(os.path.join(run_dir, MODEL_FILE))
        if overwrite:
            shutil.rmtree(run_dir)
        elif previous != config:
            changed = sorted(key for key in config if previous.get(key) != config[key])
            raise RunError(
                f"{run_dir} holds a run with another configuration (differs in {changed}); "
                "choose a new --run-dir or pass --overwrite."
            )
        elif finished:
            raise RunError(f"{run_dir} holds a finished run; choose a new --run-dir or pass --overwrite.")
    os.makedirs(run_dir, exist_ok=True)
    write_json_atomically(os.path.join(run_dir, CONFIG_FILE), config)


def configure_devices(config: dict) -> None:
    """Logical CPUs, determinism and the dtype policy: what TensorFlow must know before it first
    runs anything. Calling it again with the same configuration changes nothing."""
    if config["deterministic"]:
        # oneDNN's kernels sum in an order that depends on where the buffers lie in memory, which
        # changes from one process to the next; read when TensorFlow loads.
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    import keras
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = config["logical_cpus"]
    if wanted and len(tf.config.get_logical_device_configuration(cpu) or []) != wanted:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * wanted)
    if config["deterministic"]:
        tf.config.experimental.enable_op_determinism()
        # Ops that run side by side finish in any order, and the order in which gradients are
        # summed follows it; an op split over threads sums its parts in the order they finish.
        # One thread of each kind fixes both orders.
        if tf.config.threading.get_inter_op_parallelism_threads() != 1:
            tf.config.threading.set_inter_op_parallelism_threads(1)
            tf.config.threading.set_intra_op_parallelism_threads(1)
        # Grappler's arithmetic optimizer does not rewrite a graph the same way in every process:
        # with a fixed-grid solve inside the ODE-RNN's loop, about one run in five computed the
        # same step with a last-bit difference (training.benchmarks.determinism). Off, every process
        # runs the graph as traced.
        tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    keras.mixed_precision.set_global_policy("mixed_float16" if config["mixed_precision"] else "float32")


def make_strategy(config: dict):
    import tensorflow as tf

    if config["distribute"] == "multiworker":
        from . import cluster

        cluster.patch_keras_for_multiworker()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if config["distribute"] == "mirrored":
        devices = [device.name for device in tf.config.list_logical_devices("GPU")] or [
            device.name for device in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def schedule_length(config: dict, steps_per_epoch: int) -> dict:
    """`ProgressSchedule` keyword arguments: the time budget, or `epochs` without one."""
    if config["time_budget"]:
        return dict(seconds=config["time_budget"])
    return dict(total_steps=config["epochs"] * steps_per_epoch)


def learning_rate(config: dict, steps_per_epoch: int):
    """The optimizer's learning rate. `cosine` over a known number of steps (`epochs`, no time
    budget) is Keras' own `CosineDecay`: a linear warm-up over `warmup_steps`, then a cosine decay
    to `callbacks.COSINE_FLOOR` of the base rate by the last step; a resumed run continues it from
    the optimizer's step count. Otherwise the base rate, which `learning_rate_schedule`'s callback
    then moves."""
    import keras

    from . import callbacks

    if config["lr_schedule"] != "cosine" or config["time_budget"]:
        return config["learning_rate"]
    total = config["epochs"] * steps_per_epoch
    warmup = min(config["warmup_steps"], total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config["learning_rate"], decay_steps=max(1, total - warmup),
        alpha=callbacks.COSINE_FLOOR, warmup_target=config["learning_rate"] if warmup else None,
        warmup_steps=warmup)


def learning_rate_schedule(config: dict, steps_per_epoch: int):
    """The callback that moves the learning rate where no optimizer schedule can: `plateau`
    halves it when the validation loss stalls for two epochs; `cosine` with a time budget warms
    up over `warmup_steps` and decays to `callbacks.COSINE_FLOOR` of the base rate by the end
    of the budget (how many steps fit is not known in advance). None when the optimizer's own
    schedule does it (`learning_rate`)."""
    import keras

    from . import callbacks

    if config["lr_schedule"] == "plateau":
        return keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=2, min_lr=1e-5)
    if not config["time_budget"]:
        return None
    return callbacks.CosineSchedule(config["learning_rate"], config["warmup_steps"], seconds=config["time_budget"])


def prepare_data(config: dict, run_dir: str, batch: int):
    """`(text processor, training batches, validation batches, {split: sentences})`.

    A corpus file over `streaming.STREAM_BYTES` streams from disk (training/streaming.py): the
    vocabulary from one counting pass, the split and length filter inside `tf.data`; anything
    smaller is loaded, deduplicated and split in memory. The vocabulary of an unfinished run is
    reused."""
    import tfode
    from tfode.text import VOCABULARY_FILE
    from . import data, pipeline, streaming

    vocabulary_saved = os.path.exists(os.path.join(run_dir, VOCABULARY_FILE))
    if streaming.is_large(config["data"]):
        path, words = config["data"], (config["min_words"], config["max_words"])
        scan = streaming.scan(path, *words)
        sizes = scan.sizes
        if not sizes["train"] or not sizes["validation"]:
            raise DataError(f"{path}: after filtering and splitting, {sizes} sentences remain; need "
                            "at least one training and one validation sentence.")
        text = (tfode.TextProcessor.load(run_dir) if vocabulary_saved else tfode.TextProcessor.from_counts(
            scan.counts, run_dir, config["max_length"], config["vocab_size"], config["min_count"]))
        print(f"data: {path}: streamed; split {sizes['train']}/{sizes['validation']}/{sizes['test']} "
              f"train/validation/test; vocabulary {text.vocabulary_size}", flush=True)
        rows = {split: streaming.token_rows(path, split, text, *words) for split in ("train", "validation")}
        return (text, pipeline.batches(rows["train"], batch, shuffle=True, seed=config["seed"],
                                       max_length=config["max_length"]),
                pipeline.batches(rows["validation"], batch, max_length=config["max_length"]), sizes)
    loaded = data.load_sentences(config["data"], config["synthetic_size"], config["seed"])
    splits = pipeline.prepare(loaded.sentences, config["min_words"], config["max_words"])
    if not splits.train or not splits.validation:
        raise DataError(
            f"{loaded.source}: after filtering to {config['min_words']}–{config['max_words']} words "
            f"and splitting, {len(splits.train)} training and {len(splits.validation)} validation "
            "sentences remain; need at least one of each."
        )
    if vocabulary_saved:
        text = tfode.TextProcessor.load(run_dir)
    else:
        text = tfode.TextProcessor.from_sentences(
            splits.train, run_dir, config["max_length"], config["vocab_size"], config["min_count"]
        )
    train_ids = pipeline.encode_corpus(text, splits.train)
    validation_ids = pipeline.encode_corpus(text, splits.validation)
    print(
        f"data: {loaded.source}: {len(loaded.sentences)} sentences ({loaded.skipped} lines skipped); "
        f"split {len(splits.train)}/{len(splits.validation)}/{len(splits.test)} "
        f"train/validation/test; vocabulary {text.vocabulary_size}; "
        f"{train_ids.truncated + validation_ids.truncated} sentences cut to {config['max_length']} tokens",
        flush=True,
    )
    sizes = {"train": len(splits.train), "validation": len(splits.validation), "test": len(splits.test)}
    return (text, pipeline.make_dataset(train_ids.ids, batch, shuffle=True, seed=config["seed"],
                                        max_length=config["max_length"]),
            pipeline.make_dataset(validation_ids.ids, batch, max_length=config["max_length"]), sizes)


def train(config: dict, run_dir: str, verbose: int = 1, extra_callbacks=(), strategy=None) -> dict:
    """Runs the whole job; returns a summary dict. Assumes `prepare_run_dir` was called.
    `extra_callbacks` (Keras callbacks) run after the job's own, before the backup; `strategy` defaults to
    `make_strategy(config)` (a multi-worker strategy must be made before TensorFlow runs
    anything, so `main` makes it first)."""
    configure_devices(config)
    strategy = strategy or make_strategy(config)
    import keras

    from . import callbacks, pipeline
    from .rundir import save_model_atomically

    keras.utils.set_random_seed(config["seed"])
    batch = config["batch_size"] * strategy.num_replicas_in_sync  # the global batch
    text, train_data, validation_data, sizes = prepare_data(config, run_dir, batch)
    steps_per_epoch = max(1, sizes["train"] // batch)
    fit_steps = {}
    if config["distribute"] == "multiworker":
        # Every worker must run the same number of steps (a worker that ran out of data first
        # would leave the others waiting in a collective): repeat, and count steps. Workers share
        # by batches (AutoShardPolicy.DATA): each takes every n-th of the same shuffled batches.
        train_data = pipeline.shard_by_data(train_data.repeat())
        validation_data = pipeline.shard_by_data(validation_data.repeat())
        fit_steps = dict(steps_per_epoch=steps_per_epoch,
                         validation_steps=max(1, sizes["validation"] // batch))

    backup = callbacks.TrainingBackup(rundir.path(run_dir, rundir.BACKUP),
                                      save_freq=max(1, steps_per_epoch // 4))
    with strategy.scope():
        model = builder.build_model(config, text.vocabulary_size)
        model.build((None, None))
        model.compile(
            keras.optimizers.Adam(learning_rate(config, steps_per_epoch), clipnorm=config["clipnorm"]),
            loss=builder.build_loss(config),
        )
        agree = None
        if config["distribute"] == "multiworker":
            from .cluster import newest_common_step

            agree = newest_common_step(strategy)
        initial_epoch = backup.restore(model, agree=agree)
    budget = callbacks.TimeBudget(config["time_budget"]) if config["time_budget"] else None
    divergence = callbacks.StopOnDivergence(max_nfe=config["max_nfe"])
    callback_list = [
        callbacks.AtomicCheckpoint(rundir.path(run_dir, rundir.CHECKPOINTS), divergence=divergence),
        keras.callbacks.TensorBoard(rundir.path(run_dir, rundir.LOGS)),
        keras.callbacks.CSVLogger(rundir.path(run_dir, rundir.HISTORY_FILE), append=True),
        keras.callbacks.EarlyStopping(patience=config["patience"], restore_best_weights=True),
        keras.callbacks.TerminateOnNaN(),
        divergence,
    ]
    rate_callback = learning_rate_schedule(config, steps_per_epoch)
    if rate_callback is not None:
        callback_list.append(rate_callback)
    if model.is_ode:
        callback_list.append(callbacks.NFELog(rundir.path(run_dir, rundir.NFE_FILE)))
    if config["variational"] and config["kl_weight"] > 0:
        callback_list.append(callbacks.KLAnnealing(config["kl_weight"], steps_per_epoch))
    if config["scheduled_sampling"]:
        callback_list.append(callbacks.SamplingRamp(
            config["scheduled_sampling"], **schedule_length(config, steps_per_epoch)
        ))
    if model.encoder.input_noise is not None and model.encoder.input_noise.fades:
        callback_list.append(callbacks.NoiseFade(
            config["input_noise_fade"], **schedule_length(config, steps_per_epoch)
        ))
    if budget:
        callback_list.append(budget)
    callback_list.extend(extra_callbacks)
    callback_list.append(backup)  # last: an epoch is backed up as done once the others logged it
    # The bucketed dataset's length is unknown until its first pass ends, which Keras reports as
    # running out of data: not a fault.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    started = time.monotonic()
    history = model.fit(
        train_data,
        validation_data=validation_data,
        epochs=config["epochs"],
        initial_epoch=initial_epoch,
        callbacks=callback_list,
        shuffle=False,  # the dataset shuffles itself
        verbose=verbose,
        **fit_steps,
    )
    seconds = time.monotonic() - started
    if divergence.reason:
        last_good = rundir.path(run_dir, rundir.CHECKPOINTS, rundir.LAST_CHECKPOINT)
        raise RunError(
            f"Training stopped: {divergence.reason}. "
            + (f"The last good checkpoint (end of the last finite epoch) is {last_good}."
               if os.path.exists(last_good) else "No epoch finished before it: there is no checkpoint.")
        )
    save_model_atomically(model, os.path.join(run_dir, MODEL_FILE))
    epochs_done = len(history.history.get("loss", []))
    steps = int(model.optimizer.iterations.numpy())
    summary = {
        "epochs": epochs_done,
        "steps": steps,
        "step_ms": round(1000 * seconds / max(steps, 1), 1),
        "parameters": int(model.count_params()),
        "replicas": int(strategy.num_replicas_in_sync),
        "weights_sha1": weights_digest(model),
        "seconds": round(seconds, 1),
        "time_budget_exhausted": bool(budget and budget.exhausted),
        "final": {key: float(values[-1]) for key, values in history.history.items() if values},
    }
    write_json_atomically(os.path.join(run_dir, "train_summary.json"), summary)
    return summary


def weights_digest(model) -> str:
    """SHA-1 of every weight's bytes, in order: equal on workers that hold the same model."""
    import hashlib

    digest = hashlib.sha1()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = resolve_config(args)
        run_dir, task = args.run_dir, None
        if config["distribute"] == "multiworker":
            from . import cluster

            task = cluster.current_task()
            run_dir = cluster.output_dir(args.run_dir, task)
        configure_devices(config)
        strategy = make_strategy(config) if task is not None else None
        builder.check_objects(config)
        prepare_run_dir(run_dir, config, args.overwrite)
        summary = train(config, run_dir, verbose=2 if args.quiet or not sys.stdout.isatty() else 1,
                        strategy=strategy)
    except (ValueError, OSError) as error:  # DataError and RunError are ValueErrors
        print(f"error: {error}", file=sys.stderr)
        return 2
    if task is not None:  # each worker says what it holds, to compare across the cluster
        print(f"{task.type} {task.index}: {summary['steps']} steps, weights sha1 {summary['weights_sha1']}")
    if run_dir != args.run_dir:  # a worker other than the chief: its folder has served
        shutil.rmtree(run_dir, ignore_errors=True)
        return 0
    final = summary["final"]
    accuracy = final.get("val_token_accuracy")
    print(f"trained {summary['epochs']} epochs ({summary['steps']} steps) in {summary['seconds']:.0f} s"
          + (f"; validation token accuracy {100 * accuracy:.1f} % (teacher-forced)" if accuracy is not None else "")
          + f" → {os.path.join(args.run_dir, MODEL_FILE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
