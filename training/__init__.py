"""Everything a researcher runs: data, training, evaluation, export, benchmarks."""

import importlib.util
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The `train` extra (pyproject.toml), by import name: found, not imported, so that --help stays quick.
_EXTRA = {"tensorboard": "tensorboard", "sacrebleu": "sacrebleu", "matplotlib": "matplotlib",
          "rapidfuzz": "rapidfuzz", "tensorflow_serving": "tensorflow-serving-api"}
_missing = sorted(package for module, package in _EXTRA.items() if importlib.util.find_spec(module) is None)
if _missing:
    raise ImportError(f"tfode's training tools need {', '.join(_missing)}: pip install 'tfode[train]'")
