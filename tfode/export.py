"""The serving signatures, and the SavedModel that holds them.

`save_saved_model(model, text, directory)` writes a SavedModel with tag `serve` and these
signatures over raw UTF-8 strings (normalisation, tokenisation and vocabulary lookup run inside
the graph; the vocabulary travels as an asset):

  serving_default, decode   sentences [batch] string
        → sentences [batch] string, token_ids [batch, steps] int32,
          scores [batch, steps] float32 (log-probabilities), lengths [batch] int32,
          token_times [batch, steps] float32 (the time t_k = k·Δt each token is read at),
          truncated [batch] bool (the input had more than max_length tokens and was cut),
          nfe [batch] int32 (vector-field evaluations the solver spent on the batch the row was
          decoded in: the same for every row of a run, so not a property of the row alone)
  encode                    sentences [batch] string
        → latent, mean, log_variance [batch, units] float32, truncated [batch] bool
  interpolate               sentence_a [batch], sentence_b [batch] string, alpha [batch] float32
                            (0 … 1), mode [batch] string ("linear" | "slerp")
        → sentence [batch] string, code [batch, units] float32: row i is the point alpha[i] of
          the latent path from sentence_a[i] to sentence_b[i] and its code; a path of K points
          is K rows
  path                      sentence_a [batch], sentence_b [batch] string, points [batch] int32
                            (2 … paths.MAX_POINTS)
        → sentences [batch, P] string, codes [batch, P, units] float32: the product's path
          (`Seq2SeqODE.path`, the export's `PathSearch`) from sentence_a[i] to sentence_b[i], P
          being the batch's largest `points`; a row asking for fewer is padded with "" and zeros
  trajectory                sentences [batch] string, time [batch] float32 (finite, >= 0, any
                            real time; token k sits at k·Δt)
        → state [batch, state_units] float32, top_k_ids [batch, k] int32,
          top_k_tokens [batch, k] string, top_k_probabilities [batch, k] float32: what the
          decoder holds at time[i] while reconstructing sentences[i]

  decode_latent             latent [batch, units] float32 (finite)
        → sentences [batch] string, token_ids, scores, token_times [batch, steps], lengths
          [batch]: the model's decode of any latent code (the inverse of `encode`)
  trajectory_latent         latent [batch, units] float32, time [batch] float32 (finite, >= 0)
        → state, top_k_ids, top_k_tokens, top_k_probabilities as `trajectory`: what the decoder
          holds at time[i] while writing its own decode of latent[i]

With landmark sentences (`training.export` gives the run's test split), a `LatentMap` (a 2-D
principal-component plane fitted on their codes) adds:

  landmarks                 count [batch] int32 (>= 1)
        → sentences [batch, M] string, points [batch, M, 2] float32: the first count[i]
          landmark sentences and their places on the map, M = min(largest count, landmarks
          held); a row asking fewer is padded with "" and zeros
  locate                    codes [batch, units] float32 (finite; a code, or a decoder state
                            h(t) cut to its first `units` values)
        → points [batch, 2] float32 (the code on the map), neighbours [batch, K] string and
          distances [batch, K] float32: the K nearest landmarks in the latent space

Every input and output of every signature is per row (its first dimension is the batch), so
TF Serving's server-side batching can concatenate requests along dimension 0 and split the
answers back. Bad input (an empty batch, an empty or over-long sentence, rows of different
counts, a bad alpha, mode or time) fails the request with InvalidArgumentError and a message
saying what was wrong. `assets.extra/tfode.json` holds the settings (solver, search,
vocabulary size, limits). `training.serving_export` places it in TF Serving's layout.
"""

from __future__ import annotations

import dataclasses

import json
import os
import time
import types

import keras
import numpy as np
import tensorflow as tf

from tfode.model import Seq2SeqODE
from tfode import paths, solvers
from tfode.latent_map import NEIGHBOURS, LatentMap
from tfode.text import TextProcessor

MAX_SENTENCE_BYTES = 1024
TOP_K = 5
SIGNATURES = ("serving_default", "decode", "encode", "interpolate", "path", "trajectory", "decode_latent",
              "trajectory_latent")
MAP_SIGNATURES = ("landmarks", "locate")  # only in an export given landmark sentences
METADATA_FILE = "tfode.json"


class ExportError(ValueError):
    """An export that cannot be written; the message says why."""


class ServingModule(tf.Module):
    """The model and its text pipeline behind string-in, string-out tf.functions."""

    def __init__(self, model: Seq2SeqODE, text: TextProcessor, beam_width: int = 1,
                 path_search: paths.PathSearch | None = None, language_model=None,
                 latent_map: LatentMap | None = None):
        super().__init__(name="tfode_serving")
        # Keras 3 variables wrap tf.Variables, and saving both gives each weight two handles
        # in the exported graph: the TF1 session loader (TF Serving's path) then restores one
        # and the signatures read the other, uninitialised. So the Keras model is kept out of
        # the object graph (a plain namespace is not tracked) and only the tf.Variables inside
        # its variables are saved.
        self._untracked = types.SimpleNamespace(model=model, language_model=language_model)
        self.raw_variables = [variable.value for variable in model.variables]
        if language_model is not None:
            self.language_model_variables = [variable.value for variable in language_model.variables]
        self.text = text
        self.beam_width = beam_width
        self.path_search = path_search or paths.PathSearch()
        self.latent_map = latent_map

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
        return {**self._sentences(decoded), "truncated": truncated,
                "nfe": tf.fill(tf.shape(decoded.lengths), tf.cast(decoded.nfe, tf.int32))}

    def _sentences(self, decoded):
        """The outputs every decoding signature gives: its text, ids, scores and lengths."""
        return {
            "sentences": self.text.decode(decoded.ids, decoded.lengths),
            "token_ids": decoded.ids,
            "scores": decoded.scores,
            "lengths": decoded.lengths,
            "token_times": tf.broadcast_to(self.model.decoder.token_times(tf.shape(decoded.ids)[1])[None],
                                           tf.shape(decoded.scores)),
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
            tf.TensorSpec([None], tf.float32, name="alpha"),
            tf.TensorSpec([None], tf.string, name="mode"),
        ]
    )
    def interpolate(self, sentence_a, sentence_b, alpha, mode):
        ids_a, ids_b = self._encode_pair(sentence_a, sentence_b, {"alpha": alpha, "mode": mode}, alpha)
        code = self.model.latent_point(ids_a, ids_b, alpha, mode)
        decoded = self.model.decode(code, beam_width=self.beam_width)
        return {"sentence": self.text.decode(decoded.ids, decoded.lengths), "code": code}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="sentence_a"),
            tf.TensorSpec([None], tf.string, name="sentence_b"),
            tf.TensorSpec([None], tf.int32, name="points"),
        ]
    )
    def path(self, sentence_a, sentence_b, points):
        ids_a, ids_b = self._encode_pair(sentence_a, sentence_b, {"points": points})
        found = self.model.path(ids_a, ids_b, points, search=self.path_search, beam_width=self.beam_width,
                                language_model=self._untracked.language_model)
        shape = tf.shape(found.ids)
        sentences = self.text.decode(tf.reshape(found.ids, [-1, shape[2]]), tf.reshape(found.lengths, [-1]))
        return {"sentences": tf.reshape(sentences, shape[:2]), "codes": found.codes}

    def _encode_pair(self, sentence_a, sentence_b, per_row: dict, alpha=None):
        """Both sentences' ids, 0-padded to one width, after checking that `sentence_b` and every
        tensor of `per_row` (name → tensor) have one row per row of `sentence_a`, and that
        `alpha`, if given, lies in [0, 1]."""
        batch = tf.size(sentence_a)
        names = ", ".join(["sentence_a", "sentence_b", *per_row])
        checks = [
            tf.debugging.assert_equal(
                tf.stack([tf.size(sentence_b)] + [tf.size(t) for t in per_row.values()]), batch,
                message=f"{names} must have one row each",
            ),
        ]
        if alpha is not None:
            checks.append(tf.debugging.assert_equal(
                tf.reduce_all((alpha >= 0.0) & (alpha <= 1.0)), True,
                message="alpha must be between 0 and 1 (and finite)",
            ))
        with tf.control_dependencies(checks):  # nothing runs on inputs that failed a check
            sentence_a, sentence_b = tf.identity(sentence_a), tf.identity(sentence_b)
        ids_a, _ = self._encode_text(sentence_a, "sentence_a")
        ids_b, _ = self._encode_text(sentence_b, "sentence_b")
        width = tf.maximum(tf.shape(ids_a)[1], tf.shape(ids_b)[1])
        ids_a = tf.pad(ids_a, [[0, 0], [0, width - tf.shape(ids_a)[1]]])
        ids_b = tf.pad(ids_b, [[0, 0], [0, width - tf.shape(ids_b)[1]]])
        return ids_a, ids_b

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="sentences"),
            tf.TensorSpec([None], tf.float32, name="time"),
        ]
    )
    def trajectory(self, sentences, time):
        checks = [
            tf.debugging.assert_equal(tf.size(time), tf.size(sentences),
                                      message="sentences and time must have one row each"),
        ]
        with tf.control_dependencies(checks):  # nothing runs on inputs that failed a check
            sentences, time = tf.identity(sentences), tf.identity(time)
        if isinstance(self.model.decoder.solver, solvers.AdaptiveSolver):
            # An adaptive solver's steps may depend on which times it is asked for (BDF lands on
            # each): each row is solved alone, at its own time only.
            ids, _ = self._encode_text(sentences)
            state, probabilities = self._each_row_at_its_time(self.model.encode(ids)[0], time, ids)
        else:
            # Each distinct sentence is decoded once, at each distinct time asked of any row (a
            # fixed grid's states at a time never depend on the other times asked).
            distinct_sentences, sentence_index = tf.unique(sentences)
            distinct_times, time_index = tf.unique(time)
            ids, _ = self._encode_text(distinct_sentences)
            states, probabilities = self.model.trajectory(ids, distinct_times)
            at = tf.stack([sentence_index, time_index], axis=1)
            state, probabilities = tf.gather_nd(states, at), tf.gather_nd(probabilities, at)
        return self._top_k(state, probabilities)

    def _each_row_at_its_time(self, h0, time, tokens=None):
        """`(state [batch, units], probabilities [batch, vocab])` of each code of h0 `[batch,
        units]` alone at its own `time` `[batch]` (reading its row of `tokens`, when given)."""
        rows = (h0, time) if tokens is None else (h0, time, tokens)

        def one_row(row):
            states, probabilities = self.model.trajectory_at(
                row[0][None], row[1][None], None if tokens is None else row[2][None])
            return states[0, 0], probabilities[0, 0]

        return tf.map_fn(one_row, rows, fn_output_signature=(tf.float32, tf.float32))

    def _top_k(self, state, probabilities):
        top = tf.math.top_k(probabilities, k=TOP_K)
        return {
            "state": state,
            "top_k_ids": top.indices,
            "top_k_tokens": self.text.tokens(top.indices),
            "top_k_probabilities": top.values,
        }

    def _latent(self, latent, name="latent"):
        checks = [tf.debugging.assert_greater(tf.shape(latent)[0], 0, message=f"{name}: the batch is empty")]
        with tf.control_dependencies(checks):
            return tf.debugging.assert_all_finite(latent, f"{name}: every value must be finite")

    def decode_latent(self, latent):
        latent = self._latent(latent)
        return self._sentences(self.model.decode(latent, beam_width=self.beam_width))

    def trajectory_latent(self, latent, time):
        latent = self._latent(latent)
        checks = [tf.debugging.assert_equal(tf.size(time), tf.shape(latent)[0],
                                            message="latent and time must have one row each")]
        with tf.control_dependencies(checks):
            time = tf.identity(time)
        if isinstance(self.model.decoder.solver, solvers.AdaptiveSolver):  # each row alone, at its own time
            state, probabilities = self._each_row_at_its_time(latent, time)
        else:
            distinct_times, time_index = tf.unique(time)
            states, probabilities = self.model.trajectory_at(latent, distinct_times)
            at = tf.stack([tf.range(tf.shape(latent)[0]), time_index], axis=1)
            state, probabilities = tf.gather_nd(states, at), tf.gather_nd(probabilities, at)
        return self._top_k(state, probabilities)


    def landmarks(self, count):
        checks = [tf.debugging.assert_greater(tf.size(count), 0, message="count: the batch is empty"),
                  tf.debugging.assert_positive(count, message="count must be at least 1 in every row")]
        with tf.control_dependencies(checks):
            sentences, points = self.latent_map.landmarks(tf.reduce_max(count))
        width = tf.shape(sentences)[0]
        kept = tf.range(width)[None] < count[:, None]  # [batch, M]: a row asking fewer is padded
        return {"sentences": tf.where(kept, sentences[None], ""),
                "points": tf.where(kept[..., None], points[None], 0.0)}

    def locate(self, codes):
        codes = self._latent(codes, "codes")
        neighbours, distances = self.latent_map.nearest(codes)
        return {"points": self.latent_map.project(codes), "neighbours": neighbours, "distances": distances}


def metadata(model: Seq2SeqODE, text: TextProcessor, beam_width: int, path_search: paths.PathSearch,
             language_model=None, latent_map: LatentMap | None = None) -> dict:
    return {
        "model": keras.saving.serialize_keras_object(model),
        "path_search": path_search.get_config(),
        "language_model": (None if language_model is None else
                           {**keras.saving.serialize_keras_object(language_model),
                            "threshold": float(language_model.threshold.numpy())}),
        "vocabulary_size": text.vocabulary_size,
        "max_length": text.max_length,
        "beam_width": beam_width,
        "limits": {
            "max_sentence_bytes": MAX_SENTENCE_BYTES,
            "top_k": TOP_K,
            "max_path_points": paths.MAX_POINTS,
            "neighbours": NEIGHBOURS,
        },
        "landmarks": 0 if latent_map is None else len(latent_map.sentences),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tensorflow": tf.__version__,
    }


def fit_latent_map(model: Seq2SeqODE, text: TextProcessor, sentences, batch_size: int = 256) -> LatentMap:
    """The `LatentMap` fitted on the codes the model gives `sentences` (a list of strings)."""
    sentences = [sentence for sentence in dict.fromkeys(sentences) if sentence.strip()]
    codes = []
    for start in range(0, len(sentences), batch_size):
        encoded = text.encode(sentences[start:start + batch_size])
        codes.append(model.encode(encoded.ids)[0].numpy())
    try:
        return LatentMap(sentences, np.concatenate(codes) if codes else np.zeros([0, model.encoder.units]))
    except ValueError as error:
        raise ExportError(str(error)) from None


def rows_alone(model: Seq2SeqODE) -> Seq2SeqODE:
    """The model whose every row is answered as it would be alone: an adaptive solver is made to
    solve each row on its own (`independent_rows`), since TFP's shares one step size across a
    batch; other models are returned as they are."""
    solver = model.decoder.solver
    if isinstance(solver, solvers.AdaptiveSolver) and not solver.independent_rows:
        return model.with_solver(dataclasses.replace(solver, independent_rows=True))
    return model


def save_saved_model(
    model: Seq2SeqODE,
    text: TextProcessor,
    directory: str,
    beam_width: int = 1,
    path_search: paths.PathSearch | None = None,
    language_model=None,
    landmarks=None,
) -> tuple[str, ...]:
    """Writes the SavedModel (tag `serve`, the signatures above, `assets.extra/tfode.json`) into
    `directory`, which must not exist; returns the signature names. The `path` signature finds
    paths with `path_search` (default `PathSearch()`), asking `language_model` (a
    `tfode.LanguageModel`, optional; its weights are saved in the SavedModel). Given `landmarks`
    (real sentences, e.g. the test split), the SavedModel also holds a `LatentMap` fitted on
    their codes and the `landmarks` and `locate` signatures. Every argument is checked before
    anything is written (`ExportError`); the TF Serving layout around it (version folders,
    warm-up records, an atomic rename) is `training.serving_export`'s.
    """
    if os.path.exists(directory):
        raise ExportError(f"{directory} exists; a SavedModel is written into a new folder.")
    if beam_width < 1:
        raise ExportError(f"beam_width must be at least 1, got {beam_width}.")
    if beam_width != 1 and not model.decoder.autoregressive:
        raise ExportError(
            f"The {type(model.decoder).__name__} is non-autoregressive: it has no beam search; "
            "export with beam_width=1."
        )
    if language_model is not None and language_model.vocab_size != text.vocabulary_size:
        raise ExportError(f"The language model's vocabulary ({language_model.vocab_size} ids) is not the "
                          f"model's ({text.vocabulary_size}).")
    path_search = path_search or paths.PathSearch()
    if path_search.refinement is not None:
        try:
            path_search.refinement.check(model)
        except ValueError as error:
            raise ExportError(str(error)) from None
    latent_map = None if landmarks is None else fit_latent_map(model, text, landmarks)
    model = rows_alone(model)
    module = ServingModule(model, text, beam_width, path_search, language_model, latent_map)
    latent = tf.TensorSpec([None, model.encoder.units], tf.float32, name="latent")
    signatures = {
        "serving_default": module.decode.get_concrete_function(),
        "decode": module.decode.get_concrete_function(),
        "encode": module.encode.get_concrete_function(),
        "interpolate": module.interpolate.get_concrete_function(),
        "path": module.path.get_concrete_function(),
        "trajectory": module.trajectory.get_concrete_function(),
        "decode_latent": tf.function(module.decode_latent, input_signature=[latent]).get_concrete_function(),
        "trajectory_latent": tf.function(module.trajectory_latent, input_signature=[
            latent, tf.TensorSpec([None], tf.float32, name="time")]).get_concrete_function(),
    }
    if latent_map is not None:
        signatures["landmarks"] = tf.function(module.landmarks, input_signature=[
            tf.TensorSpec([None], tf.int32, name="count")]).get_concrete_function()
        signatures["locate"] = tf.function(module.locate, input_signature=[
            tf.TensorSpec([None, model.encoder.units], tf.float32, name="codes")]).get_concrete_function()
    assert set(signatures) == set(SIGNATURES) | (set() if latent_map is None else set(MAP_SIGNATURES))
    # Serving never differentiates a signature; TFP's solvers' gradients (traced for saving by
    # default) fail to trace for BDF inside the per-row loop of `rows_alone`.
    tf.saved_model.save(module, directory, signatures=signatures,
                        options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
    extra = os.path.join(directory, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, METADATA_FILE), "w") as handle:
        json.dump(metadata(model, text, beam_width, path_search, language_model, latent_map), handle, indent=2)
    return tuple(signatures)
