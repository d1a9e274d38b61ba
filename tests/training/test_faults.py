"""Faults and bad input around training and export: clear errors, nothing half-written."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.helpers import small_model
from training import callbacks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


class FakeModel:
    stop_training = False


@pytest.mark.parametrize("logs, cause", [
    ({"loss": float("nan")}, "loss became nan"),
    ({"loss": float("inf")}, "loss became inf"),
    ({"loss": 1.0, "nfe": 5000.0}, "step size collapsed"),
])
def test_divergence_stop_names_its_cause(logs, cause):
    callback = callbacks.StopOnDivergence(max_nfe=2000)
    callback.set_model(FakeModel())
    callback.on_train_batch_end(3, {"loss": 1.0, "nfe": 100.0})
    assert callback.reason is None and not callback.model.stop_training
    callback.on_train_batch_end(4, logs)
    assert cause in callback.reason and callback.model.stop_training


def test_atomic_checkpoint_skips_diverged_epochs(tmp_path, tiny_text):
    model = small_model(tiny_text.vocabulary_size, "gru", units=8, embedding_dim=4)
    checkpoint = callbacks.AtomicCheckpoint(str(tmp_path))
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 2.0, "val_loss": 2.5})
    saved = os.path.getmtime(tmp_path / "last.keras")
    checkpoint.on_epoch_end(1, {"loss": float("nan"), "val_loss": float("nan")})
    assert os.path.getmtime(tmp_path / "last.keras") == saved
    assert sorted(os.listdir(tmp_path)) == ["best.keras", "last.keras"]
    keras.models.load_model(str(tmp_path / "last.keras"))  # loadable, not truncated


def test_interrupted_export_leaves_no_version_folder(tmp_path, tiny_text, monkeypatch):
    import tensorflow as tf

    from training.serving_export import export_for_serving

    model = small_model(tiny_text.vocabulary_size, "gru", units=8, embedding_dim=4)

    def crash(module, path, signatures=None, options=None):
        os.makedirs(os.path.join(path, "variables"))
        open(os.path.join(path, "saved_model.pb"), "wb").write(b"half")
        raise KeyboardInterrupt("killed half-way")

    monkeypatch.setattr(tf.saved_model, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        export_for_serving(model, tiny_text, str(tmp_path), "m", version=1)
    assert os.listdir(tmp_path / "m") == []


@pytest.mark.slow
def test_cli_refuses_existing_export_version_and_bad_run_dir(tmp_path, tiny_text, capsys):
    import json

    from training import export

    run_dir = tmp_path / "run"
    tiny_text.save(str(run_dir))
    (run_dir / "config.json").write_text(json.dumps({"decoder": "gru"}))
    model = small_model(tiny_text.vocabulary_size, "gru", units=8, embedding_dim=4, max_length=tiny_text.max_length)
    model.save(str(run_dir / "model.keras"))
    base = tmp_path / "exports"
    (base / "m" / "1").mkdir(parents=True)
    (base / "m" / "1" / "keep.txt").write_text("untouched")
    common = ["--export-base", str(base), "--model-name", "m", "--version", "1"]

    # The refusals in this process (the command's `main`), the export itself through the CLI.
    assert export.main(["--run-dir", str(tmp_path / "no-run"), *common]) == 2
    assert "not a training run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        export.main(["--run-dir", str(run_dir), *common, "--no-such-flag"])
    assert stopped.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
    assert export.main(["--run-dir", str(run_dir), *common, "--solver", "rk4", "--rtol", "1e-5"]) == 2
    assert "--rtol does not apply" in capsys.readouterr().err
    assert export.main(["--run-dir", str(run_dir), *common, "--landmarks", "0"]) == 2
    assert "exists" in capsys.readouterr().err
    assert export.main(["--run-dir", str(run_dir), *common, "--landmarks", "-1"]) == 2
    assert "--landmarks must be 0" in capsys.readouterr().err
    # This run's configuration names no data: no test sentences for the map, and nothing written.
    assert export.main(["--run-dir", str(run_dir), *common, "--overwrite"]) == 2
    assert "pass --landmarks 0" in capsys.readouterr().err
    assert (base / "m" / "1" / "keep.txt").read_text() == "untouched"
    result = run_cli("training.export", "--run-dir", str(run_dir), *common, "--overwrite", "--landmarks", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(base / "m" / "1")) == ["assets", "assets.extra", "fingerprint.pb",
                                                     "saved_model.pb", "variables"]


def test_train_rejects_malformed_data_and_leaves_the_run_alone(tmp_path, capsys):
    from training import train

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00\t\x00\n" * 3)
    assert train.main(["--data", str(bad), "--run-dir", str(tmp_path / "run")]) == 2
    assert "no sentences" in capsys.readouterr().err
    assert not (tmp_path / "run" / "model.keras").exists()


class PoisonWeights(keras.callbacks.Callback):
    """Turns the readout's kernel into NaN at the third batch of the second epoch."""

    epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 1 and batch == 2:
            kernel = self.model.decoder.readout.kernel
            kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))


@pytest.mark.slow
def test_nan_mid_training_stops_with_its_cause_and_keeps_the_last_good_checkpoint(tmp_path):
    from training import presets, train
    from training.rundir import RunError

    run_dir = str(tmp_path / "run")
    config = presets.resolve("tiny", {"data": "synthetic", "epochs": 4})
    config["preset"] = "tiny"
    train.prepare_run_dir(run_dir, config, overwrite=False)
    with pytest.raises(RunError, match="loss became nan at batch 2") as raised:
        train.train(config, run_dir, verbose=0, extra_callbacks=[PoisonWeights()])
    last_good = os.path.join(run_dir, "checkpoints", "last.keras")
    assert last_good in str(raised.value)
    model = keras.saving.load_model(last_good)
    assert all(np.isfinite(weight).all() for weight in model.get_weights())
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))


@pytest.mark.slow
def test_step_size_collapse_stops_the_cli_with_its_cause(tmp_path, capsys):
    from training import train

    run_dir = tmp_path / "run"
    code = train.main(["--data", "synthetic", "--preset", "tiny", "--solver", "dopri5",
                       "--max-nfe", "5", "--run-dir", str(run_dir), "--quiet"])
    errors = capsys.readouterr().err
    assert code == 2, errors[-2000:]
    assert "step size collapsed" in errors and "no checkpoint" in errors
    assert not (run_dir / "model.keras").exists() and not (run_dir / "checkpoints" / "last.keras").exists()


class Killed(BaseException):
    """Stands for the process being killed in the middle of a write."""


def dense_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


@pytest.mark.parametrize("killed_while", ["weights", "state"])
def test_a_backup_killed_mid_write_leaves_the_previous_one_whole_and_restorable(
        tmp_path, monkeypatch, killed_while):
    model = dense_model()
    backup = callbacks.TrainingBackup(str(tmp_path), save_freq=1)
    backup.set_model(model)
    backup.save(epoch=2, batch=5)
    state = callbacks.TrainingBackup.backups(str(tmp_path))
    weights_file = tmp_path / state[0]["weights"]
    whole = weights_file.read_bytes()
    saved = [value.copy() for value in model.get_weights()]

    def killed_while_writing(filepath, overwrite=True):
        with open(filepath, "wb") as handle:
            handle.write(whole[:100])  # the first bytes of a weights file, then the kill
        raise Killed()

    def killed_before_the_rename(path, text):
        raise Killed()

    model.set_weights([value + 1.0 for value in saved])
    if killed_while == "weights":
        monkeypatch.setattr(model, "save_weights", killed_while_writing)
    else:  # the new weights file is whole; the state that would name it is not written
        monkeypatch.setattr(callbacks.atomic, "write_text", killed_before_the_rename)
    with pytest.raises(Killed):
        backup.save(epoch=3)
    assert callbacks.TrainingBackup.backups(str(tmp_path)) == state
    assert weights_file.read_bytes() == whole

    restarted = dense_model()
    assert callbacks.TrainingBackup(str(tmp_path)).restore(restarted) == 2
    for restored, expected in zip(restarted.get_weights(), saved):
        np.testing.assert_array_equal(restored, expected)


class KillAt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.weights = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            self.weights = [value.copy() for value in self.model.get_weights()]
            raise Killed()


def test_fit_resumes_from_the_backup_at_the_epoch_it_was_killed_in(tmp_path):
    x, y = np.arange(48, dtype="float32").reshape(16, 3) / 48, np.ones((16, 2), "float32")
    model = dense_model()
    kill = KillAt(epoch=1, batch=2)  # after the backup of batch 2 (every batch is backed up)
    with pytest.raises(Killed):
        model.fit(x, y, batch_size=4, epochs=3, verbose=0,
                  callbacks=[callbacks.TrainingBackup(str(tmp_path), save_freq=1), kill])
    newest, previous = callbacks.TrainingBackup.backups(str(tmp_path))
    assert (newest["epoch"], newest["batch"], newest["step"]) == (1, 3, 4 + 3)
    assert (previous["epoch"], previous["batch"], previous["step"]) == (1, 2, 4 + 2)
    assert len(list(tmp_path.glob("*.weights.h5"))) == 2  # older backups are removed

    restarted = dense_model()
    backup = callbacks.TrainingBackup(str(tmp_path), save_freq=2)
    initial_epoch = backup.restore(restarted)
    assert initial_epoch == 1
    for restored, expected in zip(restarted.get_weights(), kill.weights):
        np.testing.assert_array_equal(restored, expected)
    iterations = int(restarted.optimizer.iterations.numpy())
    assert iterations == 4 + 3  # the optimizer's state came back too
    history = restarted.fit(x, y, batch_size=4, epochs=3, initial_epoch=initial_epoch, verbose=0,
                            callbacks=[backup])
    assert history.epoch == [1, 2]
    assert not tmp_path.exists()  # removed once fit ended


@pytest.mark.parametrize("state", ["{not json", '{"epoch": 1}', '{"backups": [{"epoch": 1}]}',
                                   '{"backups": [{"epoch": 1, "batch": 0, "step": 3, "weights": "gone.weights.h5"}]}'])
def test_a_backup_that_cannot_be_read_is_refused_with_what_to_do(tmp_path, state):
    (tmp_path / callbacks.TrainingBackup.STATE_FILE).write_text(state)
    model = dense_model()
    before = [value.copy() for value in model.get_weights()]
    with pytest.raises(ValueError, match="cannot be restored.*move it aside"):
        callbacks.TrainingBackup(str(tmp_path)).restore(model)
    for value, expected in zip(model.get_weights(), before):
        np.testing.assert_array_equal(value, expected)


@pytest.mark.parametrize("save_freq", [0, -1, 1.5, True, "batch"])
def test_a_backup_refuses_a_save_frequency_it_cannot_keep(tmp_path, save_freq):
    with pytest.raises(ValueError, match="save_freq"):
        callbacks.TrainingBackup(str(tmp_path), save_freq=save_freq)


def test_a_worker_one_backup_ahead_restores_the_one_every_worker_holds(tmp_path):
    x, y = np.arange(48, dtype="float32").reshape(16, 3) / 48, np.ones((16, 2), "float32")
    model = dense_model()
    kill = KillAt(epoch=0, batch=2)
    with pytest.raises(Killed):
        model.fit(x, y, batch_size=4, epochs=2, verbose=0,
                  callbacks=[callbacks.TrainingBackup(str(tmp_path), save_freq=1), kill])
    newest, previous = callbacks.TrainingBackup.backups(str(tmp_path))
    asked = []

    def agree(step):  # another worker was killed before it committed step 3
        asked.append(step)
        return previous["step"]

    restarted = dense_model()
    assert callbacks.TrainingBackup(str(tmp_path)).restore(restarted, agree=agree) == 0
    assert asked == [newest["step"]] == [3]
    assert int(restarted.optimizer.iterations.numpy()) == previous["step"] == 2
    with pytest.raises(ValueError, match="no backup of step 1"):
        callbacks.TrainingBackup(str(tmp_path)).restore(dense_model(), agree=lambda step: 1)
    fresh = dense_model()
    before = [value.copy() for value in fresh.get_weights()]
    assert callbacks.TrainingBackup(str(tmp_path)).restore(fresh, agree=lambda step: -1) == 0  # one has none
    for value, expected in zip(fresh.get_weights(), before):
        np.testing.assert_array_equal(value, expected)
