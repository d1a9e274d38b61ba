"""`Seq2SeqODE`: the GRU encoder and one of the decoders, as one `keras.Model`."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfode import interpolation, solvers
from tfode import metrics as sequence_metrics
from tfode.decoders import DECODERS
from tfode.encoder import GRUEncoder
from tfode.layers import TiedReadout
from tfode.search import Decoded
from tfode.text import BOS_ID, EOS_ID, UNK_ID, prepend_bos


@keras.saving.register_keras_serializable(package="tfode")
class Seq2SeqODE(keras.Model):
    """A sentence autoencoder whose decoder may be a Neural ODE.

    `call(tokens)` takes `[batch, L]` 0-padded ids and returns teacher-forced logits
    `[batch, L + 1, vocab]` for the sentence followed by `<eos>` (targets:
    `tfode.text.append_eos(tokens)`).

    Args:
      vocab_size: number of token ids (the text pipeline's vocabulary size).
      decoder: "trajectory" (Neural ODE, non-autoregressive), "odernn" (ODE-RNN,
        autoregressive) or "gru" (the discrete baseline).
      units: width of h(0), of the ODE state and of the decoders' GRUs.
      embedding_dim: token embedding size (encoder and autoregressive decoders).
      max_length: the most tokens a sentence has; free-running decoding runs `max_length + 1`
        steps.
      solver: solver name or config (`tfode.solvers`), for the ODE decoders.
      vector_field: `VectorField` keyword arguments, for the ODE decoders.
      time_span: Δt, the time between two tokens.
      augment_dim: zeros appended to the state of the trajectory decoder.
      bidirectional, variational, kl_weight: see `GRUEncoder`.
      word_dropout: in training, the fraction of an autoregressive decoder's input tokens
        replaced by `<unk>` (Bowman et al. 2016), so that it reads the sentence from h(0) rather
        than from its own previous words.
      scheduled_sampling: in training, the probability with which an autoregressive decoder
        folds in its own most likely previous token instead of the target's (Bengio et al.
        2015; see `AutoregressiveDecoder`), so that it learns to recover from its own mistakes.
      context_input: the autoregressive decoders' GRU cell reads h(0) beside each previous
        token's embedding (Cho et al. 2014's context vector at every step; see
        `AutoregressiveDecoder`), not only as its initial state.
      midpoint_weight: in training, the weight of the trajectory decoder's midpoint term
        (see `TrajectoryDecoder`), which asks the state halfway between tokens k and k+1 to
        hold one of the two.
      dropout: in training, the rate at which entries of the token embeddings (encoder and
        autoregressive decoder) and of the decoder states read out are zeroed. The flow and
        inference are untouched.
      tied_embeddings: score tokens against the encoder's embedding matrix (`TiedReadout`)
        instead of a separate `Dense(vocab)` readout.
      kinetic_energy, jacobian_norm: weights of Finlay et al.'s regularisers of the ODE
        decoders' flows (`ODESolve`); their integrals are logged as the `kinetic_energy` and
        `jacobian_norm` metrics in training (validation does not compute them and logs 0).
    """

    def __init__(
        self,
        vocab_size: int,
        decoder: str = "trajectory",
        units: int = 256,
        embedding_dim: int = 128,
        max_length: int = 14,
        solver="rk4",
        vector_field: dict | None = None,
        time_span: float = 1.0,
        augment_dim: int = 0,
        bidirectional: bool = False,
        variational: bool = False,
        kl_weight: float = 1.0,
        kinetic_energy: float = 0.0,
        jacobian_norm: float = 0.0,
        tied_embeddings: bool = False,
        word_dropout: float = 0.0,
        dropout: float = 0.0,
        scheduled_sampling: float = 0.0,
        midpoint_weight: float = 0.0,
        context_input: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if decoder not in DECODERS:
            raise ValueError(f"Unknown decoder {decoder!r}; expected one of {sorted(DECODERS)}.")
        if (kinetic_energy or jacobian_norm) and decoder == "gru":
            raise ValueError(
                "The kinetic-energy and Jacobian-norm regularisers apply to the ODE decoders' "
                "flows; the discrete 'gru' decoder has none to regularise."
            )
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout}.")
        if word_dropout and decoder == "trajectory":
            raise ValueError(
                "Word dropout applies to the autoregressive decoders' inputs; the trajectory "
                "decoder reads no previous words."
            )
        if midpoint_weight and decoder != "trajectory":
            raise ValueError(
                "midpoint_weight trains the trajectory decoder's state between tokens; the "
                f"{decoder!r} decoder folds in a token at each one instead."
            )
        if scheduled_sampling and decoder == "trajectory":
            raise ValueError(
                "Scheduled sampling applies to the autoregressive decoders' inputs; the "
                "trajectory decoder reads no previous words."
            )
        if context_input and decoder == "trajectory":
            raise ValueError(
                "context_input feeds h(0) to the autoregressive decoders' GRU cell at every "
                "token; the trajectory decoder has no cell, its whole path starts from h(0)."
            )
        self.settings = dict(
            vocab_size=vocab_size,
            decoder=decoder,
            units=units,
            embedding_dim=embedding_dim,
            max_length=max_length,
            solver=solvers.solver_to_config(solvers.solver_from_config(solver)),
            vector_field=dict(vector_field or {}),
            time_span=time_span,
            augment_dim=augment_dim,
            bidirectional=bidirectional,
            variational=variational,
            kl_weight=kl_weight,
            kinetic_energy=kinetic_energy,
            jacobian_norm=jacobian_norm,
            tied_embeddings=tied_embeddings,
            word_dropout=word_dropout,
            dropout=dropout,
            scheduled_sampling=scheduled_sampling,
            midpoint_weight=midpoint_weight,
            context_input=bool(context_input),
        )
        self.seed_generator = keras.random.SeedGenerator(7) if word_dropout else None
        self.max_length = max_length
        self.encoder = GRUEncoder(
            vocab_size,
            units,
            embedding_dim=embedding_dim,
            bidirectional=bidirectional,
            variational=variational,
            kl_weight=kl_weight,
            dropout=dropout,
            name="encoder",
        )
        common = dict(
            time_span=time_span, bos_id=BOS_ID, eos_id=EOS_ID, dropout=dropout, name="decoder"
        )
        if tied_embeddings:
            common["readout"] = TiedReadout(self.encoder.embedding, name="readout")
        if decoder == "trajectory":
            self.decoder = DECODERS[decoder](
                vocab_size, units, vector_field=vector_field, solver=self.settings["solver"],
                augment_dim=augment_dim, kinetic_energy=kinetic_energy,
                jacobian_norm=jacobian_norm, midpoint_weight=midpoint_weight, **common,
            )
        elif decoder == "odernn":
            self.decoder = DECODERS[decoder](
                vocab_size, units, vector_field=vector_field, solver=self.settings["solver"],
                embedding_dim=embedding_dim, kinetic_energy=kinetic_energy,
                jacobian_norm=jacobian_norm, scheduled_sampling=scheduled_sampling,
                context_input=context_input, **common,
            )
        else:
            self.decoder = DECODERS[decoder](
                vocab_size, units, embedding_dim=embedding_dim,
                scheduled_sampling=scheduled_sampling, context_input=context_input, **common,
            )
        if self.is_ode:
            self.nfe_tracker = keras.metrics.Mean(name="nfe")
        self.integral_trackers = {}
        if kinetic_energy or jacobian_norm:
            self.integral_trackers = {
                "last_kinetic_energy": keras.metrics.Mean(name="kinetic_energy"),
                "last_jacobian_norm": keras.metrics.Mean(name="jacobian_norm"),
            }

    @property
    def is_ode(self) -> bool:
        return self.settings["decoder"] != "gru"

    def build(self, tokens_shape):
        self.encoder.build(tokens_shape)
        self.decoder.build((tokens_shape[0], self.settings["units"]), tokens_shape)
        self.built = True

    def call(self, tokens, training=None):
        h0, _, _ = self.encoder(tokens, training=training)
        return self.decoder(h0, self.decoder_inputs(tokens, training), training=training)

    def decoder_inputs(self, tokens, training=None):
        """Teacher-forcing inputs `[batch, L + 1]`: `<bos>` + tokens, with word dropout in
        training (padding and `<bos>` are never dropped)."""
        inputs = prepend_bos(tokens)
        rate = self.settings["word_dropout"]
        if not (training and rate):
            return inputs
        draw = keras.random.uniform(tf.shape(inputs), seed=self.seed_generator)
        drop = tf.logical_and(draw < rate, inputs > EOS_ID)
        return tf.where(drop, tf.constant(UNK_ID, inputs.dtype), inputs)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """`keras.Model.compile` with this model's defaults: masked cross-entropy, masked
        token accuracy and exact match (teacher-forced, like any `fit` metric)."""
        if loss is None:
            loss = sequence_metrics.masked_cross_entropy()
        if metrics is None:
            metrics = [sequence_metrics.MaskedTokenAccuracy(), sequence_metrics.ExactMatch()]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        """Restores the optimizer of a saved model; loss and metrics are this model's defaults."""
        optimizer = config.get("optimizer")
        self.compile(keras.optimizers.deserialize(optimizer) if optimizer else "adam")

    _tracing_train_step = False

    def train_step(self, data):
        self._tracing_train_step = True  # read while the step is traced (or run eagerly)
        try:
            return super().train_step(data)
        finally:
            self._tracing_train_step = False

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if self.is_ode:
            self.nfe_tracker.update_state(tf.cast(self.decoder.last_nfe, tf.float32))
        if self._tracing_train_step:  # the integrals are computed in training only
            for name, tracker in self.integral_trackers.items():
                tracker.update_state(getattr(self.decoder.ode, name))
        return super().compute_metrics(x, y, y_pred, sample_weight)

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
        h0 = self.encode(tokens)[0]
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

    def with_solver(self, solver) -> "Seq2SeqODE":
        """A copy of this model with the same weights and another ODE solver (e.g. "bdf" or a
        tighter `Dopri5` for inference)."""
        if not self.is_ode:
            raise ValueError("The discrete GRU decoder has no ODE solver to change.")
        config = {**self.get_config(), "solver": solver}
        copy = Seq2SeqODE.from_config(config)
        copy.build((None, None))
        copy.set_weights(self.get_weights())
        return copy

    def get_config(self):
        return {**super().get_config(), **self.settings}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
