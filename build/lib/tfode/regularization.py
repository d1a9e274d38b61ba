"""Finlay et al. 2020 ("How to train your neural ODE"): integrals that keep a flow simple.

    kinetic energy   E = ∫ ||f(h, t)||² dt
    Jacobian norm    J = ∫ ||εᵀ ∂f/∂h||² dt,   ε ~ N(0, I)   (Hutchinson: E_ε = ∫ ||∂f/∂h||_F² dt)

Both are integrated alongside the state by the same solver: the state `[batch, units]` grows two
columns, `[batch, units + 2]`, whose time derivatives are the integrands. Penalising them favours
straight, slowly-varying trajectories, which an adaptive solver crosses in few steps (bounded NFE).
The squared norms are divided by `units`, so a weight means the same at any width.
"""

from __future__ import annotations

import tensorflow as tf

EXTRA_COLUMNS = 2  # kinetic energy, Jacobian norm


def augmented_field(vector_field, units: int, probe: tf.Tensor | None):
    """`(t, [h, e, j]) -> [f(h, t), ||f||² / units, ||probeᵀ ∂f/∂h||² / units]`.

    Args:
      vector_field: `(t, h) -> dh/dt`, `h` `[batch, units]`.
      units: width of h.
      probe: `[batch, units]` Gaussian noise for the Jacobian term, fixed for the whole solve;
        None leaves the Jacobian column at zero (and skips its cost).

    Returns:
      A vector field on `[batch, units + 2]` states.
    """

    def field(time, state):
        hidden = state[:, :units]
        if probe is None:
            derivative = vector_field(time, hidden)
            jacobian = tf.zeros_like(derivative[:, :1])
        else:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(hidden)
                derivative = vector_field(time, hidden)
            probe_jacobian = tape.gradient(derivative, hidden, output_gradients=probe)
            jacobian = tf.reduce_mean(tf.square(probe_jacobian), axis=-1, keepdims=True)
        kinetic = tf.reduce_mean(tf.square(derivative), axis=-1, keepdims=True)
        return tf.concat([derivative, kinetic, jacobian], axis=-1)

    return field


def with_integrals(initial_state):
    """`[batch, units]` → `[batch, units + 2]`: both integrals start at zero."""
    zeros = tf.zeros([tf.shape(initial_state)[0], EXTRA_COLUMNS], initial_state.dtype)
    return tf.concat([initial_state, zeros], axis=-1)


def split_integrals(states, units: int):
    """`[batch, T, units + 2]` → `(states [batch, T, units], kinetic [batch], jacobian [batch])`,
    the integrals taken at the last solution time."""
    return states[..., :units], states[:, -1, units], states[:, -1, units + 1]
