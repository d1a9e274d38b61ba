"""The non-autoregressive Neural ODE decoder: one flow from h(0), a token read at each token time."""

from __future__ import annotations

import keras
import tensorflow as tf

from tfode import search, solvers
from tfode.checks import check_non_negative
from tfode.decoders.base import Decoder, FlowRegularization
from tfode.fields import VectorField
from tfode.ode import ODESolve
from tfode.tokens import EOS_ID, append_eos


@keras.saving.register_keras_serializable(package="tfode")
class TrajectoryDecoder(FlowRegularization, Decoder):
    """h(t) = ODESolve(f, h(0), t_1 … t_n); token k = readout(h(t_k)).

    Args:
      vocab_size, units, time_span, dropout, seed: see `Decoder`.
      vector_field: the field f (`tfode.fields`), float32; default a `VectorField()`.
      solver: a solver value (`tfode.solvers`); default `RK4()`.
      augment_dim: zeros appended to h(0) (augmented neural ODE), room for the flow beyond the
        encoder's width; `states_at` returns the full state.
      kinetic_energy, jacobian_norm: weights of Finlay et al.'s regularisers (`FlowRegularization`).
      midpoint_weight: in training, adds that weight times −log(p_k + p_{k+1}) at one midpoint
        t_k + Δt/2 per sentence, k drawn uniformly: the state between two tokens is asked to hold
        one of them (midpoint consistency) rather than a third word. It needs a fixed-grid solver
        with Δt a whole number of grid steps, so that a midpoint is the same few steps from
        h(t_k) in training as in `states_at`. The NFE statistic does not count those steps.

    Call arguments:
      initial_state: h(0) `[batch, units]`.
      target_inputs: `[batch, n]`; only its length n (and, for the midpoint term, the tokens) is read.

    Returns:
      `DecoderOutput`, logits `[batch, n, vocab]`.
    """

    def __init__(self, vocab_size, units, vector_field=None, solver=None, time_span=1.0,
                 augment_dim=0, kinetic_energy=0.0, jacobian_norm=0.0, midpoint_weight=0.0,
                 dropout=0.0, seed=None, **kwargs):
        super().__init__(vocab_size, units, time_span=time_span, dropout=dropout, seed=seed, **kwargs)
        if int(augment_dim) < 0:
            raise ValueError(f"augment_dim must be >= 0, got {augment_dim}.")
        self.augment_dim = int(augment_dim)
        self.ode = ODESolve(vector_field if vector_field is not None else VectorField(dtype="float32"),
                            solver, name="ode")
        self.init_regularization(kinetic_energy, jacobian_norm, self.derived_seed("probe"))
        self.midpoint_weight = check_non_negative("midpoint_weight", midpoint_weight)
        if self.midpoint_weight and not (
            isinstance(self.ode.solver, solvers.FixedGridSolver)
            and self.ode.solver.has_on_grid(self.time_span)
        ):
            raise ValueError(
                "midpoint_weight needs a fixed-grid solver (RK4, Euler) with a whole number of "
                f"steps per token; got {self.ode.solver} with time_span {self.time_span}."
            )
        # Created only when used, so models saved without the term keep their variables.
        self.midpoint_seed = (
            keras.random.SeedGenerator(self.derived_seed("midpoint"), name="midpoint_seed")
            if self.midpoint_weight else None
        )

    @property
    def solver(self):
        return self.ode.solver

    @property
    def vector_field(self):
        return self.ode.vector_field

    def build(self, initial_state_shape, target_inputs_shape=None):
        state_shape = (initial_state_shape[0], self.units + self.augment_dim)
        self.ode.build(state_shape)
        self.readout.build(state_shape)

    def initial_ode_state(self, initial_state):
        """h(0) `[batch, units]` → the flow's initial state `[batch, units + augment_dim]`."""
        initial_state = tf.cast(initial_state, tf.float32)
        if not self.augment_dim:
            return initial_state
        zeros = tf.zeros([tf.shape(initial_state)[0], self.augment_dim], initial_state.dtype)
        return tf.concat([initial_state, zeros], axis=-1)

    def call(self, initial_state, target_inputs, training=None):
        start = self.initial_ode_state(initial_state)
        regularize = bool(training) and self.regularized
        solution = self.ode(start, self.token_times(tf.shape(target_inputs)[1]),
                            integrals=regularize, probe=self.draw_probe(start) if regularize else None,
                            training=training)
        kinetic = jacobian = 0.0
        if regularize:
            kinetic = tf.reduce_mean(solution.kinetic_energy)
            jacobian = tf.reduce_mean(solution.jacobian_norm) if self.jacobian_norm else 0.0
            self.add_flow_penalty(kinetic, jacobian)
        if training and self.midpoint_weight:
            self.add_loss(self.midpoint_weight * self.midpoint_loss(solution.states, target_inputs, training))
        logits = self.readout(self.drop(solution.states, training))
        return self.decoder_output(logits, solution.nfe, kinetic, jacobian)

    def midpoint_loss(self, token_states, target_inputs, training=None):
        """Mean over sentences of −log(p_k + p_{k+1}) at t_k + Δt/2, one k per sentence.

        Args:
          token_states: `[batch, n, units]`, h(t_1) … h(t_n).
          target_inputs: `[batch, n]`, `<bos>` and the sentence (its targets end in `<eos>`).

        Returns:
          float32 scalar; sentences with a single target token (no midpoint) count for nothing.
        """
        targets = append_eos(target_inputs[:, 1:])  # [batch, n]
        lengths = tf.reduce_sum(tf.cast(targets != 0, tf.int32), axis=1)
        draw = keras.random.uniform(tf.shape(lengths), seed=self.midpoint_seed)
        index = tf.cast(draw * tf.cast(lengths - 1, tf.float32), tf.int32)  # 0-based k - 1
        index = tf.clip_by_value(index, 0, tf.maximum(lengths - 2, 0))
        start = tf.gather(token_states, index, batch_dims=1)
        midpoint_states = solvers.fixed_grid_advance(
            self.vector_field, start, tf.cast(index + 1, start.dtype) * self.time_span,
            self.time_span / 2, self.solver,
        )
        log_probs = tf.nn.log_softmax(self.readout(self.drop(midpoint_states, training)))
        neighbours = tf.stack(
            [tf.gather(targets, index, batch_dims=1), tf.gather(targets, index + 1, batch_dims=1)],
            axis=1,
        )  # [batch, 2]
        pair = tf.reduce_logsumexp(tf.gather(log_probs, neighbours, batch_dims=1), axis=1)
        valid = tf.cast(lengths >= 2, tf.float32)
        return -tf.reduce_sum(pair * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)

    def decode(self, initial_state, max_steps, beam_width=1):
        """Every token is the most likely one at its time: greedy only."""
        if beam_width != 1:
            raise ValueError(
                "The trajectory decoder is non-autoregressive: every token is the most likely "
                "one at its time, so there is no beam to search; use beam_width=1."
            )
        solution = self.ode(self.initial_ode_state(initial_state), self.token_times(max_steps))
        logits = self.readout(solution.states)
        ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
        # The chosen token's log-probability, without a second [batch, steps, vocab] tensor.
        scores = tf.reduce_max(logits, axis=-1) - tf.reduce_logsumexp(logits, axis=-1)
        return search.mask_after_eos(ids, scores, EOS_ID, solution.nfe)

    def states_at(self, initial_state, times, target_inputs=None):
        times = self.check_times(times)
        order = tf.argsort(times)
        inverse = tf.math.invert_permutation(order)
        states = self.ode(self.initial_ode_state(initial_state), tf.gather(times, order)).states
        states = tf.gather(states, inverse, axis=1)
        return states, self.readout(states)

    def get_config(self):
        return {
            **super().get_config(),
            "vector_field": keras.saving.serialize_keras_object(self.vector_field),
            "solver": solvers.solver_to_config(self.solver),
            "augment_dim": self.augment_dim,
            "kinetic_energy": self.kinetic_energy,
            "jacobian_norm": self.jacobian_norm,
            "midpoint_weight": self.midpoint_weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["vector_field"] = keras.saving.deserialize_keras_object(config["vector_field"])
        return cls(**config)
