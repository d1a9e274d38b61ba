"""Finlay et al.'s kinetic-energy and Jacobian-norm regularisers of the flow."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import small_model
from tfode import regularization, solvers
from tfode.fields import VectorField
from tfode.ode import ODESolve
from tfode.tokens import prepend_bos

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


@pytest.mark.parametrize("solver", [solvers.RK4(2), solvers.Dopri5(rtol=1e-6, atol=1e-8)], ids=["rk4", "dopri5"])
def test_integrals_come_back_with_the_states_and_change_nothing_else(solver):
    solve = ODESolve(VectorField(16), solver)
    initial = tf.random.normal([4, 8], seed=1)
    times = tf.constant([1.0, 2.0])
    plain = solve(initial, times)
    assert plain.kinetic_energy is None and plain.jacobian_norm is None and int(plain.nfe) > 0
    kinetic_only = solve(initial, times, integrals=True)
    assert kinetic_only.jacobian_norm is None and kinetic_only.kinetic_energy.shape == (4,)
    probe = tf.random.normal([4, 8], seed=2)
    both = solve(initial, times, integrals=True, probe=probe)
    np.testing.assert_allclose(both.states.numpy(), plain.states.numpy(), atol=1e-4)
    np.testing.assert_allclose(both.kinetic_energy.numpy(), kinetic_only.kinetic_energy.numpy(), rtol=1e-4)
    assert (both.kinetic_energy.numpy() > 0).all() and (both.jacobian_norm.numpy() > 0).all()
    assert not solve.losses  # the layer keeps nothing: what it computed is in its result
    with pytest.raises(ValueError, match="integrals=True"):
        solve(initial, times, probe=probe)


def test_the_integrals_have_gradients_for_the_field_through_the_adjoint():
    field = VectorField(16)
    solve = ODESolve(field, solvers.Dopri5())
    initial = tf.random.normal([4, 8], seed=2)
    solve.build(initial.shape)
    with tf.GradientTape() as tape:
        solution = solve(initial, tf.constant([1.0]), integrals=True, probe=tf.ones_like(initial), training=True)
        penalty = tf.reduce_mean(solution.kinetic_energy + solution.jacobian_norm)
    gradients = tape.gradient(penalty, field.trainable_variables)
    assert all(gradient is not None for gradient in gradients)
    assert sum(float(tf.reduce_sum(tf.abs(gradient))) for gradient in gradients) > 0


@pytest.mark.parametrize("decoder", ["trajectory", "odernn"])
def test_the_decoders_add_the_weighted_penalty_in_training_only(tiny_text, tiny_tokens, decoder):
    model = small_model(tiny_text.vocabulary_size, decoder, solver=solvers.Euler(2), kinetic_energy=0.5)
    h0 = model.encode(tiny_tokens)[0]
    inputs = prepend_bos(tiny_tokens)
    output = model.decoder(h0, inputs, training=True)
    (penalty,) = model.decoder.losses
    np.testing.assert_allclose(float(penalty), 0.5 * float(output.kinetic_energy), rtol=1e-6)
    assert float(output.jacobian_norm) == 0.0  # no Jacobian weight: no probe, no integral
    model.decoder(h0, inputs, training=False)
    assert not model.decoder.losses
