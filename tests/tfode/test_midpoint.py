"""The trajectory decoder's midpoint term, and the fixed grid it relies on."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfode
from tfode import solvers
from tfode.text import EOS_ID, append_eos


def trajectory_model(vocab_size, midpoint_weight=1.0, **overrides):
    settings = dict(decoder="trajectory", units=16, embedding_dim=8, max_length=8,
                    vector_field={"type": "gated"}, solver={"name": "rk4", "steps_per_unit": 1.0},
                    midpoint_weight=midpoint_weight)
    settings.update(overrides)
    model = tfode.Seq2SeqODE(vocab_size, **settings)
    model.build((None, None))
    return model


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


def test_midpoint_term_is_minus_log_of_the_two_neighbours_mass(tiny_text):
    # One word and <eos>: the only midpoint is t = 1.5, so the random draw cannot matter.
    keras.utils.set_random_seed(4)
    model = trajectory_model(tiny_text.vocabulary_size, midpoint_weight=0.7)
    tokens = tiny_text.encode(["the cat", "a dog", "the dog"]).ids.numpy()[:, :1]
    model(tokens, training=True)
    (term,) = model.losses
    _, logits = model.decoder.states_at(model.encode(tokens)[0], tf.constant([1.5]))
    probabilities = tf.nn.softmax(logits[:, 0]).numpy()
    targets = append_eos(tokens).numpy()
    assert (targets[:, 1] == EOS_ID).all()
    mass = probabilities[np.arange(len(tokens)), targets[:, 0]] + probabilities[:, EOS_ID]
    np.testing.assert_allclose(float(term), 0.7 * -np.log(mass).mean(), rtol=1e-5)
    # Inference and a model without the term add nothing.
    model(tokens, training=False)
    assert not model.losses
    plain = trajectory_model(tiny_text.vocabulary_size, midpoint_weight=0.0)
    plain(tokens, training=True)
    assert not plain.losses and plain.decoder.midpoint_seed is None


def test_midpoint_term_trains_the_field_and_saves(tiny_text, tiny_tokens, tmp_path):
    model = trajectory_model(tiny_text.vocabulary_size, dropout=0.1)
    targets = append_eos(tiny_tokens)
    field = model.decoder.ode.vector_field
    with tf.GradientTape() as tape:
        model(tiny_tokens, training=True)
        (term,) = model.losses
    gradients = tape.gradient(term, field.trainable_weights)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)
    model.compile(keras.optimizers.Adam(3e-3))
    history = model.fit(tiny_tokens, targets, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    path = str(tmp_path / "midpoint.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.settings["midpoint_weight"] == 1.0 and loaded.decoder.midpoint_weight == 1.0
    np.testing.assert_allclose(loaded(tiny_tokens).numpy(), model(tiny_tokens).numpy(), atol=1e-5)


def test_midpoint_term_is_refused_where_it_cannot_apply(tiny_text):
    vocab = tiny_text.vocabulary_size
    with pytest.raises(ValueError, match="trajectory decoder"):
        trajectory_model(vocab, decoder="odernn")
    with pytest.raises(ValueError, match="fixed-grid"):
        trajectory_model(vocab, solver="dopri5")
    with pytest.raises(ValueError, match="whole number"):
        trajectory_model(vocab, time_span=0.5)
    with pytest.raises(ValueError, match=">= 0"):
        trajectory_model(vocab, midpoint_weight=-1.0)


@pytest.mark.parametrize("decoder", ["odernn", "trajectory"])
def test_states_between_tokens_in_a_graph_of_unknown_batch_size(tiny_text, tiny_tokens, decoder):
    # The ODE-RNN reaches a midpoint by a partial step alone (no whole grid step): the solve
    # must also build when the batch size is only known at run time, as in `training.evaluate`
    # and the exported signatures.
    model = trajectory_model(tiny_text.vocabulary_size, midpoint_weight=0.0, decoder=decoder)
    times = tf.constant([1.5, 2.0, 2.5])
    graph = tf.function(lambda tokens, at: model.trajectory(tokens, at),
                        input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.float32)])
    _, logits = graph(tf.constant(tiny_tokens, tf.int32), times)
    _, eager = model.trajectory(tiny_tokens, times)
    np.testing.assert_allclose(logits.numpy(), eager.numpy(), atol=1e-5)
