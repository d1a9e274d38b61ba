"""Vector fields f(h, t; θ): the right-hand sides of dh/dt = f(h, t) that the decoders integrate.

Both fields are Keras layers called as `field(time, state)`, `time` a float scalar or `[batch, 1]`,
`state` `[batch, units]`, returning dh/dt `[batch, units]`. They run hundreds of times per
training step, so they are plain TensorFlow with no concatenation and nothing random inside.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf



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
        if hidden_units < 1:
            raise ValueError(f"VectorField hidden_units must be >= 1, got {hidden_units}.")
        if num_time_frequencies < 0:
            raise ValueError(f"num_time_frequencies must be >= 0, got {num_time_frequencies}.")
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
        super().__init__(**kwargs)
        if num_time_frequencies < 0:
            raise ValueError(f"num_time_frequencies must be >= 0, got {num_time_frequencies}.")
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
