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


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore` whose files are each written under a temporary name and renamed
    over the old one, so that a process killed while it backs up leaves the previous backup
    whole. Keras writes them in place: a worker killed mid-write left a truncated file that
    failed the restart. Restoring, and the previous copy `double_checkpoint` keeps, are Keras'.
    The backup folder must be local (renames are atomic within one file system)."""

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint:
            for path, previous in ((self._weights_path, self._prev_weights_path),
                                   (self._training_metadata_path, self._prev_training_metadata_path)):
                if os.path.exists(path):
                    shutil.copyfile(path, previous + ".partial")
                    os.replace(previous + ".partial", previous)
        partial = os.path.join(self.backup_dir, "partial.weights.h5")  # Keras wants the suffix
        self.model.save_weights(partial, overwrite=True)
        os.replace(partial, self._weights_path)
        with open(self._training_metadata_path + ".partial", "w") as handle:
            json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, handle)
        os.replace(self._training_metadata_path + ".partial", self._training_metadata_path)


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
    resumed by `BackupAndRestore` starts its budget, and with it the schedule, again.
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
