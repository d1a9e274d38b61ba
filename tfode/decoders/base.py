"""What every decoder shares: token times, the readout, dropout on the states read out, and the
statistics a teacher-forced call returns beside its logits.

Token k (1-based) of the output, the last being `<eos>`, lives at time t_k = k·Δt, Δt being
`time_span` (default 1.0: one unit of time per token, so `steps_per_unit` of the fixed-grid
solvers reads as steps per token). h(0) sits at t = 0.

Every decoder offers:
  call(initial_state, target_inputs, training) → DecoderOutput: teacher-forced logits
      `[batch, n, vocab]`, `target_inputs` `[batch, n]` being `<bos>` followed by the target
      tokens (the trajectory decoder reads only its length), and the solve's statistics;
  decode(initial_state, max_steps, beam_width) → free-running `search.Decoded`;
  states_at(initial_state, times, target_inputs) → `(states [batch, T, units],
      logits [batch, T, vocab])` at any real times `>= 0`.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf

from tfode.checks import check_non_negative, check_rate, derive_seed
from tfode.readout import TiedReadout


class DecoderOutput(NamedTuple):
    """logits: `[batch, n, vocab]` float32. nfe: int32 scalar, vector-field evaluations of the
    call (0 without an ODE). kinetic_energy, jacobian_norm: float32 scalars, batch means of the
    regularisers' integrals in training (0 when not computed)."""

    logits: tf.Tensor
    nfe: tf.Tensor
    kinetic_energy: tf.Tensor
    jacobian_norm: tf.Tensor


class Decoder(keras.layers.Layer):
    """Base of the decoders (not used on its own).

    Args:
      vocab_size: number of token ids.
      units: width of h(0) and of the decoder's state.
      time_span: Δt, the time between two tokens (> 0).
      dropout: in training, the rate at which entries of the states read out (and of the
        autoregressive decoders' input embeddings) are zeroed; the flow and inference are
        untouched.
      seed: seed of the decoder's random streams (dropout, sampling, probes); None draws one
        from Keras' global seed (`keras.utils.set_random_seed`).
    """

    autoregressive = False  # whether `decode` can run a beam search

    @classmethod
    def training_refusal(cls, solver) -> str | None:
        """Why this decoder cannot train with `solver` (a solver value, or None for no flow),
        or None when it can: the one rule the training command and the training step ask."""
        if solver is not None and not solver.trainable:
            return (f"The {solver.name} solver is for inference only (its gradients take minutes per step); "
                    "train with another and switch solvers for inference (`Seq2SeqODE.with_solver`).")
        return None

    def __init__(self, vocab_size: int, units: int, time_span: float = 1.0, dropout: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if int(vocab_size) < 5:
            raise ValueError(f"vocab_size must be at least 5 (4 reserved ids and a word), got {vocab_size}.")
        if int(units) < 1:
            raise ValueError(f"units must be >= 1, got {units}.")
        if not float(time_span) > 0:
            raise ValueError(f"time_span must be > 0, got {time_span}.")
        self.vocab_size = int(vocab_size)
        self.units = int(units)
        self.time_span = float(time_span)
        self.dropout = check_rate("dropout", dropout)
        self.seed = seed
        # Created only when used, so models saved without dropout keep their variables.
        self.dropout_layer = (
            keras.layers.Dropout(self.dropout, seed=self.derived_seed("dropout"), name="dropout")
            if self.dropout else None
        )
        self.readout = keras.layers.Dense(vocab_size, dtype="float32", name="readout")

    def derived_seed(self, stream: str) -> int | None:
        """The seed of the decoder's random stream `stream` ("dropout", "sampling", …)."""
        return derive_seed(self.seed, f"decoder/{stream}")

    def tie_readout(self, embedding: keras.layers.Embedding) -> None:
        """Scores tokens against `embedding`'s matrix (`TiedReadout`) instead of a `Dense`
        readout; called by the model before it is built."""
        if self.built:
            raise ValueError("The readout can be tied only before the decoder is built.")
        self.readout = TiedReadout(embedding, name="readout")

    def drop(self, values, training=None):
        """`values` with dropout applied in training (unchanged without dropout)."""
        if self.dropout_layer is None:
            return values
        return self.dropout_layer(values, training=training)

    def token_times(self, num_positions):
        """`[num_positions]` float32: t_k = k·Δt for k = 1 … num_positions."""
        return tf.cast(tf.range(1, num_positions + 1), tf.float32) * self.time_span

    def interval_index(self, times, num_positions):
        """`[T]` int32, 0-based k with t in (t_k, t_{k+1}], clipped to [0, num_positions)."""
        index = tf.cast(tf.math.ceil(times / self.time_span - 1e-6), tf.int32) - 1
        return tf.clip_by_value(index, 0, num_positions - 1)

    @staticmethod
    def check_times(times):
        times = tf.convert_to_tensor(times, tf.float32)
        times = tf.debugging.assert_all_finite(times, "trajectory times must be finite")
        with tf.control_dependencies(
            [tf.debugging.assert_non_negative(times, message="trajectory times must be >= 0")]
        ):
            return tf.identity(times)

    @staticmethod
    def decoder_output(logits, nfe=0, kinetic_energy=0.0, jacobian_norm=0.0) -> DecoderOutput:
        return DecoderOutput(
            logits, tf.convert_to_tensor(nfe, tf.int32),
            tf.convert_to_tensor(kinetic_energy, tf.float32),
            tf.convert_to_tensor(jacobian_norm, tf.float32),
        )

    @property
    def solver(self):
        """The ODE solver value, or None for a decoder without a flow."""
        return None

    @property
    def regularized(self) -> bool:
        """Whether training adds Finlay et al.'s regularisers of the flow."""
        return False

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "units": self.units,
            "time_span": self.time_span,
            "dropout": self.dropout,
            "seed": self.seed,
        }


class FlowRegularization:
    """Finlay et al.'s regularisers of an ODE flow, for the layers that own one.

    `kinetic_energy` and `jacobian_norm` (>= 0) weight the batch means of ∫||f||²/units dt and
    ∫||εᵀ∂f/∂h||²/units dt (one Gaussian probe ε per sentence), added to the losses in training.
    """

    def init_regularization(self, kinetic_energy, jacobian_norm, seed):
        self.kinetic_energy = check_non_negative("kinetic_energy", kinetic_energy)
        self.jacobian_norm = check_non_negative("jacobian_norm", jacobian_norm)
        # Created only when used, so models saved without the term keep their variables.
        self.probe_seed = (
            keras.random.SeedGenerator(seed, name="probe_seed") if self.jacobian_norm else None
        )

    @property
    def regularized(self) -> bool:
        return bool(self.kinetic_energy or self.jacobian_norm)

    def draw_probe(self, state):
        """The Jacobian term's probe `[batch, units]`, or None without that term."""
        if not self.jacobian_norm:
            return None
        return keras.random.normal(tf.shape(state), dtype=state.dtype, seed=self.probe_seed)

    def add_flow_penalty(self, kinetic, jacobian):
        """Adds the weighted penalty of the batch-mean integrals (scalars) to the losses."""
        self.add_loss(self.kinetic_energy * kinetic + self.jacobian_norm * jacobian)
