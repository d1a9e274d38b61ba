"""`Seq2SeqODE`: an encoder and a decoder composed into one `keras.Model`."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfode import interpolation, paths, solvers
from tfode.decoders.base import Decoder
from tfode.encoder import GRUEncoder
from tfode.losses import MaskedCrossEntropy
from tfode.metrics import ExactMatch, MaskedTokenAccuracy
from tfode.path_energy import PathEnergy
from tfode.search import Decoded
from tfode.tokens import append_eos, prepend_bos


@keras.saving.register_keras_serializable(package="tfode")
class Seq2SeqODE(keras.Model):
    """A sentence autoencoder whose decoder may be a Neural ODE.

        model = Seq2SeqODE(
            encoder=GRUEncoder(vocab_size, units=256, bidirectional=True),
            decoder=ODERNNDecoder(vocab_size, units=256, vector_field=GatedVectorField(dtype="float32"),
                                  solver=Euler(steps_per_unit=1)),
            tied_embeddings=True,
        )

    `call(tokens)` takes `[batch, L]` 0-padded ids and returns teacher-forced logits
    `[batch, L + 1, vocab]` for the sentence followed by `<eos>` (targets:
    `tfode.tokens.append_eos(tokens)`).

    Args:
      encoder: a `GRUEncoder` (or its config).
      decoder: a `TrajectoryDecoder`, `ODERNNDecoder` or `GRUDecoder` (or its config), of the
        encoder's vocabulary size and width.
      max_length: the most tokens a sentence has; free-running decoding runs `max_length + 1`
        steps.
      tied_embeddings: score tokens against the encoder's embedding matrix (`TiedReadout`)
        instead of the decoder's own `Dense(vocab)` readout.
      path_energy: a `PathEnergy` (or its config), or None: in training, adds its penalty on how
        unevenly the decoded word distributions change along paths between the batch's codes
        (and its words term, when it has one).

    Training logs, beside the loss and the compiled metrics, `nfe` (the decoder's vector-field
    evaluations per step) for a decoder with a flow, and `kinetic_energy` / `jacobian_norm`
    (the regularisers' integrals, training steps only) when the flow is regularised, and
    `path_change` (the mean Jensen-Shannon change of one `PathEnergy` step) with a path energy.
    """

    def __init__(self, encoder, decoder, max_length: int = 20, tied_embeddings: bool = False,
                 path_energy=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if isinstance(decoder, dict):
            decoder = keras.saving.deserialize_keras_object(decoder)
        if isinstance(path_energy, dict):
            path_energy = keras.saving.deserialize_keras_object(path_energy)
        if path_energy is not None and not isinstance(path_energy, PathEnergy):
            raise TypeError(f"path_energy must be a PathEnergy or None, got {type(path_energy).__name__}.")
        if not isinstance(encoder, GRUEncoder):
            raise TypeError(f"encoder must be a GRUEncoder, got {type(encoder).__name__}.")
        if not isinstance(decoder, Decoder):
            raise TypeError(f"decoder must be a tfode decoder, got {type(decoder).__name__}.")
        if (encoder.vocab_size, encoder.units) != (decoder.vocab_size, decoder.units):
            raise ValueError(
                f"The encoder (vocab_size {encoder.vocab_size}, units {encoder.units}) and the decoder "
                f"(vocab_size {decoder.vocab_size}, units {decoder.units}) must agree."
            )
        if int(max_length) < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}.")
        self.encoder = encoder
        self.decoder = decoder
        self.max_length = int(max_length)
        self.tied_embeddings = bool(tied_embeddings)
        if self.tied_embeddings:
            decoder.tie_readout(encoder.embedding)
        self.nfe_tracker = keras.metrics.Mean(name="nfe") if self.is_ode else None
        self.path_energy = path_energy
        self.path_change_tracker = keras.metrics.Mean(name="path_change") if path_energy is not None else None
        self.integral_trackers = None
        if decoder.regularized:
            self.integral_trackers = (keras.metrics.Mean(name="kinetic_energy"),
                                      keras.metrics.Mean(name="jacobian_norm"))

    @property
    def is_ode(self) -> bool:
        """Whether the decoder has a flow (an ODE solver)."""
        return self.decoder.solver is not None

    def build(self, tokens_shape):
        self.encoder.build(tokens_shape)
        self.decoder.build((tokens_shape[0], self.encoder.units), tokens_shape)
        self.built = True

    def call(self, tokens, training=None):
        h0, _, _ = self.encoder(tokens, training=training)
        inputs = prepend_bos(tokens)
        output = self.decoder(h0, inputs, training=training)
        if training and self.path_energy is not None:
            self.add_path_energy(h0, tokens, inputs)
        if self.nfe_tracker is not None:
            self.nfe_tracker.update_state(tf.cast(output.nfe, tf.float32))
        if training and self.integral_trackers:
            self.integral_trackers[0].update_state(output.kinetic_energy)
            self.integral_trackers[1].update_state(output.jacobian_norm)
        return output.logits

    def add_path_energy(self, h0, tokens, inputs):
        """Adds the `PathEnergy` penalty for the batch's codes h0 `[batch, units]` and ids
        `[batch, L]`; the decoder scores both points of every path in one pass (no dropout),
        teacher-forced on each path's first sentence."""
        near, far = self.path_energy.points(h0)
        rows = tf.shape(near)[0]
        own = inputs[:rows]
        logits = self.decoder(tf.concat([near, far], 0), tf.concat([own, own], 0), training=False).logits
        targets = append_eos(tokens)
        change = self.path_energy.change(logits[:rows], logits[rows:], self.path_energy.mask(targets != 0))
        self.path_change_tracker.update_state(change)
        penalty = self.path_energy.penalty(change)
        if self.path_energy.words_weight:
            penalty += self.path_energy.words_loss(logits[:rows], targets)
        self.add_loss(penalty)

    def compile(self, optimizer="adam", loss=None, metrics=None, jit_compile=False, **kwargs):
        """`keras.Model.compile` with this model's defaults: masked cross-entropy, masked
        token accuracy and exact match (teacher-forced, like any `fit` metric). XLA is off unless
        asked for: Keras' "auto" would turn it on on a GPU, and the ODE-RNN's training step (a
        fixed-grid solve inside the per-token loop) does not compile under XLA."""
        if loss is None:
            loss = MaskedCrossEntropy()
        if metrics is None:
            metrics = [MaskedTokenAccuracy(), ExactMatch()]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile, **kwargs)

    def get_compile_config(self):
        return super().get_compile_config()

    def compile_from_config(self, config):
        """Restores the optimizer, loss (label smoothing included) and metrics of a saved model,
        and builds the optimizer so that its saved state loads too."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # -- beyond `call` -------------------------------------------------------------------

    def encode(self, tokens):
        """`[batch, L]` ids → `(h0, mean, log_variance)`, each `[batch, units]` (inference)."""
        return self.encoder(tokens, training=False)

    def decode(self, h0, max_steps=None, beam_width=1) -> Decoded:
        """Free-running decoding from h(0) `[batch, units]`: greedy, or beam search with
        `beam_width > 1` for the autoregressive decoders. `max_steps` defaults to
        `max_length + 1`."""
        return self.decoder.decode(h0, max_steps or self.max_length + 1, beam_width)

    def reconstruct(self, tokens, beam_width=1) -> Decoded:
        """`decode(encode(tokens))`."""
        return self.decode(self.encode(tokens)[0], beam_width=beam_width)

    def trajectory(self, tokens, times):
        """What the decoder holds at any real times `[T]` (>= 0, token k at k·Δt) while
        reconstructing `tokens` `[batch, L]`: `(states [batch, T, state_units],
        probabilities [batch, T, vocab])`. The autoregressive decoders fold in the given tokens."""
        return self.trajectory_at(self.encode(tokens)[0], times, tokens)

    def trajectory_at(self, h0, times, tokens=None):
        """What the decoder holds at `times` `[T]` from the codes h(0) `[batch, units]`:
        `(states [batch, T, state_units], probabilities [batch, T, vocab])`. The autoregressive
        decoders fold in `tokens` `[batch, L]`, by default the greedy decode of h(0) (what the
        model itself would write from that code)."""
        if tokens is None:
            decoded = self.decode(h0)
            kept = tf.sequence_mask(decoded.lengths, tf.shape(decoded.ids)[1])
            tokens = tf.where(kept, decoded.ids, 0)
        states, logits = self.decoder.states_at(h0, times, prepend_bos(tokens))
        return states, tf.nn.softmax(logits)

    def interpolate(self, tokens_a, tokens_b, alphas, mode="linear", beam_width=1) -> Decoded:
        """Decodes the latent path between two batches of sentences `[batch, L]` at `alphas`
        `[A]`: a `Decoded` whose fields are `[batch, A, steps]` (`lengths` `[batch, A]`)."""
        start, end = self.encode(tokens_a)[0], self.encode(tokens_b)[0]
        path = interpolation.interpolate(start, end, alphas, mode)
        batch, steps = tf.shape(path)[0], tf.shape(path)[1]
        decoded = self.decode(tf.reshape(path, [batch * steps, -1]), beam_width=beam_width)
        return Decoded(
            ids=tf.reshape(decoded.ids, [batch, steps, -1]),
            scores=tf.reshape(decoded.scores, [batch, steps, -1]),
            lengths=tf.reshape(decoded.lengths, [batch, steps]),
            nfe=decoded.nfe,
        )

    def interpolant(self, tokens_a, tokens_b, alpha, mode, beam_width=1) -> Decoded:
        """One point of a latent path per row: the sentence at `alpha` `[batch]` between rows of
        `tokens_a` and `tokens_b` `[batch, L]`, by `mode` `[batch]` ("linear" or "slerp" per
        row). A `Decoded` of `[batch, steps]`; row i is `interpolate(...)` of that row at that
        alpha, so a path is its alphas sent as rows."""
        return self.decode(self.latent_point(tokens_a, tokens_b, alpha, mode), beam_width=beam_width)

    def latent_point(self, tokens_a, tokens_b, alpha, mode):
        """The code `[batch, units]` at `alpha` `[batch]` on the latent path (`mode` `[batch]`,
        "linear" or "slerp") from each row of `tokens_a` to the same row of `tokens_b`."""
        start, end = self.encode(tokens_a)[0], self.encode(tokens_b)[0]
        return interpolation.interpolate_rows(start, end, alpha, mode)

    def path(self, tokens_a, tokens_b, points=9, search=None, beam_width=1,
             language_model=None) -> paths.SentencePath:
        """The product's path of sentences from each row of `tokens_a` to the same row of
        `tokens_b` (`[batch, L]` ids): `points` (an int, or `[batch]` int32; 2 …
        `paths.MAX_POINTS`) sentences, the first and last the decodes (with `beam_width`) of
        the two codes, every other one a new sentence a few words from its neighbours, found by
        `search` (a `paths.PathSearch`, by default `PathSearch()`), which asks `language_model`
        (a `tfode.LanguageModel` of this model's vocabulary, optional) which candidates read as
        real text. A `paths.SentencePath` of `[batch, P, …]` tensors."""
        search = paths.PathSearch() if search is None else search
        if not isinstance(search, paths.PathSearch):
            raise TypeError(f"search must be a PathSearch, got {type(search).__name__}.")
        if language_model is not None and language_model.vocab_size != self.encoder.vocab_size:
            raise ValueError(f"The language model's vocabulary ({language_model.vocab_size} ids) is not "
                             f"this model's ({self.encoder.vocab_size}).")
        return search(self, tokens_a, tokens_b, points, beam_width=beam_width, language_model=language_model)

    def with_solver(self, solver) -> "Seq2SeqODE":
        """A copy of this model for inference with the same weights and another ODE solver (a
        solver value, e.g. `BDF()` or a tighter `Dopri5(rtol=1e-5)`). The training-only terms
        (the flow's regularisers, the midpoint term, the path energy) are left out of the copy."""
        if not self.is_ode:
            raise ValueError("The decoder has no ODE solver to change.")
        config = self.get_config()
        decoder = config["decoder"]["config"]
        decoder["solver"] = solvers.solver_to_config(solvers.solver_from_config(solver))
        for key in ("kinetic_energy", "jacobian_norm", "midpoint_weight"):
            if key in decoder:
                decoder[key] = 0.0
        config["path_energy"] = None
        copy = Seq2SeqODE.from_config(config)
        copy.build((None, None))
        copy.set_weights(self.get_weights())
        return copy

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "max_length": self.max_length,
            "tied_embeddings": self.tied_embeddings,
            "path_energy": (keras.saving.serialize_keras_object(self.path_energy)
                            if self.path_energy is not None else None),
        }

    @classmethod
    def from_config(cls, config):
        # The parts are built by the model (`build`), after the readout is tied: drop the build
        # records that would build them on their own while deserialising.
        config = dict(config)
        for part in ("encoder", "decoder"):
            if isinstance(config.get(part), dict):
                config[part] = {key: value for key, value in config[part].items() if key != "build_config"}
        return cls(**config)
