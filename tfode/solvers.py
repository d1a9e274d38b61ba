"""ODE solvers behind one entry point, `odeint`.

A solver is described by a small immutable value object (`Dopri5`, `BDF`, `RK4`, `Euler`);
`odeint(vector_field, initial_state, solution_times, solver)` integrates

    dh/dt = vector_field(t, h),   h(initial_time) = initial_state

and returns the states at `solution_times` together with solver statistics.

* `Dopri5` and `BDF` are TensorFlow Probability's adaptive solvers (`tfp.math.ode`). Dopri5's
  gradients use TFP's adjoint method (memory constant in the number of steps). BDF is for stiff
  dynamics at inference only: its gradients take minutes per step, so `trainable=False`.
* `RK4` and `Euler` are fixed-grid methods written here (TFP has none). Each interval between
  consecutive solution times is split into `ceil(length * steps_per_unit)` equal steps, so the
  solution times are always hit exactly. Gradients are plain backpropagation through the steps.

Everything in this module is pure TensorFlow: the vector field runs hundreds of times per
training step.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

VectorFieldFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class AdaptiveSolver:
    """Settings shared by TFP's adaptive solvers: error tolerances and step limits."""

    rtol: float = 1e-3
    atol: float = 1e-4
    first_step_size: float = 0.1
    max_num_steps: int = 1000


@dataclasses.dataclass(frozen=True)
class Dopri5(AdaptiveSolver):
    """Adaptive Dormand–Prince 5(4) (TFP), trainable through the adjoint method."""

    name = "dopri5"
    trainable = True
    tfp_class = tfp.math.ode.DormandPrince


@dataclasses.dataclass(frozen=True)
class BDF(AdaptiveSolver):
    """Adaptive backward differentiation formula (TFP) for stiff dynamics; inference only."""

    name = "bdf"
    trainable = False
    tfp_class = tfp.math.ode.BDF


@dataclasses.dataclass(frozen=True)
class RK4:
    """Classic fourth-order Runge–Kutta on a fixed grid of `steps_per_unit` steps per unit time."""

    steps_per_unit: float = 2.0

    name = "rk4"
    trainable = True
    evaluations_per_step = 4


@dataclasses.dataclass(frozen=True)
class Euler:
    """Explicit Euler on a fixed grid of `steps_per_unit` steps per unit time."""

    steps_per_unit: float = 4.0

    name = "euler"
    trainable = True
    evaluations_per_step = 1


SOLVERS = {cls.name: cls for cls in (Dopri5, BDF, RK4, Euler)}
Solver = Dopri5 | BDF | RK4 | Euler


def solver_to_config(solver: Solver) -> dict:
    """A JSON-ready description: `{"name": "rk4", "steps_per_unit": 2.0}`."""
    return {"name": solver.name, **dataclasses.asdict(solver)}


def solver_from_config(config: dict | str | Solver) -> Solver:
    """Inverse of `solver_to_config`; also accepts a bare name ("dopri5") or a solver object."""
    if isinstance(config, (Dopri5, BDF, RK4, Euler)):
        return config
    if isinstance(config, str):
        config = {"name": config}
    config = dict(config)
    name = config.pop("name", None)
    if name not in SOLVERS:
        raise ValueError(f"Unknown ODE solver {name!r}; expected one of {sorted(SOLVERS)}.")
    cls = SOLVERS[name]
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"Solver {name!r} has no option(s) {sorted(unknown)}; it takes {sorted(known)}.")
    return cls(**config)


class SolverStats(NamedTuple):
    """Statistics of one `odeint` call.

    num_function_evaluations: int32 scalar, evaluations of the vector field in the forward solve.
    """

    num_function_evaluations: tf.Tensor


def odeint(
    vector_field: VectorFieldFn,
    initial_state: tf.Tensor,
    solution_times: tf.Tensor,
    solver: Solver,
    initial_time: tf.Tensor | float = 0.0,
) -> tuple[tf.Tensor, SolverStats]:
    """Integrates `dh/dt = vector_field(t, h)` from `initial_time`.

    Args:
      vector_field: `(t, h) -> dh/dt`, `t` a float scalar, `h` and the result `[batch, units]`.
      initial_state: `[batch, units]` float tensor, the state at `initial_time`.
      solution_times: `[T]` float tensor, non-decreasing and `>= initial_time`.
      solver: one of `Dopri5`, `BDF`, `RK4`, `Euler`.
      initial_time: float scalar.

    Returns:
      `(states, stats)`: `states` is `[T, batch, units]` (time-major, like `solution_times`),
      `stats` a `SolverStats`.
    """
    initial_state = tf.convert_to_tensor(initial_state)
    dtype = initial_state.dtype
    solution_times = tf.cast(solution_times, dtype)
    initial_time = tf.cast(initial_time, dtype)
    if isinstance(solver, AdaptiveSolver):
        return _tfp_solve(vector_field, initial_state, solution_times, solver, initial_time)
    if isinstance(solver, (RK4, Euler)):
        return _fixed_grid_solve(vector_field, initial_state, solution_times, solver, initial_time)
    raise TypeError(f"Not an ODE solver: {solver!r}")


def _tfp_solve(vector_field, initial_state, solution_times, solver, initial_time):
    tfp_solver = solver.tfp_class(
        rtol=solver.rtol,
        atol=solver.atol,
        first_step_size=solver.first_step_size,
        max_num_steps=solver.max_num_steps,
    )
    results = tfp_solver.solve(
        vector_field,
        initial_time,
        initial_state,
        solution_times=solution_times,
    )
    stats = SolverStats(tf.cast(results.diagnostics.num_ode_fn_evaluations, tf.int32))
    return results.states, stats


def _rk4_step(vector_field, time, state, step):
    k1 = vector_field(time, state)
    k2 = vector_field(time + step / 2, state + step / 2 * k1)
    k3 = vector_field(time + step / 2, state + step / 2 * k2)
    k4 = vector_field(time + step, state + step * k3)
    return state + step / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def _euler_step(vector_field, time, state, step):
    return state + step * vector_field(time, state)


def _fixed_grid_solve(vector_field, initial_state, solution_times, solver, initial_time):
    step_fn = _rk4_step if isinstance(solver, RK4) else _euler_step
    interval_starts = tf.concat([initial_time[None], solution_times[:-1]], axis=0)
    steps_per_interval = tf.cast(
        tf.math.ceil((solution_times - interval_starts) * solver.steps_per_unit - 1e-6), tf.int32
    )
    steps_per_interval = tf.maximum(steps_per_interval, 0)

    def integrate_interval(state, interval):
        start, end, num_steps = interval
        step = (end - start) / tf.cast(tf.maximum(num_steps, 1), state.dtype)

        def body(index, current):
            time = start + tf.cast(index, state.dtype) * step
            return index + 1, step_fn(vector_field, time, current, step)

        _, final = tf.while_loop(lambda index, _: index < num_steps, body, (tf.constant(0), state))
        return final

    states = tf.scan(
        integrate_interval,
        (interval_starts, solution_times, steps_per_interval),
        initializer=initial_state,
    )
    nfe = tf.reduce_sum(steps_per_interval) * solver.evaluations_per_step
    return states, SolverStats(nfe)

