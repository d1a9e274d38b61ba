"""The serving signatures and the atomic SavedModel writer.

`export_saved_model(model, text, export_base, model_name, version)` writes
`export_base/model_name/version/`, the layout TF Serving watches, with tag `serve` and four
signatures over raw UTF-8 strings (normalisation, tokenisation and vocabulary lookup run inside
the graph; the vocabulary travels as an asset):

  serving_default, decode   sentences [batch] string
        → sentences [batch] string, token_ids [batch, steps] int32,
          scores [batch, steps] float32 (log-probabilities), lengths [batch] int32,
          truncated [batch] bool (the input had more than max_length tokens and was cut)
  encode                    sentences [batch] string
        → latent, mean, log_variance [batch, units] float32, truncated [batch] bool
  interpolate               sentence_a [batch], sentence_b [batch] string, num_steps int32
                            scalar (2 … MAX_INTERPOLATION_STEPS), mode string scalar
                            ("linear" | "slerp")
        → sentences [batch, num_steps] string, alphas [num_steps] float32
  trajectory                sentences [batch] string, times [T] float32 (finite, >= 0, any real
                            time; token k sits at k·Δt)
        → states [batch, T, state_units] float32, top_k_ids [batch, T, k] int32,
          top_k_tokens [batch, T, k] string, top_k_probabilities [batch, T, k] float32

Bad input (an empty batch, an empty or over-long sentence, bad num_steps, mode or times) fails
the request with InvalidArgumentError and a message saying what was wrong. The export is
written to a hidden temporary folder and renamed into place, so a watcher never sees half a
model; `assets.extra/` holds `tfode.json` (settings, solver, vocabulary size) and
`tf_serving_warmup_requests` (one request per signature).
"""

from __future__ import annotations

import json
import os
import time
import types

import keras
import tensorflow as tf

from tfode.model import Seq2SeqODE
from tfode import atomic
from tfode.text import TextProcessor

MAX_SENTENCE_BYTES = 1024
MAX_INTERPOLATION_STEPS = 64
MAX_TRAJECTORY_TIMES = 1024
TOP_K = 5
SIGNATURES = ("serving_default", "decode", "encode", "interpolate", "trajectory")
WARMUP_FILE = "tf_serving_warmup_requests"
METADATA_FILE = "tfode.json"


class ExportError(ValueError):
    """An export that cannot be written; the message says why."""


class ServingModule(tf.Module):
    """The model and its text pipeline behind string-in, string-out tf.functions."""

    def __init__(self, model: Seq2SeqODE, text: TextProcessor, beam_width: int = 1):
        super().__init__(name="tfode_serving")
        # Keras 3 variables wrap tf.Variables, and saving both gives each weight two handles
        # in the exported graph: the TF1 session loader (TF Serving's path) then restores one
        # and the signatures read the other, uninitialised. So the Keras model is kept out of
        # the object graph (a plain namespace is not tracked) and only the tf.Variables inside
        # its variables are saved.
        self._untracked = types.SimpleNamespace(model=model)
        self.raw_variables = [variable.value for variable in model.variables]
        self.text = text
        self.beam_width = beam_width

    @property
    def model(self) -> Seq2SeqODE:
        return self._untracked.model

    def _encode_text(self, sentences, name="sentences"):
        batch = tf.size(sentences)
        checks = [
            tf.debugging.assert_greater(batch, 0, message=f"{name}: the batch is empty"),
            tf.debugging.assert_less_equal(
                tf.strings.length(sentences), MAX_SENTENCE_BYTES,
                message=f"{name}: a sentence is longer than {MAX_SENTENCE_BYTES} bytes",
            ),
        ]
        with tf.control_dependencies(checks):
            encoded = self.text.encode(sentences)
        no_tokens = tf.debugging.assert_greater(
            tf.reduce_min(encoded.lengths), 0,
            message=f"{name}: a sentence is empty (no words after normalisation)",
        )
        with tf.control_dependencies([no_tokens]):
            ids = tf.identity(encoded.ids[:, : tf.reduce_max(encoded.lengths)])
        return ids, encoded.truncated

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def decode(self, sentences):
        ids, truncated = self._encode_text(sentences)
        decoded = self.model.reconstruct(ids, beam_width=self.beam_width)
        return {
            "sentences": self.text.decode(decoded.ids, decoded.lengths),
            "token_ids": decoded.ids,
            "scores": decoded.scores,
            "lengths": decoded.lengths,
            "truncated": truncated,
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def encode(self, sentences):
        ids, truncated = self._encode_text(sentences)
        latent, mean, log_variance = self.model.encode(ids)
        return {"latent": latent, "mean": mean, "log_variance": log_variance, "truncated": truncated}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="sentence_a"),
            tf.TensorSpec([None], tf.string, name="sentence_b"),
            tf.TensorSpec([], tf.int32, name="num_steps"),
            tf.TensorSpec([], tf.string, name="mode"),
        ]
    )
    def interpolate(self, sentence_a, sentence_b, num_steps, mode):
        checks = [
            tf.debugging.assert_equal(
                tf.size(sentence_a), tf.size(sentence_b),
                message="sentence_a and sentence_b must have the same batch size",
            ),
            tf.debugging.assert_greater_equal(num_steps, 2, message="num_steps must be at least 2"),
            tf.debugging.assert_less_equal(
                num_steps, MAX_INTERPOLATION_STEPS,
                message=f"num_steps must be at most {MAX_INTERPOLATION_STEPS}",
            ),
        ]
        with tf.control_dependencies(checks):
            ids_a, _ = self._encode_text(sentence_a, "sentence_a")
            ids_b, _ = self._encode_text(sentence_b, "sentence_b")
        width = tf.maximum(tf.shape(ids_a)[1], tf.shape(ids_b)[1])
        ids_a = tf.pad(ids_a, [[0, 0], [0, width - tf.shape(ids_a)[1]]])
        ids_b = tf.pad(ids_b, [[0, 0], [0, width - tf.shape(ids_b)[1]]])
        alphas = tf.linspace(0.0, 1.0, num_steps)
        path = self.model.interpolate(ids_a, ids_b, alphas, mode, beam_width=self.beam_width)
        batch = tf.shape(path.ids)[0]
        flat_ids = tf.reshape(path.ids, [batch * num_steps, -1])
        flat_lengths = tf.reshape(path.lengths, [-1])
        sentences = tf.reshape(self.text.decode(flat_ids, flat_lengths), [batch, num_steps])
        return {"sentences": sentences, "alphas": alphas}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="sentences"),
            tf.TensorSpec([None], tf.float32, name="times"),
        ]
    )
    def trajectory(self, sentences, times):
        checks = [
            tf.debugging.assert_greater(tf.size(times), 0, message="times is empty"),
            tf.debugging.assert_less_equal(
                tf.size(times), MAX_TRAJECTORY_TIMES,
                message=f"at most {MAX_TRAJECTORY_TIMES} times per request",
            ),
        ]
        with tf.control_dependencies(checks):
            ids, _ = self._encode_text(sentences)
        states, probabilities = self.model.trajectory(ids, times)
        top = tf.math.top_k(probabilities, k=TOP_K)
        return {
            "states": states,
            "top_k_ids": top.indices,
            "top_k_tokens": self.text.tokens(top.indices),
            "top_k_probabilities": top.values,
        }


def metadata(model: Seq2SeqODE, text: TextProcessor, beam_width: int) -> dict:
    return {
        "model": keras.saving.serialize_keras_object(model),
        "vocabulary_size": text.vocabulary_size,
        "max_length": text.max_length,
        "beam_width": beam_width,
        "limits": {
            "max_sentence_bytes": MAX_SENTENCE_BYTES,
            "max_interpolation_steps": MAX_INTERPOLATION_STEPS,
            "max_trajectory_times": MAX_TRAJECTORY_TIMES,
            "top_k": TOP_K,
        },
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tensorflow": tf.__version__,
    }


def warmup_requests(model_name: str):
    """One `PredictionLog` per signature, for `assets.extra/tf_serving_warmup_requests`."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    examples = {
        "serving_default": {"sentences": tf.constant(["i like your style ."])},
        "encode": {"sentences": tf.constant(["i like your style ."])},
        "interpolate": {
            "sentence_a": tf.constant(["i like your style ."]),
            "sentence_b": tf.constant(["the pain was unbearable ."]),
            "num_steps": tf.constant(3, tf.int32),
            "mode": tf.constant("slerp"),
        },
        "trajectory": {"sentences": tf.constant(["i like your style ."]), "times": tf.constant([0.5, 1.0, 1.5])},
    }
    for signature, inputs in examples.items():
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
        )
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        yield prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def export_saved_model(
    model: Seq2SeqODE,
    text: TextProcessor,
    export_base: str,
    model_name: str,
    version: int | None = None,
    overwrite: bool = False,
    beam_width: int = 1,
) -> str:
    """Writes the SavedModel atomically; returns the version folder's path.

    `version` defaults to one more than the newest present (1 for the first). An existing
    version is refused unless `overwrite`.
    """
    if not model_name or os.sep in model_name or model_name.startswith("."):
        raise ExportError(f"Invalid model name {model_name!r}.")
    if beam_width < 1:
        raise ExportError(f"beam_width must be at least 1, got {beam_width}.")
    if beam_width != 1 and not model.decoder.autoregressive:
        raise ExportError(
            f"The {type(model.decoder).__name__} is non-autoregressive: it has no beam search; "
            "export with beam_width=1."
        )
    model_dir = os.path.join(export_base, model_name)
    os.makedirs(model_dir, exist_ok=True)
    existing = [int(name) for name in os.listdir(model_dir) if name.isdigit()]
    if version is None:
        version = max(existing, default=0) + 1
    if version < 1:
        raise ExportError(f"Versions are positive integers, got {version}.")
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final) and not overwrite:
        raise ExportError(f"{final} exists; choose another --version or pass --overwrite.")

    with atomic.replacing(final) as temporary:
        module = ServingModule(model, text, beam_width)
        signatures = {
            "serving_default": module.decode.get_concrete_function(),
            "decode": module.decode.get_concrete_function(),
            "encode": module.encode.get_concrete_function(),
            "interpolate": module.interpolate.get_concrete_function(),
            "trajectory": module.trajectory.get_concrete_function(),
        }
        tf.saved_model.save(module, temporary, signatures=signatures)
        extra = os.path.join(temporary, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, METADATA_FILE), "w") as handle:
            json.dump(metadata(model, text, beam_width), handle, indent=2)
        with tf.io.TFRecordWriter(os.path.join(extra, WARMUP_FILE)) as writer:
            for log in warmup_requests(model_name):
                writer.write(log.SerializeToString())
    return final
