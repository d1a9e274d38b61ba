"""The model server speaking TF Serving's API, its client, load tools and the explorer."""

import importlib.util

# The `serve` extra (pyproject.toml), by import name: found, not imported, so that --help stays quick.
_EXTRA = {"grpc": "grpcio", "grpc_health": "grpcio-health-checking", "prometheus_client": "prometheus-client",
          "tensorflow_serving": "tensorflow-serving-api"}
_missing = sorted(package for module, package in _EXTRA.items() if importlib.util.find_spec(module) is None)
if _missing:
    raise ImportError(f"tfode's serving tools need {', '.join(_missing)}: pip install 'tfode[serve]'")
