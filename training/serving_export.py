"""A SavedModel for TF Serving: `export_base/model_name/version/`, written whole or not at all.

    export_for_serving(model, text, export_base, model_name, version=None, overwrite=False, **options)

writes `tfode.export.save_saved_model(model, text, …, **options)` into a hidden temporary folder
beside the version folder, adds `assets.extra/tf_serving_warmup_requests` (one request of
several rows per signature, which the model server replays before serving the version), and
renames it into place, so a watching server never sees half a model.
"""

from __future__ import annotations

import os

import tensorflow as tf

from tfode import atomic
from tfode.export import ExportError, save_saved_model

WARMUP_FILE = "tf_serving_warmup_requests"


def version_folder(export_base: str, model_name: str, version: int | None = None, overwrite: bool = False) -> str:
    """The folder a new version goes to: `version`, or one more than the newest present (1 for
    the first); ExportError for a name that is not a plain folder name, a version below 1, or
    one that exists without `overwrite`."""
    if not model_name or os.sep in model_name or model_name.startswith("."):
        raise ExportError(f"Invalid model name {model_name!r}.")
    model_dir = os.path.join(export_base, model_name)
    existing = [int(name) for name in os.listdir(model_dir) if name.isdigit()] if os.path.isdir(model_dir) else []
    if version is None:
        version = max(existing, default=0) + 1
    if version < 1:
        raise ExportError(f"Versions are positive integers, got {version}.")
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final) and not overwrite:
        raise ExportError(f"{final} exists; choose another --version or pass --overwrite.")
    return final


def export_for_serving(model, text, export_base: str, model_name: str, version: int | None = None,
                       overwrite: bool = False, **options) -> str:
    """Writes the version atomically (see the module docstring); returns its folder. `options`
    go to `tfode.export.save_saved_model` (beam_width, path_search, language_model, landmarks)."""
    final = version_folder(export_base, model_name, version, overwrite)
    with atomic.replacing(final) as temporary:
        signatures = save_saved_model(model, text, temporary, **options)
        with tf.io.TFRecordWriter(os.path.join(temporary, "assets.extra", WARMUP_FILE)) as writer:
            for log in warmup_requests(model_name, model.encoder.units, signatures):
                writer.write(log.SerializeToString())
    return final


def warmup_requests(model_name: str, units: int, signatures):
    """One `PredictionLog` per signature of `signatures`, for
    `assets.extra/tf_serving_warmup_requests`: each of several rows, so that warm-up also traces
    the batched shapes (`units`: the latent width). Every signature name is warmed, aliases
    included: the session prepares each signature's subgraph at its first call."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    examples = {
        "serving_default": {"sentences": tf.constant(["i like your style .", "the cat sat on the mat ."])},
        "decode": {"sentences": tf.constant(["i like your style .", "the cat sat on the mat ."])},
        "encode": {"sentences": tf.constant(["i like your style .", "you ."])},
        "interpolate": {
            "sentence_a": tf.constant(["i like your style ."] * 3),
            "sentence_b": tf.constant(["the pain was unbearable ."] * 3),
            "alpha": tf.constant([0.0, 0.5, 1.0]),
            "mode": tf.constant(["slerp", "slerp", "linear"]),
        },
        "path": {"sentence_a": tf.constant(["i like your style .", "you ."]),
                 "sentence_b": tf.constant(["the pain was unbearable .", "i like your style ."]),
                 "points": tf.constant([9, 5])},
        "trajectory": {"sentences": tf.constant(["i like your style ."] * 2 + ["you ."]),
                       "time": tf.constant([0.5, 1.0, 1.5])},
        "decode_latent": {"latent": tf.zeros([2, units])},
        "trajectory_latent": {"latent": tf.zeros([2, units]), "time": tf.constant([0.5, 2.0])},
        "landmarks": {"count": tf.constant([400, 1])},
        "locate": {"codes": tf.zeros([2, units])},
    }
    for signature, inputs in examples.items():
        if signature not in signatures:
            continue
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
        )
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        yield prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
