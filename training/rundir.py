"""A run directory: what `train` writes and `evaluate`/`export` read.

    RUN_DIR/config.json        the resolved configuration
    RUN_DIR/vocab.txt, text_config.json   the text pipeline
    RUN_DIR/model.keras        the trained model (best validation loss)
    RUN_DIR/language_model.keras   the language model the model's path search asks (optional;
                               `training.fit_language_model`)
    RUN_DIR/checkpoints/       last.keras and best.keras, each written atomically
    RUN_DIR/backup/            the TrainingBackup of a run that is unfinished
    RUN_DIR/history.csv, logs/ CSVLogger and TensorBoard
    RUN_DIR/nfe.csv            vector-field evaluations per step (ODE decoders)
    RUN_DIR/report/            what `training.evaluate` writes

Every name is defined here once; the commands ask for paths through `path(run_dir, NAME)`.
"""

from __future__ import annotations

import json
import os

# TensorFlow loads only when a model or file is touched, so that the CLIs' --help answers at once.

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
LANGUAGE_MODEL_FILE = "language_model.keras"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.keras"
BEST_CHECKPOINT = "best.keras"
BACKUP = "backup"
HISTORY_FILE = "history.csv"
LOGS = "logs"
NFE_FILE = "nfe.csv"
REPORT = "report"


def path(run_dir: str, *names: str) -> str:
    """`run_dir/names…`, for the names above."""
    return os.path.join(run_dir, *names)


class RunError(ValueError):
    """A run directory that cannot be used; the message says why."""


def write_json_atomically(path: str, value) -> None:
    from tfode import atomic

    atomic.write_text(path, json.dumps(value, indent=2, sort_keys=True))


def save_model_atomically(model, path: str) -> None:
    """Saves to a temporary file beside `path`, then renames: a reader never sees half a file."""
    from tfode import atomic

    with atomic.replacing(path, suffix=".keras") as temporary:
        model.save(temporary)


def read_config(run_dir: str) -> dict:
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise RunError(f"{run_dir} is not a training run: {CONFIG_FILE} is missing.")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_run(run_dir: str, model_file: str | None = None):
    """`(config, text, model)` of a finished (or checkpointed) run."""
    import keras

    import tfode  # noqa: F401  (registers the layers for loading)
    from tfode.text import TextProcessor

    config = read_config(run_dir)
    text = TextProcessor.load(run_dir)
    candidates = [model_file] if model_file else [
        os.path.join(run_dir, MODEL_FILE),
        os.path.join(run_dir, CHECKPOINTS, BEST_CHECKPOINT),
        os.path.join(run_dir, CHECKPOINTS, LAST_CHECKPOINT),
    ]
    for path in candidates:
        if path and os.path.exists(path):
            return config, text, keras.models.load_model(path)
    raise RunError(f"{run_dir} holds no trained model yet (looked for {candidates}).")


def load_language_model(run_dir: str):
    """The run's `tfode.LanguageModel`, or None when it has none."""
    path = os.path.join(run_dir, LANGUAGE_MODEL_FILE)
    if not os.path.exists(path):
        return None
    import keras

    import tfode  # noqa: F401  (registers the layers for loading)

    return keras.models.load_model(path)
