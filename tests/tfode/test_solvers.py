"""The solvers against the matrix exponential, and their gradients against each other."""

import numpy as np
import pytest
import tensorflow as tf

from tfode import solvers

TIMES = [0.25, 0.5, 1.0, 1.7]


def linear_system(seed=0, units=4):
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(units, units)) * 0.6 - np.eye(units) * 0.3
    initial_state = rng.normal(size=(3, units))
    return tf.constant(matrix), tf.constant(initial_state)


def exact_solution(matrix, initial_state, times):
    # h(t) = h0 · expm(A t)ᵀ for row vectors, dh/dt = h Aᵀ.
    return np.stack(
        [initial_state.numpy() @ tf.linalg.expm(matrix * t).numpy().T for t in times]
    )


@pytest.mark.parametrize(
    "solver, tolerance",
    [
        pytest.param(solvers.Dopri5(rtol=1e-8, atol=1e-10), 1e-6, id="dopri5"),
        pytest.param(solvers.RK4(steps_per_unit=50), 1e-6, id="rk4"),
        pytest.param(solvers.Euler(steps_per_unit=2000), 5e-3, id="euler"),
        pytest.param(solvers.BDF(rtol=1e-7, atol=1e-9), 1e-4, id="bdf", marks=pytest.mark.slow),
    ],
)
def test_linear_ode_matches_matrix_exponential(solver, tolerance):
    matrix, initial_state = linear_system()
    states, stats = solvers.odeint(
        lambda t, h: tf.matmul(h, matrix, transpose_b=True), initial_state, TIMES, solver
    )
    expected = exact_solution(matrix, initial_state, TIMES)
    assert states.shape == (len(TIMES), 3, 4)
    np.testing.assert_allclose(states.numpy(), expected, atol=tolerance, rtol=0)
    assert int(stats.num_function_evaluations) > 0


def test_fixed_grid_hits_solution_times_and_counts_evaluations():
    matrix, initial_state = linear_system()
    solver = solvers.RK4(steps_per_unit=2)
    _, stats = solvers.odeint(
        lambda t, h: tf.matmul(h, matrix, transpose_b=True), initial_state, [0.5, 1.0, 3.0], solver
    )
    # Intervals 0.5, 0.5 and 2.0 → 1 + 1 + 4 steps of 4 evaluations.
    assert int(stats.num_function_evaluations) == 24


def test_time_dependent_field_uses_the_right_times():
    # dh/dt = cos(t) → h(t) = h0 + sin(t), also from a non-zero initial time.
    initial_state = tf.zeros([1, 1], tf.float64)
    for solver in (solvers.RK4(steps_per_unit=20), solvers.Dopri5(rtol=1e-9, atol=1e-10)):
        states, _ = solvers.odeint(
            lambda t, h: tf.ones_like(h) * tf.cos(t), initial_state, [1.5, 3.0], solver, initial_time=1.0
        )
        np.testing.assert_allclose(
            states.numpy()[:, 0, 0], np.sin([1.5, 3.0]) - np.sin(1.0), atol=1e-6
        )


def _loss_and_gradients(solver, matrix_value, initial_state):
    matrix = tf.Variable(matrix_value)
    start = tf.Variable(initial_state)
    weights = tf.constant(np.linspace(-1.0, 1.0, 4))
    with tf.GradientTape() as tape:
        states, _ = solvers.odeint(
            lambda t, h: tf.tanh(tf.matmul(h, matrix, transpose_b=True)), start, [0.5, 1.5], solver
        )
        loss = tf.reduce_sum(states * weights)
    return loss, tape.gradient(loss, [matrix, start])


def test_adjoint_gradients_match_backprop_and_finite_differences():
    matrix, initial_state = linear_system(seed=1)
    _, adjoint = _loss_and_gradients(solvers.Dopri5(rtol=1e-9, atol=1e-10), matrix, initial_state)
    _, backprop = _loss_and_gradients(solvers.RK4(steps_per_unit=100), matrix, initial_state)
    for adjoint_gradient, backprop_gradient in zip(adjoint, backprop):
        np.testing.assert_allclose(adjoint_gradient.numpy(), backprop_gradient.numpy(), atol=1e-6)

    # Central differences on a few entries of the matrix.
    epsilon = 1e-5
    for row, column in [(0, 0), (1, 3), (3, 2)]:
        bump = np.zeros((4, 4))
        bump[row, column] = epsilon
        plus, _ = _loss_and_gradients(solvers.RK4(steps_per_unit=100), matrix + bump, initial_state)
        minus, _ = _loss_and_gradients(solvers.RK4(steps_per_unit=100), matrix - bump, initial_state)
        numeric = (plus.numpy() - minus.numpy()) / (2 * epsilon)
        np.testing.assert_allclose(adjoint[0].numpy()[row, column], numeric, atol=1e-6)


def test_solver_config_round_trip_and_errors():
    solver = solvers.Dopri5(rtol=1e-5, atol=1e-7)
    assert solvers.solver_from_config(solvers.solver_to_config(solver)) == solver
    assert solvers.solver_from_config("rk4") == solvers.RK4()
    with pytest.raises(ValueError, match="Unknown ODE solver"):
        solvers.solver_from_config("leapfrog")
    with pytest.raises(ValueError, match="no option"):
        solvers.solver_from_config({"name": "rk4", "rtol": 1e-3})
