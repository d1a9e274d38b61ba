"""`--distribute multiworker`: two worker processes on 127.0.0.1 train one model.

Each worker is `python -m training.train` with its own TF_CONFIG, as on two machines."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from serving.launch import free_port
from tests.helpers import backed_up_epoch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_workers(run_dir, ports, *flags, epochs=2):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(len(ports)):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "training.train", "--preset", "tiny", "--data", "synthetic",
             "--decoder", "gru", "--synthetic-size", "600", "--batch-size", "16", "--epochs", str(epochs),
             "--distribute", "multiworker", "--run-dir", str(run_dir), "--quiet", *flags],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return processes


def finish(processes, timeout=300):
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
    return outputs


def digest(output):
    lines = [line for line in output.splitlines() if "weights sha1" in line]
    assert lines, output[-3000:]
    return lines[-1].rsplit(" ", 1)[1]


@pytest.mark.slow
def test_two_workers_end_with_identical_weights_and_only_the_chief_writes(tmp_path):
    run_dir = tmp_path / "run"
    processes = start_workers(run_dir, [free_port(), free_port()])
    outputs = finish(processes)
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    assert digest(outputs[0]) == digest(outputs[1])
    summary = json.loads((run_dir / "train_summary.json").read_text())
    assert summary["replicas"] == 2 and summary["weights_sha1"] == digest(outputs[0])
    assert (run_dir / "model.keras").exists() and (run_dir / "logs").is_dir()
    # Worker 1 wrote nothing to the run directory, and its own folder is gone.
    assert "worker 1:" in outputs[1] and not any("worker-1" in name for name in os.listdir(run_dir))
    assert not [line for line in outputs[1].splitlines() if str(run_dir) in line]


@pytest.mark.slow
def test_a_killed_worker_is_resumed_from_the_backup(tmp_path):
    run_dir = tmp_path / "run"
    ports = [free_port(), free_port()]
    processes = start_workers(run_dir, ports, epochs=3)
    history, backup = run_dir / "history.csv", run_dir / "backup"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and backed_up_epoch(backup) < 1:
        time.sleep(0.1)
    assert backed_up_epoch(backup) >= 1, "no backup was written in the second epoch"
    processes[1].send_signal(signal.SIGKILL)  # a worker dies in the second epoch
    processes[0].kill()  # its peer waits in a collective: the cluster is restarted
    finish(processes)
    epochs_before = len(history.read_text().splitlines()) - 1
    processes = start_workers(run_dir, ports, epochs=3)
    outputs = finish(processes)
    codes = [process.returncode for process in processes]
    assert codes == [0, 0], "\n\n".join(f"worker {index} exited {code}:\n{output[-3000:]}"
                                          for index, (code, output) in enumerate(zip(codes, outputs)))
    assert digest(outputs[0]) == digest(outputs[1])
    rows = history.read_text().splitlines()[1:]
    epochs = [int(row.split(",")[0]) for row in rows]
    # The restarted run went on from the backup: it did not start again at epoch 0.
    assert epochs_before >= 1 and epochs[-1] == 2 and epochs.count(0) == 1, rows


ONE_WORKER = '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}'


@pytest.mark.parametrize("tf_config, extra, message", [
    (None, [], "TF_CONFIG, which is not set"),
    ("{not json", [], "TF_CONFIG is malformed"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}', [], "not in its cluster"),
    ('{"cluster": {"ps": ["127.0.0.1:1"]}, "task": {"type": "ps", "index": 0}}', [], "does not train"),
    (ONE_WORKER, ["--time-budget", "60"], "trains for --epochs"),
])
def test_a_missing_or_malformed_cluster_is_refused_before_anything_is_written(
        tmp_path, monkeypatch, capsys, tf_config, extra, message):
    from training import train

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    run_dir = tmp_path / "run"
    code = train.main(["--preset", "tiny", "--data", "synthetic", "--distribute", "multiworker",
                       "--run-dir", str(run_dir), *extra])
    assert code == 2 and message in capsys.readouterr().err
    assert not run_dir.exists()


def test_the_keras_workaround_refuses_a_keras_without_what_it_replaces(monkeypatch):
    from keras.src.backend.tensorflow import trainer

    from training import cluster

    monkeypatch.delattr(trainer, "_tfode_multiworker_patch", raising=False)
    monkeypatch.delattr(trainer.TensorFlowTrainer, "_maybe_symbolic_build")
    with pytest.raises(RuntimeError, match="_maybe_symbolic_build"):
        cluster.patch_keras_for_multiworker()
    assert trainer.reduce_per_replica.__module__ == trainer.__name__  # nothing was half-replaced
