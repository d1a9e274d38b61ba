"""`ODESolve`: a vector field and a solver value behind one Keras call.

    solution = ODESolve(vector_field, solver)(h0, solution_times)
    solution.states   [batch, T, units]   h at each solution time
    solution.nfe      int32 scalar        vector-field evaluations of the forward solve
    solution.kinetic_energy, solution.jacobian_norm
                      [batch] float32     Finlay et al.'s integrals (`tfode.regularization`)
                                          when asked for, else None

The layer keeps no state between calls: what a decoder needs from a solve is in its result.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf

from tfode import regularization, solvers


class ODESolution(NamedTuple):
    states: tf.Tensor
    nfe: tf.Tensor
    kinetic_energy: tf.Tensor | None = None
    jacobian_norm: tf.Tensor | None = None


@keras.saving.register_keras_serializable(package="tfode")
class ODESolve(keras.layers.Layer):
    """Integrates dh/dt = vector_field(t, h) with `tfode.solvers.odeint`.

    Args:
      vector_field: a Keras layer called as `vector_field(time, state)` (`tfode.fields`). It
        computes in float32 whatever the global dtype policy: adaptive step control needs it.
      solver: a solver value (`Dopri5`, `BDF`, `RK4`, `Euler`), or its config dict.

    Call arguments:
      initial_state: `[batch, units]`, h(initial_time).
      solution_times: `[T]`, non-decreasing, `>= initial_time`.
      initial_time: float scalar, default 0.
      integrals: also integrate the kinetic energy ∫||f||²/units dt alongside the state.
      probe: `[batch, units]` Gaussian probe: also integrate the Jacobian-norm estimate
        ∫||probeᵀ ∂f/∂h||²/units dt (needs `integrals=True`).
      training: whether gradients will be taken; a solver that cannot be trained (BDF) refuses.

    Returns:
      An `ODESolution`; its integrals are taken from `initial_time` to the last solution time.
    """

    def __init__(self, vector_field, solver=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if isinstance(vector_field, dict):
            vector_field = keras.saving.deserialize_keras_object(vector_field)
        if not callable(vector_field):
            raise TypeError(f"vector_field must be a layer called as field(time, state), got {vector_field!r}.")
        if getattr(vector_field, "compute_dtype", "float32") != "float32":
            raise ValueError(
                "The vector field must compute in float32 (adaptive step control needs it); "
                f"construct it with dtype='float32' (it has {vector_field.compute_dtype!r})."
            )
        self.vector_field = vector_field
        self.solver = solvers.solver_from_config(solver if solver is not None else solvers.RK4())

    def build(self, initial_state_shape, solution_times_shape=None):
        if not self.vector_field.built:  # a field may be shared by several solves
            self.vector_field.build(time_shape=(), state_shape=initial_state_shape)

    def call(self, initial_state, solution_times, initial_time=0.0, integrals=False, probe=None,
             training=None) -> ODESolution:
        if training and not self.solver.trainable:
            raise ValueError(
                f"The {self.solver.name!r} solver is for inference only (its gradients take "
                "minutes per step); train with 'dopri5', 'rk4' or 'euler' and switch solvers "
                "for inference with `Seq2SeqODE.with_solver`."
            )
        if probe is not None and not integrals:
            raise ValueError("A Jacobian probe is integrated only with integrals=True.")
        initial_state = tf.cast(initial_state, self.compute_dtype)
        if not integrals:
            states, stats = solvers.odeint(
                self.vector_field, initial_state, solution_times, self.solver, initial_time
            )
            return ODESolution(tf.transpose(states, [1, 0, 2]), stats.num_function_evaluations)
        units = initial_state.shape[-1]
        field = regularization.augmented_field(self.vector_field, units, probe)
        states, stats = solvers.odeint(
            field, regularization.with_integrals(initial_state), solution_times, self.solver,
            initial_time,
        )
        states, kinetic, jacobian = regularization.split_integrals(
            tf.transpose(states, [1, 0, 2]), units
        )
        return ODESolution(states, stats.num_function_evaluations, kinetic,
                           jacobian if probe is not None else None)

    def compute_output_shape(self, initial_state_shape, solution_times_shape=None):
        times = solution_times_shape[0] if solution_times_shape else None
        return (initial_state_shape[0], times, initial_state_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "vector_field": keras.saving.serialize_keras_object(self.vector_field),
            "solver": solvers.solver_to_config(self.solver),
        }
