"""The fixed grid the midpoint term relies on: the states at the tokens never depend on the
other times asked for."""

import numpy as np
import pytest
import tensorflow as tf

from tfode import solvers


def test_states_at_the_tokens_do_not_depend_on_the_other_times_asked_for():
    matrix = tf.constant([[0.1, -0.8], [0.9, -0.2]], tf.float64)
    field = lambda t, h: tf.tanh(tf.matmul(h, matrix, transpose_b=True)) * tf.cos(t)
    start = tf.constant([[1.0, 0.5], [-0.3, 0.2]], tf.float64)
    # NFE: 3 grid steps of RK4, plus one partial step each for 0.5, 1.25 and 2.7; 6 grid steps
    # of Euler at 2 per unit, on which 0.5 lies, plus partial steps for 1.25 and 2.7.
    for solver, nfe_alone, nfe_mixed in ((solvers.RK4(steps_per_unit=1), 12, 24),
                                         (solvers.Euler(steps_per_unit=2), 6, 8)):
        alone, alone_stats = solvers.odeint(field, start, [1.0, 2.0, 3.0], solver)
        mixed, mixed_stats = solvers.odeint(field, start, [0.5, 1.0, 1.25, 2.0, 2.7, 3.0], solver)
        np.testing.assert_array_equal(mixed.numpy()[[1, 3, 5]], alone.numpy())
        assert int(alone_stats.num_function_evaluations) == nfe_alone
        assert int(mixed_stats.num_function_evaluations) == nfe_mixed
        # An off-grid time is one partial step from the grid point before it.
        grid_point, _ = solvers.odeint(field, start, [2.5], solver)
        if solver.steps_per_unit == 2:
            partial, _ = solvers.odeint(field, grid_point[0], [2.7], solver, initial_time=2.5)
            np.testing.assert_allclose(mixed.numpy()[4], partial.numpy()[0], rtol=0, atol=1e-12)


def test_fixed_grid_advance_equals_odeint_from_each_rows_own_grid_time():
    field = lambda t, h: -h * tf.sin(t) + 0.3
    solver = solvers.RK4(steps_per_unit=2)
    start = tf.constant([[1.0, -1.0]], tf.float64)
    states, _ = solvers.odeint(field, start, [1.0, 1.5, 2.0, 2.75, 3.0], solver)
    rows = tf.concat([states[0], states[2], states[4]], axis=0)  # h at t = 1, 2, 3
    advanced = solvers.fixed_grid_advance(field, rows, tf.constant([1.0, 2.0, 3.0], tf.float64), 0.75, solver)
    expected, _ = solvers.odeint(field, rows[2:], [3.75], solver, initial_time=3.0)
    np.testing.assert_allclose(advanced.numpy()[1], states.numpy()[3, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(advanced.numpy()[2], expected.numpy()[0, 0], rtol=0, atol=1e-12)
    with pytest.raises(TypeError, match="fixed-grid"):
        solvers.fixed_grid_advance(field, rows, tf.constant([1.0, 2.0, 3.0], tf.float64), 0.5, solvers.Dopri5())
