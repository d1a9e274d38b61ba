"""End to end: `training.train` and `training.evaluate` on the built-in corpus."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from tests.helpers import backed_up_epoch

from training import evaluate, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--data", "synthetic", "--preset", "tiny", "--quiet"]


def history(run_dir):
    with open(os.path.join(run_dir, "history.csv")) as handle:
        return list(csv.DictReader(handle))


def run_cli(module, *args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run") / "tiny")
    code = train.main([*TINY, "--decoder", "odernn", "--run-dir", run_dir, "--epochs", "3",
                       "--learning-rate", "0.01", "--label-smoothing", "0.05"])
    assert code == 0
    return run_dir


def test_two_epochs_of_fit_lower_the_loss_and_write_the_run(trained_run):
    rows = history(trained_run)
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    for name in ("config.json", "vocab.txt", "model.keras", "checkpoints/best.keras",
                 "checkpoints/last.keras", "train_summary.json"):
        assert os.path.exists(os.path.join(trained_run, name)), name
    assert os.listdir(os.path.join(trained_run, "logs"))  # TensorBoard events
    config = json.load(open(os.path.join(trained_run, "config.json")))
    assert config["decoder"] == "odernn" and config["preset"] == "tiny" and config["epochs"] == 3
    with zipfile.ZipFile(os.path.join(trained_run, "model.keras")) as saved:
        loss = json.loads(saved.read("config.json"))["compile_config"]["loss"]
    assert loss["config"]["label_smoothing"] == 0.05  # the flag reaches the training loss


def test_evaluation_report_holds_numbers(trained_run, tmp_path):
    from tfode.paths import PathSearch

    metrics = evaluate.evaluate(trained_run, split="validation", report_dir=str(tmp_path), interpolation_pairs=12,
                                grid_points=33, searches={"path": PathSearch(directions=2)})  # a light search
    for key in ("token_accuracy", "exact_match", "bleu", "perplexity", "midpoint_consistency",
                "nfe_per_sentence", "teacher_forced_token_accuracy"):
        assert isinstance(metrics[key], float), key
    assert 0.0 <= metrics["token_accuracy"] <= 1.0 and metrics["perplexity"] > 1.0
    assert metrics["nfe_per_sentence"] > 0
    bands = [band for band in metrics["accuracy_by_frequency"] if band["tokens"]]
    tokens = sum(band["tokens"] for band in bands)  # the bands cover every target token once
    assert sum(band["accuracy"] * band["tokens"] for band in bands) / tokens == pytest.approx(
        metrics["token_accuracy"])
    saved = json.load(open(tmp_path / "metrics.json"))
    assert saved["token_accuracy"] == metrics["token_accuracy"]
    assert set(saved["interpolation"]) == {"linear", "slerp", "path"}
    linear = saved["interpolation"]["linear"]
    for figure in ("grammatical_interior", "real_interior", "monotone", "distinct", "endpoints"):
        assert linear[figure]["n"] > 0, figure
    assert linear["grammatical"]["n"] == linear["new"]  # shares of the new points only
    assert linear["grid_points"] == 33 and linear["grid_distinct"]["n"] == linear["paths"] > 0
    searched = saved["interpolation"]["path"]
    assert searched["points"] == 9 and searched["seconds_per_path"] > 0 and "grid_points" not in searched
    for figure in ("gradual", "smooth"):  # defined on the paths whose ends differ
        assert 0 <= linear[figure]["n"] <= linear["paths"], figure
    assert 0.0 <= saved["interpolation"]["linear"]["grammatical_interior"]["value"] <= 1.0
    steps = saved["interpolation"]["linear"]["steps"]
    assert len(steps) == saved["interpolation"]["linear"]["points"] - 1 and min(steps) >= 0
    assert metrics["midpoints"] > 0  # every sentence's midpoints, not a sample
    report = (tmp_path / "report.md").read_text()
    assert "## Token accuracy by how frequent" in report and "| words ranked 1–" in report
    assert "| word edits of each step | " in report
    for picture in ("trajectories.png", "token_probabilities.png", "interpolation_linear.png", "latent_paths.png",
                    "interpolant_dynamics.png"):
        assert (tmp_path / picture).stat().st_size > 1000
        assert f"]({picture})" in report


def test_the_export_maps_a_seeded_sample_of_the_runs_test_sentences(trained_run):
    from training.export import landmark_sentences
    from training.rundir import read_config
    from training.run_data import run_sentences

    test = run_sentences(read_config(trained_run), split="test").sentences
    sample = landmark_sentences(trained_run, 5)
    assert len(sample) == 5 and set(sample) <= set(test)
    assert landmark_sentences(trained_run, 5) == sample  # seeded
    assert landmark_sentences(trained_run, len(test) + 10) == test


def test_finished_run_and_changed_configuration_are_refused(trained_run):
    before = os.path.getmtime(os.path.join(trained_run, "model.keras"))
    assert train.main([*TINY, "--decoder", "odernn", "--run-dir", trained_run, "--epochs", "3",
                       "--learning-rate", "0.01"]) == 2
    assert train.main([*TINY, "--decoder", "gru", "--run-dir", trained_run]) == 2
    assert os.path.getmtime(os.path.join(trained_run, "model.keras")) == before


def test_cli_rejects_bad_flags_and_missing_data(tmp_path, capsys):
    from training import evaluate, train

    with pytest.raises(SystemExit) as stopped:
        train.main(["--data", "synthetic", "--run-dir", str(tmp_path / "a"), "--decoder", "lstm"])
    assert stopped.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert train.main(["--data", str(tmp_path / "missing.txt"), "--run-dir", str(tmp_path / "b")]) == 2
    assert "No data file" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "b" / "model.keras")
    assert evaluate.main(["--run-dir", str(tmp_path / "nothing")]) == 2
    assert "not a training run" in capsys.readouterr().err


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_and_finishes_all_epochs(tmp_path):
    run_dir = str(tmp_path / "killed")
    args = ["training.train", *TINY, "--decoder", "gru", "--run-dir", run_dir, "--epochs", "4",
            "--synthetic-size", "1200"]
    process = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    backup = os.path.join(run_dir, "backup")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if backed_up_epoch(backup) >= 1:
            break
        time.sleep(0.05)
    assert process.poll() is None, "training finished before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    epochs = [int(row["epoch"]) for row in history(run_dir)]
    assert epochs[-1] == 3 and sorted(set(epochs)) == [0, 1, 2, 3]
    assert not os.path.exists(os.path.join(run_dir, "backup"))  # removed once finished
    for name in os.listdir(os.path.join(run_dir, "checkpoints")):
        assert name in ("best.keras", "last.keras")  # no temporary left behind


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    run_dir = str(tmp_path / "mirrored")
    result = run_cli("training.train", *TINY, "--decoder", "trajectory", "--run-dir", run_dir,
                     "--epochs", "1", "--distribute", "mirrored", "--logical-cpus", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.exists(os.path.join(run_dir, "model.keras"))


def deterministic_runs(tmp_path, seeds):
    """The weights of one CLI run per seed; the runs go side by side (each is single-threaded)."""
    from training.rundir import load_run

    processes = []
    for index, seed in enumerate(seeds):
        run_dir = str(tmp_path / f"run-{index}")
        processes.append((run_dir, subprocess.Popen(
            [sys.executable, "-m", "training.train", *TINY, "--decoder", "odernn", "--epochs", "1",
             "--seed", str(seed), "--dropout", "0.2", "--scheduled-sampling", "0.5", "--word-dropout", "0.1",
             "--deterministic", "--run-dir", run_dir],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})))
    weights = []
    for run_dir, process in processes:
        _, errors = process.communicate(timeout=600)
        assert process.returncode == 0, errors[-2000:]
        weights.append(load_run(run_dir)[2].get_weights())
    return weights


@pytest.mark.slow
def test_the_seed_makes_a_run_reproducible_and_another_seed_another_run(tmp_path):
    import numpy as np

    first, again, other = deterministic_runs(tmp_path, (3, 3, 4))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, c) for a, c in zip(first, other))
