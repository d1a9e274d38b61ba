"""Finlay et al.'s kinetic-energy and Jacobian-norm regularisers of the flow."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfode
from tfode import regularization, solvers
from tfode.decoders import ODERNNDecoder
from tfode.layers import ODESolve, VectorField
from tfode.text import append_eos

SOLVERS = [solvers.RK4(steps_per_unit=20), solvers.Dopri5(rtol=1e-6, atol=1e-8)]


@pytest.mark.parametrize("solver", SOLVERS, ids=["rk4", "dopri5"])
def test_integrals_of_a_linear_field_match_closed_forms(solver):
    # dh/dt = A h with A = -I: h(t) = h0 e^{-t}, so ∫ mean(f²) dt = mean(h0²)(1 - e^{-2T}) / 2,
    # and ∂f/∂h = A everywhere, so ∫ mean((εᵀA)²) dt = T · mean(ε²).
    initial = tf.constant([[1.0, -2.0, 0.5], [0.3, 0.0, 4.0]])
    probe = tf.constant([[1.0, 2.0, -1.0], [0.5, -0.5, 3.0]])
    end = 1.5
    field = regularization.augmented_field(lambda time, state: -state, 3, probe)
    states, _ = solvers.odeint(
        field, regularization.with_integrals(initial), tf.constant([0.5, end]), solver
    )
    states, kinetic, jacobian = regularization.split_integrals(tf.transpose(states, [1, 0, 2]), 3)
    expected_kinetic = np.mean(initial.numpy() ** 2, axis=-1) * (1 - np.exp(-2 * end)) / 2
    np.testing.assert_allclose(kinetic.numpy(), expected_kinetic, rtol=1e-4)
    np.testing.assert_allclose(jacobian.numpy(), end * np.mean(probe.numpy() ** 2, axis=-1), rtol=1e-4)
    np.testing.assert_allclose(states[:, -1].numpy(), initial.numpy() * np.exp(-end), rtol=1e-4)


@pytest.mark.parametrize(
    "solver", ["rk4", {"name": "dopri5", "rtol": 1e-6, "atol": 1e-8}], ids=["rk4", "dopri5"]
)
def test_regularised_solve_adds_a_loss_in_training_only_and_keeps_states(solver):
    field = VectorField(16)
    plain = ODESolve(field, solver)
    regularised = ODESolve(field, solver, kinetic_energy=0.5, jacobian_norm=0.25, seed=3)
    initial = tf.random.normal([4, 8], seed=1)
    times = tf.constant([1.0, 2.0])
    regularised.build(initial.shape)
    expected = plain(initial, times)
    assert regularised(initial, times).shape == (4, 2, 8) and not regularised.losses  # inference
    states = regularised(initial, times, training=True)
    np.testing.assert_allclose(states.numpy(), expected.numpy(), atol=1e-4)
    assert len(regularised.losses) == 1
    penalty = 0.5 * regularised.last_kinetic_energy + 0.25 * regularised.last_jacobian_norm
    np.testing.assert_allclose(regularised.losses[0].numpy(), penalty.numpy(), rtol=1e-6)
    assert regularised.last_kinetic_energy.numpy() > 0 and regularised.last_jacobian_norm.numpy() > 0


def test_the_penalty_has_gradients_for_the_field_through_the_adjoint():
    field = VectorField(16)
    solve = ODESolve(field, "dopri5", kinetic_energy=1.0, jacobian_norm=1.0, seed=0)
    initial = tf.random.normal([4, 8], seed=2)
    solve.build(initial.shape)
    with tf.GradientTape() as tape:
        solve(initial, tf.constant([1.0]), training=True)
        penalty = tf.add_n(solve.losses)
    gradients = tape.gradient(penalty, field.trainable_variables)
    assert all(gradient is not None for gradient in gradients)
    assert sum(float(tf.reduce_sum(tf.abs(gradient))) for gradient in gradients) > 0


def test_model_logs_the_integrals_and_keeps_the_weights_in_its_config(tiny_text, tiny_tokens):
    model = tfode.Seq2SeqODE(
        tiny_text.vocabulary_size, units=16, embedding_dim=8, max_length=8, solver="dopri5",
        kinetic_energy=0.1, jacobian_norm=0.05,
    )
    model.build((None, None))
    model.compile(keras.optimizers.Adam(1e-3))
    targets = append_eos(tiny_tokens)
    history = model.fit(tiny_tokens, targets, validation_data=(tiny_tokens, targets), epochs=1, verbose=0)
    assert history.history["kinetic_energy"][0] > 0 and history.history["jacobian_norm"][0] > 0
    # Validation runs without the integrals: nothing is reported for it.
    assert history.history["val_kinetic_energy"][0] == 0.0
    copy = tfode.Seq2SeqODE.from_config(model.get_config())
    assert (copy.decoder.ode.kinetic_energy, copy.decoder.ode.jacobian_norm) == (0.1, 0.05)


def test_odernn_penalty_sums_each_intervals_integrals():
    # One Euler step per interval: the kinetic integral of interval k is mean(f(h_{k-1})²) · Δt,
    # h_{k-1} being the folded state the interval starts from.
    decoder = ODERNNDecoder(
        30, 6, vector_field={"hidden_units": 8}, solver=solvers.Euler(steps_per_unit=1),
        embedding_dim=4, time_span=0.5, kinetic_energy=0.3, jacobian_norm=0.0,
    )
    initial = tf.random.normal([3, 6], seed=4)
    inputs = tf.constant([[1, 5, 7, 9], [1, 4, 4, 0], [1, 8, 3, 2]])
    decoder.build(initial.shape)
    logits = decoder(initial, inputs, training=True)
    state, expected = initial, np.zeros(3)
    for position in range(inputs.shape[1]):
        derivative = decoder.ode.vector_field(tf.constant(position * 0.5), state)
        expected += 0.5 * np.mean(derivative.numpy() ** 2, axis=-1)
        state = decoder.fold(decoder.embedding(inputs[:, position]), state + 0.5 * derivative)
    np.testing.assert_allclose(decoder.ode.last_kinetic_energy.numpy(), expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(tf.add_n(decoder.losses)), 0.3 * expected.mean(), rtol=1e-5)
    # The regularised loop computes the same logits as the plain one.
    np.testing.assert_allclose(logits, decoder(initial, inputs, training=False), atol=1e-5)


def test_odernn_trains_with_both_regularisers(tiny_text, tiny_tokens):
    model = tfode.Seq2SeqODE(
        tiny_text.vocabulary_size, decoder="odernn", units=16, embedding_dim=8, max_length=8,
        solver="euler", kinetic_energy=0.1, jacobian_norm=0.05,
    )
    model.build((None, None))
    model.compile(keras.optimizers.Adam(1e-3))
    history = model.fit(tiny_tokens, append_eos(tiny_tokens), epochs=1, verbose=0)
    assert history.history["kinetic_energy"][0] > 0 and history.history["jacobian_norm"][0] > 0
    assert np.isfinite(history.history["loss"][0])


def test_regularisers_are_refused_where_there_is_no_flow_to_regularise():
    with pytest.raises(ValueError, match="discrete 'gru'"):
        tfode.Seq2SeqODE(50, decoder="gru", kinetic_energy=0.1)
    with pytest.raises(ValueError, match=">= 0"):
        ODESolve(VectorField(8), "rk4", jacobian_norm=-1.0)
