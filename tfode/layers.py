"""Keras layers of the Neural ODE: the vector field f(h, t; θ) and the solve around it."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfode import regularization, solvers


def sinusoid_frequencies(count: int) -> list[float]:
    """Angular frequencies of φ(t)'s sinusoids: periods of 2, 4, 8, … time units."""
    return [2 * math.pi / 2.0 ** (1 + index) for index in range(count)]


@keras.saving.register_keras_serializable(package="tfode")
class VectorField(keras.layers.Layer):
    """A time-conditioned MLP, `f(h, t; θ)`, the right-hand side of dh/dt = f(h, t).

    The first layer reads the state through one kernel and sinusoidal features of the time
    through another (`W_h h + W_t φ(t) + b`), so no concatenation runs in the hot path. Nothing
    random happens inside (no dropout): an adaptive solver must see a deterministic function.

    Args:
      hidden_units: width of each hidden layer.
      depth: number of hidden layers (>= 1).
      activation: hidden activation, any Keras activation name.
      num_time_frequencies: number of sinusoid pairs in φ(t); the periods double from 2 time
        units on. φ(t) also holds t itself, so the field is never autonomous.
      layer_norm: normalise each hidden layer's pre-activations (helps keep NFE bounded).

    Call arguments:
      time: float scalar, or `[batch, 1]` (one time per row: `solvers.fixed_grid_advance`).
      state: `[batch, units]`.

    Returns:
      `[batch, units]`, dh/dt.
    """

    def __init__(
        self,
        hidden_units: int = 256,
        depth: int = 2,
        activation: str = "tanh",
        num_time_frequencies: int = 4,
        layer_norm: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if depth < 1:
            raise ValueError(f"VectorField depth must be >= 1, got {depth}.")
        self.hidden_units = hidden_units
        self.depth = depth
        self.activation = keras.activations.get(activation)
        self.num_time_frequencies = num_time_frequencies
        self.layer_norm = layer_norm
        self.time_frequencies = sinusoid_frequencies(num_time_frequencies)

    def build(self, time_shape, state_shape):
        units = state_shape[-1]
        self.state_kernel = self.add_weight(
            name="state_kernel", shape=(units, self.hidden_units), initializer="glorot_uniform"
        )
        self.time_kernel = self.add_weight(
            name="time_kernel",
            shape=(1 + 2 * self.num_time_frequencies, self.hidden_units),
            initializer="glorot_uniform",
        )
        self.input_bias = self.add_weight(
            name="input_bias", shape=(self.hidden_units,), initializer="zeros"
        )
        self.hidden_layers = []
        for index in range(self.depth - 1):
            layer = keras.layers.Dense(self.hidden_units, name=f"hidden_{index}")
            layer.build((None, self.hidden_units))
            self.hidden_layers.append(layer)
        self.norms = []
        if self.layer_norm:
            for index in range(self.depth):
                norm = keras.layers.LayerNormalization(name=f"norm_{index}")
                norm.build((None, self.hidden_units))
                self.norms.append(norm)
        # Small output weights: the flow starts close to the identity map.
        self.output_layer = keras.layers.Dense(
            units,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            name="output",
        )
        self.output_layer.build((None, self.hidden_units))

    def time_features(self, time):
        """φ(t): `[1, 1 + 2 * num_time_frequencies]` for a scalar `time`, `[batch, …]` for a
        `[batch, 1]` one."""
        time = tf.reshape(tf.cast(time, self.compute_dtype), [-1, 1])
        if not self.time_frequencies:
            return time
        angles = time * tf.constant([self.time_frequencies], dtype=self.compute_dtype)
        return tf.concat([time, tf.sin(angles), tf.cos(angles)], axis=-1)

    def call(self, time, state):
        hidden = (
            tf.matmul(state, tf.cast(self.state_kernel, state.dtype))
            + tf.matmul(self.time_features(time), tf.cast(self.time_kernel, state.dtype))
            + tf.cast(self.input_bias, state.dtype)
        )
        for index in range(self.depth):
            if index > 0:
                hidden = self.hidden_layers[index - 1](hidden)
            if self.layer_norm:
                hidden = self.norms[index](hidden)
            hidden = self.activation(hidden)
        return self.output_layer(hidden)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "depth": self.depth,
            "activation": keras.activations.serialize(self.activation),
            "num_time_frequencies": self.num_time_frequencies,
            "layer_norm": self.layer_norm,
        }


@keras.saving.register_keras_serializable(package="tfode")
class GatedVectorField(keras.layers.Layer):
    """A GRU-shaped field (GRU-ODE, De Brouwer et al. 2019), conditioned on time:

        r = σ(W_r h + U_r φ(t) + b_r),  z = σ(W_z h + U_z φ(t) + b_z),
        g = tanh(W_g (r ⊙ h) + U_g φ(t) + b_g),   dh/dt = (1 − z) ⊙ (g − h).

    The gates let the dynamics switch per position, and a state inside [-1, 1] stays there.
    Same cost as a two-layer `VectorField` of the state's width (three units × units kernels).

    Args:
      num_time_frequencies: as in `VectorField`.

    Call arguments and result: as `VectorField`.
    """

    def __init__(self, num_time_frequencies: int = 4, **kwargs):
        kwargs.pop("hidden_units", None)  # the width is the state's
        super().__init__(**kwargs)
        self.num_time_frequencies = num_time_frequencies
        self.time_frequencies = sinusoid_frequencies(num_time_frequencies)

    def build(self, time_shape, state_shape):
        units = state_shape[-1]
        features = 1 + 2 * self.num_time_frequencies
        self.gate_kernel = self.add_weight(
            name="gate_kernel", shape=(units, 2 * units), initializer="glorot_uniform"
        )
        self.candidate_kernel = self.add_weight(
            name="candidate_kernel", shape=(units, units), initializer="orthogonal"
        )
        self.time_kernel = self.add_weight(
            name="time_kernel", shape=(features, 3 * units), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(name="bias", shape=(3 * units,), initializer="zeros")

    time_features = VectorField.time_features

    def call(self, time, state):
        units = tf.shape(state)[-1]
        time_part = tf.matmul(self.time_features(time), self.time_kernel) + self.bias
        gates = tf.sigmoid(tf.matmul(state, self.gate_kernel) + time_part[:, : 2 * units])
        reset, update = gates[:, :units], gates[:, units:]
        candidate = tf.tanh(
            tf.matmul(reset * state, self.candidate_kernel) + time_part[:, 2 * units :]
        )
        return (1.0 - update) * (candidate - state)

    def get_config(self):
        return {**super().get_config(), "num_time_frequencies": self.num_time_frequencies}


@keras.saving.register_keras_serializable(package="tfode")
class ODESolve(keras.layers.Layer):
    """Keras wrapper of `tfode.solvers.odeint` around a `VectorField`.

    Args:
      vector_field: a `VectorField` layer (or its config dict when deserialising).
      solver: a solver object, its name ("dopri5", "bdf", "rk4", "euler") or its config dict.
      kinetic_energy: weight of Finlay et al.'s kinetic-energy integral ∫||f||²/units dt, added
        to the model's losses in training (`tfode.regularization`). 0 turns it off.
      jacobian_norm: weight of the Jacobian Frobenius-norm integral (Hutchinson estimate with
        one Gaussian probe per solve), added likewise. 0 turns it off.
      seed: seed of the Jacobian probe.

    Call arguments:
      initial_state: `[batch, units]`, h(initial_time).
      solution_times: `[T]`, non-decreasing, `>= initial_time`.
      initial_time: float scalar, default 0.
      training: whether gradients will be taken; asking for it with a solver that cannot be
        trained (BDF) raises `ValueError`.

    Returns:
      `[batch, T, units]`, h at each solution time. The number of function evaluations of the
      last call is kept in the non-trainable variable `last_nfe`; with regularisation, the
      batch means of the two integrals of the last training call in `last_kinetic_energy` and
      `last_jacobian_norm`.
    """

    def __init__(
        self, vector_field, solver="dopri5", kinetic_energy=0.0, jacobian_norm=0.0, seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(vector_field, dict):
            vector_field = keras.saving.deserialize_keras_object(vector_field)
        if kinetic_energy < 0 or jacobian_norm < 0:
            raise ValueError("Regularisation weights must be >= 0.")
        self.vector_field = vector_field
        self.solver = solvers.solver_from_config(solver)
        self.kinetic_energy = float(kinetic_energy)
        self.jacobian_norm = float(jacobian_norm)
        self.seed = seed
        self.last_nfe = self.add_weight(
            name="last_nfe", shape=(), dtype="int32", initializer="zeros", trainable=False
        )
        if self.regularized:
            self.seed_generator = keras.random.SeedGenerator(seed, name="probe_seed")
            self.last_kinetic_energy = self.add_weight(
                name="last_kinetic_energy", shape=(), initializer="zeros", trainable=False
            )
            self.last_jacobian_norm = self.add_weight(
                name="last_jacobian_norm", shape=(), initializer="zeros", trainable=False
            )

    @property
    def regularized(self) -> bool:
        return self.kinetic_energy > 0 or self.jacobian_norm > 0

    def build(self, initial_state_shape, solution_times_shape=None):
        if not self.vector_field.built:  # a field may be shared by several solves
            self.vector_field.build(time_shape=(), state_shape=initial_state_shape)

    def check_trainable(self, training):
        if training and not self.solver.trainable:
            raise ValueError(
                f"The {self.solver.name!r} solver is for inference only (its gradients take "
                "minutes per step); train with 'dopri5', 'rk4' or 'euler' and switch solvers "
                "for inference with `with_solver`."
            )

    def solve(self, initial_state, solution_times, initial_time=0.0):
        """Like `call`, but returns `(states [batch, T, units], nfe int32 scalar)` and keeps no
        statistics, so it can run inside loops (the ODE-RNN decoder)."""
        states, stats = solvers.odeint(
            self.vector_field, initial_state, solution_times, self.solver, initial_time
        )
        return tf.transpose(states, [1, 0, 2]), stats.num_function_evaluations

    def draw_probe(self, initial_state):
        """The Jacobian term's Gaussian probe, `[batch, units]`, or None without that term."""
        if self.jacobian_norm <= 0:
            return None
        return keras.random.normal(
            tf.shape(initial_state), dtype=initial_state.dtype, seed=self.seed_generator
        )

    def solve_with_integrals(self, initial_state, solution_times, initial_time=0.0, probe=None):
        """Like `solve`, integrating the kinetic energy and Jacobian norm alongside, with no
        side effects (it runs inside the ODE-RNN's loop).

        Returns:
          `(states [batch, T, units], nfe, kinetic [batch], jacobian [batch])`, the integrals
          taken from `initial_time` to the last solution time.
        """
        units = initial_state.shape[-1]
        field = regularization.augmented_field(self.vector_field, units, probe)
        states, stats = solvers.odeint(
            field, regularization.with_integrals(initial_state), solution_times, self.solver,
            initial_time,
        )
        states, kinetic, jacobian = regularization.split_integrals(
            tf.transpose(states, [1, 0, 2]), units
        )
        return states, stats.num_function_evaluations, kinetic, jacobian

    def add_penalty(self, kinetic, jacobian):
        """Adds the weighted penalty of the batch-mean integrals (scalars) to the layer's
        losses and keeps them in `last_kinetic_energy` and `last_jacobian_norm`."""
        self.add_loss(self.kinetic_energy * kinetic + self.jacobian_norm * jacobian)
        self.last_kinetic_energy.assign(kinetic)
        self.last_jacobian_norm.assign(jacobian)

    def solve_regularized(self, initial_state, solution_times, initial_time=0.0):
        """Like `solve`, integrating the kinetic energy and Jacobian norm alongside; adds
        their weighted batch means to the layer's losses."""
        states, nfe, kinetic, jacobian = self.solve_with_integrals(
            initial_state, solution_times, initial_time, self.draw_probe(initial_state)
        )
        self.add_penalty(tf.reduce_mean(kinetic), tf.reduce_mean(jacobian))
        return states, nfe

    def call(self, initial_state, solution_times, initial_time=0.0, training=None):
        self.check_trainable(training)
        if training and self.regularized:
            states, nfe = self.solve_regularized(initial_state, solution_times, initial_time)
        else:
            states, nfe = self.solve(initial_state, solution_times, initial_time)
        self.last_nfe.assign(nfe)
        return states

    def compute_output_shape(self, initial_state_shape, solution_times_shape=None):
        times = solution_times_shape[0] if solution_times_shape else None
        return (initial_state_shape[0], times, initial_state_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "vector_field": keras.saving.serialize_keras_object(self.vector_field),
            "solver": solvers.solver_to_config(self.solver),
            "kinetic_energy": self.kinetic_energy,
            "jacobian_norm": self.jacobian_norm,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="tfode")
class TiedReadout(keras.layers.Layer):
    """Token logits scored against an embedding matrix (Press & Wolf 2017, "Using the Output
    Embedding to Improve Language Models").

    logits = (W h + c) · Eᵀ + b, with E the `[vocab, embedding_dim]` matrix of `embedding`.
    Sharing E with the encoder makes the autoencoder's copy task one map: a rare word's
    readout row is the vector its embedding is trained to be, and the readout costs
    `embedding_dim / units` of an untied `Dense(vocab)`.

    The logits are float32 whatever the compute dtype (the loss and the search read them).

    Args:
      embedding: the `keras.layers.Embedding` whose matrix scores the tokens. It is shared,
        not copied: the layer that owns it saves it.

    Call arguments:
      states: `[..., units]`.

    Returns:
      `[..., vocab]` float32 logits.
    """

    def __init__(self, embedding: keras.layers.Embedding, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.embedding = embedding
        self.projection = keras.layers.Dense(embedding.output_dim, dtype="float32", name="projection")

    def build(self, states_shape):
        if not self.embedding.built:
            self.embedding.build((None,))
        self.projection.build(states_shape)
        self.bias = self.add_weight(
            name="bias", shape=(self.embedding.input_dim,), initializer="zeros"
        )

    def call(self, states):
        projected = self.projection(tf.cast(states, tf.float32))
        matrix = tf.cast(self.embedding.embeddings, tf.float32)
        # One 2-D matmul: `einsum("...d,vd->...v")` broadcasts the matrix over the batch axes.
        flat = tf.reshape(projected, [-1, tf.shape(projected)[-1]])
        logits = tf.matmul(flat, matrix, transpose_b=True) + self.bias
        return tf.reshape(logits, tf.concat([tf.shape(projected)[:-1], [-1]], axis=0))
