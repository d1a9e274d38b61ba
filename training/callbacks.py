"""Callbacks that Keras does not ship: atomic checkpoints and backups, a wall-clock budget, a learning-rate
schedule and a scheduled-sampling ramp that can end with that budget, KL annealing, and a stop
that names why training went wrong."""

from __future__ import annotations

import json
import math
import os
import shutil
import time

import keras
import numpy as np
from tfode import atomic

from .rundir import save_model_atomically
from . import rundir


class AtomicCheckpoint(keras.callbacks.Callback):
    """Writes `last.keras` after every epoch and `best.keras` when `monitor` improves, each via a
    temporary file and a rename, so a killed run never leaves a truncated checkpoint. Epochs with
    non-finite logs, or in which `divergence` fired, are not checkpointed."""

    def __init__(self, directory: str, monitor: str = "val_loss", divergence=None):
        super().__init__()
        self.directory = directory
        self.monitor = monitor
        self.divergence = divergence  # a StopOnDivergence: no checkpoint once it has fired
        self.best = math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not all(np.isfinite(value) for value in logs.values() if isinstance(value, float)):
            return  # never checkpoint a diverged model
        if self.divergence is not None and self.divergence.reason:
            return
        save_model_atomically(self.model, os.path.join(self.directory, rundir.LAST_CHECKPOINT))
        value = logs.get(self.monitor)
        if value is not None and value < self.best:
            self.best = value
            save_model_atomically(self.model, os.path.join(self.directory, rundir.BEST_CHECKPOINT))


class TrainingBackup(keras.callbacks.Callback):
    """Backs up the training state, so that a killed run resumes where it was: the model's and
    the optimizer's weights, and the epoch to start again at. It does the job of Keras'
    `BackupAndRestore` with public Keras calls only, and writes atomically.

        backup = TrainingBackup(directory, save_freq=100)
        with strategy.scope():
            initial_epoch = backup.restore(model)       # built and compiled
        model.fit(..., initial_epoch=initial_epoch, callbacks=[backup, ...])

    A backup is a weights file under a unique name; `STATE_FILE` lists the last two (newest
    first) and is written last, by a rename: a process killed at any moment leaves the previous
    state whole. Backups are made every `save_freq` batches (or only at epoch ends, `"epoch"`) and
    at the end of every epoch. A run restored from a backup made mid-epoch starts that epoch again
    from its first batch, with the weights it had reached (as `BackupAndRestore` does). The folder
    is removed when `fit` ends; it must be local (renames are atomic within one file system).

    Workers of a multi-worker run back up at the same steps, each in its own folder, but a kill
    can fall after one has committed a backup and before another has. No worker can be more than
    one backup ahead (the next step is a collective that waits for every worker), so each keeps
    two, and `restore` is given `agree`: the newest step every worker holds.
    """

    STATE_FILE = "state.json"
    WEIGHTS_SUFFIX = ".weights.h5"  # the suffix `Model.save_weights` requires
    KEPT = 2

    def __init__(self, directory: str, save_freq: int | str = "epoch"):
        super().__init__()
        if not directory:
            raise ValueError("TrainingBackup needs a directory.")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq < 1):
            raise ValueError(f"save_freq is 'epoch' or a positive number of batches, not {save_freq!r}.")
        self.directory = directory
        self.save_freq = save_freq
        self.epoch = 0
        self.last_batch = -1
        self.batches_since_save = 0

    @classmethod
    def backups(cls, directory: str) -> list[dict]:
        """The backups in `directory`, newest first: `{"epoch", "batch", "step", "weights"}` (the
        epoch a restored run starts at, the batches of it done, the optimizer's step count, the
        weights file's name); [] when there is none."""
        path = os.path.join(directory, cls.STATE_FILE)
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)["backups"]

    def restore(self, model, agree=None) -> int:
        """Loads the latest backup into `model` (built and compiled, inside the distribution
        strategy's scope) and returns the epoch to give `fit` as `initial_epoch`; 0 without a backup.
        `agree(step) -> int` (multi-worker runs) is given this worker's newest backed-up step (-1:
        none) and returns the newest every worker holds, the one restored (-1: start afresh)."""
        if not model.built:
            raise ValueError("Build the model before restoring a backup into it.")
        try:
            backups = self.backups(self.directory)
            if agree is not None:
                step = agree(backups[0]["step"] if backups else -1)
                backups = [backup for backup in backups if backup["step"] == step]
                if step >= 0 and not backups:
                    raise ValueError(f"it holds no backup of step {step}, the newest every worker holds")
            if not backups:
                return 0
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)  # its variables must exist to be loaded
            model.load_weights(os.path.join(self.directory, backups[0]["weights"]))
            return int(backups[0]["epoch"])
        except (ValueError, OSError, KeyError, TypeError, IndexError) as error:
            raise ValueError(f"The training backup in {self.directory} cannot be restored ({error}); "
                             "move it aside to start the run from its beginning.") from error

    def save(self, epoch: int, batch: int = 0) -> None:
        """Backs up `self.model`: a run restored from it starts at `epoch`, `batch` batches of which
        are in the weights."""
        name = f"backup-{time.time_ns()}{self.WEIGHTS_SUFFIX}"
        with atomic.replacing(os.path.join(self.directory, name), suffix=self.WEIGHTS_SUFFIX) as temporary:
            self.model.save_weights(temporary)
        step = int(self.model.optimizer.iterations.numpy()) if self.model.optimizer is not None else 0
        kept = [{"epoch": epoch, "batch": batch, "step": step, "weights": name},
                *self.backups(self.directory)][:self.KEPT]
        atomic.write_text(os.path.join(self.directory, self.STATE_FILE), json.dumps({"backups": kept}))
        named = {backup["weights"] for backup in kept}
        for entry in os.listdir(self.directory):  # older backups, and any a killed process left
            if entry.endswith(self.WEIGHTS_SUFFIX) and entry not in named:
                os.remove(os.path.join(self.directory, entry))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.last_batch = epoch, -1

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self.batches_since_save += batch - self.last_batch  # batches skip with steps_per_execution
        self.last_batch = batch
        if self.batches_since_save >= self.save_freq:
            self.batches_since_save = 0
            self.save(self.epoch, batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self.batches_since_save = 0
        self.save(epoch + 1)

    def on_train_end(self, logs=None):
        shutil.rmtree(self.directory, ignore_errors=True)


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `seconds` of wall-clock time have passed (checked every batch)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.started = None
        self.exhausted = False

    def on_train_begin(self, logs=None):
        self.started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self.started > self.seconds:
            self.exhausted = True
            self.model.stop_training = True


COSINE_FLOOR = 0.02  # a cosine schedule ends at this fraction of its base rate


class ProgressSchedule(keras.callbacks.Callback):
    """Base of the schedules that follow how far through training a run is.

    The end is `seconds` of wall-clock time after training began when a time budget is given (how
    many steps fit in it is not known in advance), otherwise `total_steps` optimizer steps. A run
    resumed from a `TrainingBackup` starts its budget, and with it the schedule, again.
    """

    def __init__(self, total_steps: int | None = None, seconds: float | None = None):
        super().__init__()
        if (total_steps is None) == (seconds is None):
            raise ValueError("Give the schedule's length as exactly one of total_steps or seconds.")
        self.total_steps = total_steps
        self.seconds = seconds
        self.started = None

    def on_train_begin(self, logs=None):
        self.started = time.monotonic()

    def progress(self, step: int) -> float:
        """How far through the schedule training is, in [0, 1]."""
        if self.seconds is not None:
            done = (time.monotonic() - self.started) / self.seconds
        else:
            done = step / max(1, self.total_steps)
        return min(1.0, max(0.0, done))


class CosineSchedule(ProgressSchedule):
    """Sets the learning rate before every batch: a linear warm-up over `warmup_steps`, then a
    cosine decay from `base` to `final_fraction * base` by the end of training (see
    `ProgressSchedule`)."""

    def __init__(
        self,
        base: float,
        warmup_steps: int = 0,
        total_steps: int | None = None,
        seconds: float | None = None,
        final_fraction: float = COSINE_FLOOR,
    ):
        super().__init__(total_steps, seconds)
        self.base = base
        self.warmup_steps = warmup_steps
        self.final_fraction = final_fraction

    def rate(self, step: int) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * self.progress(step)))
        rate = self.base * (self.final_fraction + (1.0 - self.final_fraction) * cosine)
        if step < self.warmup_steps:
            rate *= (step + 1) / self.warmup_steps
        return rate

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.model.optimizer.learning_rate = self.rate(step)


class SamplingRamp(ProgressSchedule):
    """Raises the autoregressive decoder's scheduled-sampling rate linearly from 0 at the start
    of training to `target` at its end (see `ProgressSchedule`), so that the decoder first learns
    from the targets and then, as its own predictions become worth reading, from those."""

    def __init__(self, target: float, total_steps: int | None = None, seconds: float | None = None):
        super().__init__(total_steps, seconds)
        self.target = target

    def rate(self, step: int) -> float:
        return self.target * self.progress(step)

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.model.decoder.sampling_rate.assign(self.rate(step))


class NoiseFade(ProgressSchedule):
    """Fades the encoder's input noise (a `TokenNoise` built with `fades=True`) linearly from full
    strength to none over the last `share` of training (see `ProgressSchedule`): the encoder learns
    its layout from corrupted sentences, and the decoder ends on clean ones."""

    def __init__(self, share: float, total_steps: int | None = None, seconds: float | None = None):
        super().__init__(total_steps, seconds)
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share}.")
        self.share = share

    def strength(self, step: int) -> float:
        return min(1.0, (1.0 - self.progress(step)) / self.share)

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.model.encoder.input_noise.strength.assign(self.strength(step))


class KLAnnealing(keras.callbacks.Callback):
    """Raises the encoder's KL weight linearly from 0 to `target` over `steps` batches."""

    def __init__(self, target: float, steps: int):
        super().__init__()
        self.target = target
        self.steps = max(1, steps)
        self.seen = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.seen += 1
        self.model.encoder.kl_weight.assign(self.target * min(1.0, self.seen / self.steps))


class StopOnDivergence(keras.callbacks.Callback):
    """Stops at the first non-finite loss, or when the ODE solver's NFE per step exceeds
    `max_nfe` (a step-size collapse), and records the cause in `reason`."""

    def __init__(self, max_nfe: float | None = None):
        super().__init__()
        self.max_nfe = max_nfe
        self.reason = None

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and not np.isfinite(loss):
            self.reason = f"the loss became {loss} at batch {batch}"
        elif self.max_nfe and logs.get("nfe", 0) > self.max_nfe:
            self.reason = (
                f"the ODE solver needed {logs['nfe']:.0f} function evaluations per step "
                f"(limit {self.max_nfe:.0f}): its step size collapsed"
            )
        if self.reason:
            self.model.stop_training = True


class NFELog(keras.callbacks.Callback):
    """Appends `step,nfe` to a CSV file every `every` training steps: the ODE solver's function
    evaluations per step, averaged over the epoch so far (the model's `nfe` metric), to watch the
    adaptive solver's cost grow or stay bounded through training."""

    def __init__(self, path: str, every: int = 25):
        super().__init__()
        self.path = path
        self.every = max(1, every)

    def on_train_begin(self, logs=None):
        if not os.path.exists(self.path):
            with open(self.path, "w") as handle:
                handle.write("step,nfe\n")

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every == 0 and logs and "nfe" in logs:
            with open(self.path, "a") as handle:
                handle.write(f"{step},{round(float(logs['nfe']))}\n")


def read_nfe_log(path: str) -> list[tuple[int, int]]:
    """`[(step, nfe), …]` from an `NFELog` file."""
    with open(path) as handle:
        rows = [line.strip().split(",") for line in handle.readlines()[1:] if line.strip()]
    return [(int(step), int(nfe)) for step, nfe in rows]
