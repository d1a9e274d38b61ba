"""ODE solvers behind one entry point, `odeint`.

A solver is described by a small immutable value object (`Dopri5`, `BDF`, `RK4`, `Euler`);
`odeint(vector_field, initial_state, solution_times, solver)` integrates

    dh/dt = vector_field(t, h),   h(initial_time) = initial_state

and returns the states at `solution_times` together with solver statistics.

* `Dopri5` and `BDF` are TensorFlow Probability's adaptive solvers (`tfp.math.ode`). Dopri5's
  gradients use TFP's adjoint method (memory constant in the number of steps). BDF is for stiff
  dynamics at inference only: its gradients take minutes per step, so `trainable=False`.
* `RK4` and `Euler` are fixed-grid methods written here (TFP has none). The grid is
  `initial_time + j / steps_per_unit`; a solution time between two grid points is reached by
  one partial step from the grid point before it, off the grid. So the states at some times
  never depend on which other times were asked for: asking for the midpoints between tokens
  leaves the states at the tokens as they were in training. Gradients are plain
  backpropagation through the steps.

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
    """Settings shared by TFP's adaptive solvers: error tolerances and step limits.

    TFP chooses one step size for a whole batch (one error norm over every row), so a row's
    answer depends on the rows solved with it. With `independent_rows`, each row is solved on
    its own (`tf.map_fn`), with step sizes of its own: what a server needs, where requests are
    batched together (the exports use it); it costs the batch's vectorisation. The NFE reported
    is then the most any row of the batch spent.
    """

    rtol: float = 1e-3
    atol: float = 1e-4
    first_step_size: float = 0.1
    max_num_steps: int = 1000
    independent_rows: bool = False

    options = ("rtol", "atol")  # the settings a command line sets
    steps_in_a_loop = False  # TFP's adjoint gradient cannot run inside a per-token loop

    def __post_init__(self):
        for field in ("rtol", "atol", "first_step_size"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{type(self).__name__}: {field} must be a positive number, got {value!r}.")
        if not (isinstance(self.max_num_steps, int) and self.max_num_steps >= 1):
            raise ValueError(f"{type(self).__name__}: max_num_steps must be a positive integer, "
                             f"got {self.max_num_steps!r}.")
        if not isinstance(self.independent_rows, bool):
            raise ValueError(f"{type(self).__name__}: independent_rows must be a bool, got {self.independent_rows!r}.")


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
class FixedGridSolver:
    """A fixed grid of `steps_per_unit` steps per unit of time (> 0)."""

    steps_per_unit: float = 2.0

    trainable = True
    options = ("steps_per_unit",)  # the settings a command line sets
    steps_in_a_loop = True  # plain backpropagation through its steps, wherever they run

    def __post_init__(self):
        value = self.steps_per_unit
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"{type(self).__name__}: steps_per_unit must be a positive number, got {value!r}.")

    def has_on_grid(self, duration: float) -> bool:
        """Whether `duration` is a whole number of grid steps (to within 1e-6)."""
        steps = duration * self.steps_per_unit
        return abs(steps - round(steps)) <= 1e-6


@dataclasses.dataclass(frozen=True)
class RK4(FixedGridSolver):
    """Classic fourth-order Runge–Kutta on a fixed grid of `steps_per_unit` steps per unit time."""

    name = "rk4"
    evaluations_per_step = 4


@dataclasses.dataclass(frozen=True)
class Euler(FixedGridSolver):
    """Explicit Euler on a fixed grid of `steps_per_unit` steps per unit time."""

    name = "euler"
    evaluations_per_step = 1


SOLVERS = {cls.name: cls for cls in (Dopri5, BDF, RK4, Euler)}  # the one name → solver map
Solver = Dopri5 | BDF | RK4 | Euler


def from_options(name: str, settings: dict) -> Solver:
    """The solver `name` with the `options` it takes picked from `settings` (a command line's
    values; the others are left); ValueError naming the known solvers."""
    if name not in SOLVERS:
        raise ValueError(f"Unknown ODE solver {name!r}; expected one of {sorted(SOLVERS)}.")
    cls = SOLVERS[name]
    return cls(**{key: settings[key] for key in cls.options if settings.get(key) is not None})


def solver_to_config(solver: Solver) -> dict:
    """A JSON-ready description: `{"name": "rk4", "steps_per_unit": 2.0}`."""
    return {"name": solver.name, **dataclasses.asdict(solver)}


def solver_from_config(config: dict | str | Solver) -> Solver:
    """Inverse of `solver_to_config`; also accepts a bare name ("dopri5") or a solver object."""
    if isinstance(config, (Dopri5, BDF, RK4, Euler)):
        return config
    if isinstance(config, str):
        config = {"name": config}
    if not isinstance(config, dict):
        raise TypeError(f"Not an ODE solver or solver config: {config!r}")
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
    if isinstance(solver, FixedGridSolver):
        return _fixed_grid_solve(vector_field, initial_state, solution_times, solver, initial_time)
    raise TypeError(f"Not an ODE solver: {solver!r}")


def _tfp_solve(vector_field, initial_state, solution_times, solver, initial_time):
    if solver.independent_rows:
        def one_row(state):  # [units] → ([T, units], NFE)
            states, stats = _tfp_solve(vector_field, state[None], solution_times,
                                       dataclasses.replace(solver, independent_rows=False), initial_time)
            return states[:, 0], stats.num_function_evaluations

        states, evaluations = tf.map_fn(one_row, initial_state,
                                        fn_output_signature=(initial_state.dtype, tf.int32))
        return tf.transpose(states, [1, 0, 2]), SolverStats(tf.reduce_max(tf.concat([evaluations, [0]], 0)))
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
    dtype = initial_state.dtype
    grid_step = tf.constant(1.0 / solver.steps_per_unit, dtype)
    # Position of each solution time on the grid, in steps; a time within 1e-6 step of a grid
    # point is on it.
    positions = (solution_times - initial_time) * solver.steps_per_unit
    grid_index = tf.maximum(tf.cast(tf.math.floor(positions + 1e-6), tf.int32), 0)
    remainders = tf.maximum(positions - tf.cast(grid_index, dtype), 0.0) * grid_step
    num_steps = tf.reduce_max(tf.concat([[0], grid_index], axis=0))

    def grid_step_from(state, index):
        time = initial_time + tf.cast(index, dtype) * grid_step
        return step_fn(vector_field, time, state, grid_step)

    # At least one grid step: `tf.scan` cannot stack zero steps of a state whose batch size is
    # unknown (a partial step from the initial time alone, as the ODE-RNN takes for a time
    # inside its first interval); the extra step is then never gathered.
    steps_taken = tf.maximum(num_steps, 1)
    grid_states = tf.scan(grid_step_from, tf.range(steps_taken), initializer=initial_state)
    grid_states = tf.concat([initial_state[None], grid_states], axis=0)
    states = tf.gather(grid_states, grid_index)  # [T, batch, units]

    # Off-grid times: one partial step each from the grid point before it.
    off_grid = tf.where(remainders > 1e-6 * grid_step)[:, 0]
    num_partial = tf.shape(off_grid)[0]

    def with_partial_steps():
        partial_states = tf.map_fn(
            lambda args: step_fn(
                vector_field, initial_time + tf.cast(args[1], dtype) * grid_step, args[0], args[2]
            ),
            (tf.gather(states, off_grid), tf.gather(grid_index, off_grid),
             tf.gather(remainders, off_grid)),
            fn_output_signature=tf.TensorSpec(initial_state.shape, dtype),
        )
        return tf.tensor_scatter_nd_update(states, off_grid[:, None], partial_states)

    states = tf.cond(num_partial > 0, with_partial_steps, lambda: states)
    nfe = (steps_taken + num_partial) * solver.evaluations_per_step
    return states, SolverStats(nfe)


def fixed_grid_advance(vector_field, states, start_times, duration, solver):
    """Moves each row of `states` from its own grid time by the same `duration`, on the grid
    `odeint` uses: `floor(duration * steps_per_unit)` whole steps, then one partial step.

    Equal to `odeint` from a grid point (the token times of a decoder whose Δt is a whole
    number of steps), but every row runs at once, each at its own time: the field is called
    with a `[batch, 1]` time.

    Args:
      vector_field: `(t, h) -> dh/dt` accepting `t` of shape `[batch, 1]`.
      states: `[batch, units]`.
      start_times: `[batch]`, each a point of the solver's grid.
      duration: a Python float >= 0.
      solver: `RK4` or `Euler`.

    Returns:
      `[batch, units]`, the states `duration` later.
    """
    if not isinstance(solver, FixedGridSolver):
        raise TypeError(f"fixed_grid_advance needs a fixed-grid solver (rk4, euler), got {solver!r}.")
    step_fn = _rk4_step if isinstance(solver, RK4) else _euler_step
    grid_step = 1.0 / solver.steps_per_unit
    whole_steps = int(duration * solver.steps_per_unit + 1e-6)
    remainder = duration - whole_steps * grid_step
    time = tf.reshape(tf.cast(start_times, states.dtype), [-1, 1])
    for _ in range(whole_steps):
        states = step_fn(vector_field, time, states, grid_step)
        time = time + grid_step
    if remainder > 1e-6 * grid_step:
        states = step_fn(vector_field, time, states, remainder)
    return states

