"""A row's answer never depends on the rows solved or served with it, for every solver."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import small_model
import tfode
from tfode import solvers
from training.serving_export import export_for_serving


def decay(t, state):
    """dh/dt = −k h row by row; a row is [h (3 values), k] and k stays."""
    h, rate = state[:, :3], state[:, 3:]
    return tf.concat([-rate * h, tf.zeros_like(rate)], 1)


def solve(rates, solver):
    """States h at t = 0.5 and 2, one rate k a row: `[2, rows, 3]`."""
    start = tf.concat([tf.ones([len(rates), 3]), tf.constant(rates, tf.float32)[:, None]], 1)
    states, _ = solvers.odeint(decay, start, tf.constant([0.5, 2.0]), solver)
    return states.numpy()[..., :3]


def test_tfps_batch_shares_its_step_sizes_and_independent_rows_do_not():
    shared, alone = tfode.Dopri5(rtol=1e-3, atol=1e-6), tfode.Dopri5(rtol=1e-3, atol=1e-6, independent_rows=True)
    gentle_alone = solve([1.0], shared)[:, 0]
    # Solved beside a stiff row, the gentle row takes the stiff row's small steps: another answer.
    assert np.abs(solve([1.0, 60.0], shared)[:, 0] - gentle_alone).max() > 1e-6
    np.testing.assert_allclose(solve([1.0, 60.0], alone)[:, 0], gentle_alone, rtol=0, atol=1e-7)
    np.testing.assert_allclose(solve([60.0, 1.0, 5.0], alone)[:, 1], gentle_alone, rtol=0, atol=1e-7)


def test_independent_rows_round_trips_and_is_checked():
    solver = tfode.BDF(independent_rows=True)
    assert solvers.solver_from_config(solvers.solver_to_config(solver)) == solver
    with pytest.raises(ValueError, match="independent_rows"):
        tfode.Dopri5(independent_rows="yes")


SENTENCES = ["i like it .", "the cat sat on the mat .", "you .", "a b c d e f g h .", "i like your style .",
             "he has a red car .", "we walk to school .", "she reads .", "the pain was unbearable .", "it is .",
             "the cat sat .", "i like .", "you like it .", "a red car .", "school every day .", "the mat ."]


@pytest.mark.slow
@pytest.mark.parametrize("solver", [tfode.Dopri5(), tfode.BDF(), tfode.RK4(steps_per_unit=2),
                                    tfode.Euler(steps_per_unit=2)], ids=lambda s: s.name)
def test_an_exported_row_answers_alone_as_among_fifteen_others(solver, tiny_text, tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    model = small_model(tiny_text.vocabulary_size, "trajectory", max_length=tiny_text.max_length, solver=solver)
    path = export_for_serving(model, tiny_text, str(tmp_path), "m", version=1,
                                     path_search=tfode.PathSearch(grid=4, directions=0, refinement=None))
    loaded = tf.saved_model.load(path)
    times = np.float32(np.linspace(0.25, 4.0, len(SENTENCES)))
    calls = {
        "decode": lambda rows: {"sentences": tf.constant([SENTENCES[i] for i in rows])},
        "trajectory": lambda rows: {"sentences": tf.constant([SENTENCES[i] for i in rows]),
                                    "time": tf.constant(times[rows])},
    }
    everyone = list(range(len(SENTENCES)))
    for name, inputs in calls.items():
        together = loaded.signatures[name](**inputs(everyone))
        for row in (0, 3, 8):
            alone = loaded.signatures[name](**inputs([row]))
            for output, value in alone.items():
                if output == "nfe":  # the run's count, documented as not a property of a row
                    continue
                got, want = np.asarray(together[output].numpy()[row]), np.asarray(value.numpy()[0])
                if got.shape != want.shape:  # ids padded to the batch's longest sentence
                    got = got[: want.shape[0]]
                if want.dtype.kind == "f":
                    np.testing.assert_allclose(got, want, atol=1e-4, err_msg=f"{solver.name} {name}/{output}")
                else:
                    np.testing.assert_array_equal(got, want, err_msg=f"{solver.name} {name}/{output}")
