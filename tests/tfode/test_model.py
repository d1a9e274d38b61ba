"""The model composed from its parts: masking, learning, serialisation, trajectories, seeds."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfode
from tests.helpers import DECODERS, fit_until_reconstructed, small_model
from tfode import interpolation
from tfode.tokens import EOS_ID, UNK_ID, append_eos, prepend_bos


def same_config(first, second):
    return json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_padding_changes_no_output(tiny_text, tiny_tokens):
    padded = np.pad(tiny_tokens, [[0, 0], [0, 5]])
    model = small_model(tiny_text.vocabulary_size, encoder=dict(bidirectional=True))
    np.testing.assert_allclose(model.encode(tiny_tokens)[0].numpy(), model.encode(padded)[0].numpy(), atol=1e-5)
    real = append_eos(tiny_tokens).numpy() != 0
    for decoder in DECODERS:
        model = small_model(tiny_text.vocabulary_size, decoder)
        logits, logits_padded = model(tiny_tokens).numpy(), model(padded).numpy()
        np.testing.assert_allclose(logits[real], logits_padded[:, : logits.shape[1]][real], atol=1e-4)


# Every option a preset or benchmark uses, in the configurations they come in: each must train
# (finite loss, every trainable weight moved), log its statistics, and come back from a .keras
# file with the same outputs, config and loss.
CONFIGURATIONS = {
    "trajectory": ("trajectory", {}),
    "trajectory-gated-midpoint-regularised": ("trajectory", dict(
        vector_field=tfode.GatedVectorField(dtype="float32"), solver=tfode.RK4(1), midpoint_weight=0.5,
        kinetic_energy=0.1, jacobian_norm=0.05, dropout=0.1, augment_dim=3)),
    "trajectory-euler-variational": ("trajectory", dict(solver=tfode.Euler(4), encoder=dict(variational=True, kl_weight=0.1))),
    "odernn": ("odernn", {}),
    "odernn-preset": ("odernn", dict(
        vector_field=tfode.GatedVectorField(dtype="float32"), solver=tfode.Euler(1), kinetic_energy=0.1,
        jacobian_norm=0.05, scheduled_sampling=0.5, word_dropout=0.2, dropout=0.1, tied_embeddings=True,
        encoder=dict(bidirectional=True, dropout=0.1))),
    "gru": ("gru", {}),
    "gru-sampled-tied": ("gru", dict(scheduled_sampling=0.5, dropout=0.2, tied_embeddings=True)),
    "gru-denoising-wae": ("gru", dict(encoder=dict(input_noise=tfode.TokenNoise(delete=0.3, blank=0.1, shuffle_distance=2, fades=True,
                                                                                  blank_token="mask"),
                                                   mmd_weight=1.0))),
    "trajectory-path-energy": ("trajectory", dict(path_energy=tfode.PathEnergy(0.5, rows=4, seed=0, words_weight=0.2))),
    "odernn-variational-free-bits": ("odernn", dict(encoder=dict(variational=True, kl_weight=0.5, free_bits=0.1))),
}


# One plain configuration per decoder in the fast tier; the combinations in the slow one.
FAST_CONFIGURATIONS = ("trajectory", "odernn", "gru", "trajectory-path-energy")


@pytest.mark.parametrize("name", [
    name if name in FAST_CONFIGURATIONS else pytest.param(name, marks=pytest.mark.slow)
    for name in sorted(CONFIGURATIONS)
])
def test_fit_logs_and_round_trips(tmp_path, tiny_text, tiny_tokens, name):
    decoder, options = CONFIGURATIONS[name]
    keras.utils.set_random_seed(5)
    options = dict(options)
    model = small_model(tiny_text.vocabulary_size, decoder, **options)
    # Eagerly: the same code in a fraction of the tracing time (`fit`'s compiled step is
    # exercised by the training tests).
    model.compile(keras.optimizers.Adam(3e-3), loss=tfode.MaskedCrossEntropy(label_smoothing=0.1),
                  run_eagerly=True)
    targets = append_eos(tiny_tokens)
    before = [weight.numpy().copy() for weight in model.trainable_weights]
    history = model.fit(tiny_tokens, targets, validation_data=(tiny_tokens, targets), epochs=3,
                        batch_size=4, verbose=0).history
    assert np.isfinite(history["loss"]).all() and history["loss"][-1] < history["loss"][0]
    moved = [not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(moved), [w.path for w, m in zip(model.trainable_weights, moved) if not m]
    assert ("nfe" in history) == (decoder != "gru")
    if model.is_ode:
        assert history["nfe"][-1] > 0 and history["val_nfe"][-1] > 0
    if model.decoder.regularized:
        assert history["kinetic_energy"][-1] > 0 and history["jacobian_norm"][-1] > 0
    assert ("path_change" in history) == (model.path_energy is not None)
    if model.path_energy is not None:
        assert history["path_change"][-1] > 0
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert same_config(loaded.get_config(), model.get_config())
    assert isinstance(loaded.loss, tfode.MaskedCrossEntropy) and loaded.loss.label_smoothing == 0.1
    np.testing.assert_array_equal(loaded(tiny_tokens).numpy(), model(tiny_tokens).numpy())
    np.testing.assert_array_equal(loaded.reconstruct(tiny_tokens).ids.numpy(), model.reconstruct(tiny_tokens).ids.numpy())
    # The optimizer's state came back too, so training goes on where it was.
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())


@pytest.mark.slow
@pytest.mark.parametrize("decoder", DECODERS)
def test_each_decoder_learns_to_reconstruct_a_tiny_corpus(tiny_text, tiny_tokens, decoder):
    keras.utils.set_random_seed(1)
    model = small_model(tiny_text.vocabulary_size, decoder)
    decoded = fit_until_reconstructed(model, tiny_tokens)
    np.testing.assert_array_equal(decoded.ids.numpy(), append_eos(tiny_tokens).numpy())
    assert tiny_text.decode(decoded.ids).numpy().astype(str)[2] == "i like your style ."


@pytest.mark.parametrize("decoder", DECODERS)
def test_trajectory_at_token_times_equals_call(tiny_text, tiny_tokens, decoder):
    model = small_model(tiny_text.vocabulary_size, decoder)
    probabilities = tf.nn.softmax(model(tiny_tokens)).numpy()
    steps = probabilities.shape[1]
    times = np.arange(1, steps + 1, dtype="float32")[::-1].copy()  # any order
    states, at_times = model.trajectory(tiny_tokens, times)
    np.testing.assert_allclose(at_times.numpy()[:, ::-1], probabilities, atol=1e-5)
    assert states.shape[:2] == (len(tiny_tokens), steps)
    _, between = model.trajectory(tiny_tokens, [0.5, 1.5, 2.25])
    np.testing.assert_allclose(between.numpy().sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("decoder", ["odernn", "trajectory"])
def test_states_between_tokens_in_a_graph_of_unknown_batch_size(tiny_text, tiny_tokens, decoder):
    # The ODE-RNN reaches a midpoint by a partial step alone (no whole grid step): the solve
    # must also build when the batch size is only known at run time, as in the exported signatures.
    model = small_model(tiny_text.vocabulary_size, decoder, solver=tfode.RK4(1))
    times = tf.constant([1.5, 2.0, 2.5])
    graph = tf.function(lambda tokens, at: model.trajectory(tokens, at),
                        input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.float32)])
    _, logits = graph(tf.constant(tiny_tokens, tf.int32), times)
    np.testing.assert_allclose(logits.numpy(), model.trajectory(tiny_tokens, times)[1].numpy(), atol=1e-5)


def test_trajectory_rejects_negative_and_non_finite_times(tiny_text, tiny_tokens):
    model = small_model(tiny_text.vocabulary_size, "trajectory")
    for times in ([-1.0, 1.0], [np.nan], [np.inf]):
        with pytest.raises(tf.errors.InvalidArgumentError):
            model.trajectory(tiny_tokens, times)


def test_beam_search_is_greedy_at_width_one_and_never_scores_worse(tiny_text, tiny_tokens):
    model = small_model(tiny_text.vocabulary_size, "odernn")
    greedy = model.reconstruct(tiny_tokens, beam_width=1)
    beam = model.reconstruct(tiny_tokens, beam_width=4)
    assert np.all(beam.scores.numpy().sum(-1) >= greedy.scores.numpy().sum(-1) - 1e-4)
    # Greedy: each token is the arg-max of the teacher-forced step on its own prefix.
    logits = model.decoder(model.encode(tiny_tokens)[0], prepend_bos(greedy.ids[:, :-1])).logits
    expected = tf.argmax(logits, -1, output_type=tf.int32).numpy()
    log_probs = tf.nn.log_softmax(logits).numpy()
    for row, (ids, length) in enumerate(zip(greedy.ids.numpy(), greedy.lengths.numpy())):
        np.testing.assert_array_equal(ids[: length + 1], expected[row, : length + 1])
        # Each score is its token's log-probability; nothing is scored after <eos>.
        steps = min(length + 1, len(ids))
        np.testing.assert_allclose(greedy.scores.numpy()[row, :steps],
                                   log_probs[row, np.arange(steps), ids[:steps]], atol=1e-4)
        assert not greedy.scores.numpy()[row, steps:].any()
    with pytest.raises(ValueError, match="non-autoregressive"):
        small_model(tiny_text.vocabulary_size, "trajectory").reconstruct(tiny_tokens, beam_width=3)


def test_decoded_rows_end_at_eos(tiny_text, tiny_tokens):
    decoded = small_model(tiny_text.vocabulary_size, "gru").reconstruct(tiny_tokens)
    for row, length in zip(decoded.ids.numpy(), decoded.lengths.numpy()):
        if length < len(row):
            assert row[length] == EOS_ID and not row[length + 1 :].any()


def test_interpolation_paths():
    start = tf.constant([[1.0, 0.0], [2.0, 2.0]])
    end = tf.constant([[0.0, 1.0], [2.0, 2.0]])
    for mode in interpolation.MODES:
        path = interpolation.interpolate(start, end, [0.0, 0.5, 1.0], mode).numpy()
        np.testing.assert_allclose(path[:, 0], start.numpy(), atol=1e-6)
        np.testing.assert_allclose(path[:, 2], end.numpy(), atol=1e-6)
    slerp_mid = interpolation.slerp(start, end, [0.5]).numpy()[0, 0]
    np.testing.assert_allclose(np.linalg.norm(slerp_mid), 1.0, atol=1e-6)  # on the circle
    with pytest.raises(ValueError):
        interpolation.interpolate(start, end, [0.5], "cubic")
    with pytest.raises(tf.errors.InvalidArgumentError):
        interpolation.interpolate(start, end, [0.5], tf.constant("cubic"))


def test_model_interpolate_shapes_and_endpoints(tiny_text, tiny_tokens):
    model = small_model(tiny_text.vocabulary_size, "odernn")
    path = model.interpolate(tiny_tokens[:2], tiny_tokens[2:4], [0.0, 0.5, 1.0], mode="slerp")
    assert path.ids.shape[:2] == (2, 3)
    np.testing.assert_array_equal(path.ids.numpy()[:, 0], model.reconstruct(tiny_tokens[:2]).ids.numpy())


def test_with_solver_keeps_the_weights_and_drops_training_only_terms(tiny_text, tiny_tokens):
    model = small_model(tiny_text.vocabulary_size, "trajectory", midpoint_weight=0.5, kinetic_energy=0.1,
                        path_energy=tfode.PathEnergy(1.0))
    fine = model.with_solver(tfode.RK4(steps_per_unit=16))
    assert fine.decoder.midpoint_weight == 0 and not fine.decoder.regularized and fine.path_energy is None
    assert fine.decoder.solver == tfode.RK4(steps_per_unit=16)
    tokens = tiny_tokens[:2, :4]
    np.testing.assert_allclose(fine(tokens).numpy(), model(tokens).numpy(), atol=5e-3)
    with pytest.raises(ValueError, match="no ODE solver"):
        small_model(tiny_text.vocabulary_size, "gru").with_solver(tfode.Dopri5())
    with pytest.raises(ValueError, match="fixed-grid"):
        small_model(tiny_text.vocabulary_size, "odernn", solver=tfode.Dopri5())(tokens, training=True)
    with pytest.raises(ValueError, match="inference only"):
        model.with_solver(tfode.BDF())(tokens, training=True)


@pytest.mark.slow
def test_bdf_agrees_with_a_fine_fixed_grid(tiny_text, tiny_tokens):
    model = small_model(tiny_text.vocabulary_size, "trajectory")
    tokens = tiny_tokens[:2, :3]
    stiff = model.with_solver(tfode.BDF(rtol=1e-3, atol=1e-5))
    fine = model.with_solver(tfode.RK4(steps_per_unit=16))
    np.testing.assert_allclose(stiff(tokens).numpy(), fine(tokens).numpy(), atol=5e-3)


def test_vector_fields_can_be_called_on_their_own():
    state = tf.random.normal([3, 8])
    for field in (tfode.VectorField(16, depth=2), tfode.GatedVectorField()):
        derivative = field(tf.constant(0.5), state)
        assert derivative.shape == (3, 8)
        assert not np.allclose(field(tf.constant(3.0), state).numpy(), derivative.numpy())  # time-conditioned


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["trajectory", "odernn"])
def test_mixed_precision_trains_with_a_float32_flow(tiny_text, tiny_tokens, decoder):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = small_model(tiny_text.vocabulary_size, decoder, vector_field=tfode.GatedVectorField(dtype="float32"),
                            tied_embeddings=True)  # as the gpu preset
        model.compile(keras.optimizers.Adam(1e-3))
        history = model.fit(tiny_tokens, append_eos(tiny_tokens), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert model.decoder.vector_field.compute_dtype == "float32"
        assert model.encoder.compute_dtype == "float16"
        states, probabilities = model.trajectory(tiny_tokens[:2], [0.5, 1.0])
        assert states.dtype == tf.float32 and probabilities.dtype == tf.float32
        assert model(tiny_tokens).dtype == tf.float32  # the tied readout's logits
        with pytest.raises(ValueError, match="float32"):
            tfode.TrajectoryDecoder(40, 8, vector_field=tfode.GatedVectorField())  # a float16 field
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("decoder", DECODERS)
def test_tied_readout_scores_against_the_encoder_embeddings(tmp_path, tiny_text, tiny_tokens, decoder):
    model = small_model(tiny_text.vocabulary_size, decoder, tied_embeddings=True)
    matrix = model.encoder.embedding.embeddings
    assert model.decoder.readout.embedding is model.encoder.embedding
    assert sum(variable is matrix for variable in model.weights) == 1
    untied = small_model(tiny_text.vocabulary_size, decoder)
    # No [units, vocab] kernel; a [units, embedding_dim] projection and its bias instead.
    assert model.count_params() == untied.count_params() - 32 * tiny_text.vocabulary_size + 32 * 16 + 16
    row = 7
    matrix.assign(tf.tensor_scatter_nd_update(matrix, [[row]], [tf.ones([16])]))
    states = tf.random.normal([2, 32])
    logits = model.decoder.readout(states).numpy()
    projected = model.decoder.readout.projection(states).numpy()
    np.testing.assert_allclose(logits[:, row], projected.sum(-1) + model.decoder.readout.bias.numpy()[row], rtol=1e-5)
    path = str(tmp_path / "tied.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.decoder.readout.embedding is loaded.encoder.embedding
    np.testing.assert_array_equal(model(tiny_tokens).numpy(), loaded(tiny_tokens).numpy())


def test_word_dropout_replaces_decoder_inputs_in_training_only(tiny_text, tiny_tokens):
    model = small_model(tiny_text.vocabulary_size, "gru", word_dropout=0.5)
    clean = prepend_bos(np.tile(tiny_tokens, [20, 1])).numpy()
    np.testing.assert_array_equal(model.decoder.drop_words(clean, training=False), clean)
    dropped = model.decoder.drop_words(tf.constant(clean), training=True).numpy()
    words = clean > EOS_ID
    changed = dropped != clean
    assert not changed[~words].any()  # padding and <bos> stay
    assert (dropped[changed] == UNK_ID).all()
    assert 0.4 < changed[words & (clean != UNK_ID)].mean() < 0.6


@pytest.mark.parametrize("decoder", DECODERS)
def test_dropout_acts_in_training_only(tiny_text, tiny_tokens, decoder):
    model = small_model(tiny_text.vocabulary_size, decoder, dropout=0.5, encoder=dict(dropout=0.5))
    tokens = np.tile(tiny_tokens, [4, 1])
    inference = model(tokens, training=False).numpy()
    np.testing.assert_array_equal(model(tokens, training=False).numpy(), inference)
    first, second = model(tokens, training=True).numpy(), model(tokens, training=True).numpy()
    assert np.abs(first - inference).max() > 1e-3
    assert np.abs(first - second).max() > 1e-3  # a fresh mask each call
    plain = small_model(tiny_text.vocabulary_size, decoder)
    for target, source in zip(plain.trainable_weights, model.trainable_weights):
        target.assign(source)
    np.testing.assert_allclose(plain(tokens, training=False).numpy(), inference, atol=1e-5)
    embedded = model.encoder.embedding(tokens)
    assert 0.4 < np.mean(model.encoder.embedding_dropout(embedded, training=True).numpy() == 0) < 0.6
    # Without dropout no layer is made, so models saved without it load unchanged.
    assert plain.encoder.embedding_dropout is None and plain.decoder.dropout_layer is None


def test_scheduled_sampling_at_rate_one_is_greedy_decoding_in_training(tiny_text, tiny_tokens):
    for decoder in ("odernn", "gru"):
        model = small_model(tiny_text.vocabulary_size, decoder, scheduled_sampling=1.0)
        training_ids = model(tiny_tokens, training=True).numpy().argmax(-1)
        decoded = model.reconstruct(tiny_tokens)
        for row, ids, length in zip(training_ids, decoded.ids.numpy(), decoded.lengths.numpy()):
            width = min(len(row), length + 1)
            np.testing.assert_array_equal(row[:width], ids[:width])
        teacher_forced = model(tiny_tokens, training=False).numpy()
        model.decoder.sampling_rate.assign(0.0)
        np.testing.assert_allclose(model(tiny_tokens, training=True).numpy(), teacher_forced, atol=1e-5)


def test_midpoint_term_is_minus_log_of_the_two_neighbours_mass(tiny_text):
    # One word and <eos>: the only midpoint is t = 1.5, so the random draw cannot matter.
    model = small_model(tiny_text.vocabulary_size, "trajectory", solver=tfode.RK4(1), midpoint_weight=0.7)
    tokens = tiny_text.encode(["the cat", "a dog", "the dog"]).ids.numpy()[:, :1]
    model(tokens, training=True)
    (term,) = model.losses
    _, logits = model.decoder.states_at(model.encode(tokens)[0], tf.constant([1.5]))
    probabilities = tf.nn.softmax(logits[:, 0]).numpy()
    targets = append_eos(tokens).numpy()
    mass = probabilities[np.arange(len(tokens)), targets[:, 0]] + probabilities[:, EOS_ID]
    np.testing.assert_allclose(float(term), 0.7 * -np.log(mass).mean(), rtol=1e-5)
    model(tokens, training=False)
    assert not model.losses


def test_odernn_penalty_sums_each_intervals_integrals():
    # One Euler step per interval: the kinetic integral of interval k is mean(f(h_{k-1})²) · Δt,
    # h_{k-1} being the folded state the interval starts from.
    decoder = tfode.ODERNNDecoder(30, 6, vector_field=tfode.VectorField(8, dtype="float32"),
                                  solver=tfode.Euler(steps_per_unit=1), embedding_dim=4, time_span=0.5,
                                  kinetic_energy=0.3)
    initial = tf.random.normal([3, 6], seed=4)
    inputs = tf.constant([[1, 5, 7, 9], [1, 4, 4, 0], [1, 8, 3, 2]])
    decoder.build(initial.shape)
    output = decoder(initial, inputs, training=True)
    state, expected = initial, np.zeros(3)
    for position in range(inputs.shape[1]):
        derivative = decoder.vector_field(tf.constant(position * 0.5), state)
        expected += 0.5 * np.mean(derivative.numpy() ** 2, axis=-1)
        state = decoder.cell.fold(decoder.embedding(inputs[:, position]), state + 0.5 * derivative)
    np.testing.assert_allclose(float(output.kinetic_energy), expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(tf.add_n(decoder.losses)), 0.3 * expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(output.logits, decoder(initial, inputs, training=False).logits, atol=1e-5)


@pytest.mark.parametrize("make, match", [
    (lambda: tfode.Seq2SeqODE(tfode.GRUEncoder(40, 16), tfode.GRUDecoder(40, 32)), "must agree"),
    (lambda: tfode.Seq2SeqODE(tfode.GRUEncoder(40, 16), tfode.GRUDecoder(41, 16)), "must agree"),
    (lambda: tfode.TrajectoryDecoder(40, 16, solver=tfode.Dopri5(), midpoint_weight=0.1), "fixed-grid"),
    (lambda: tfode.TrajectoryDecoder(40, 16, solver=tfode.RK4(1), time_span=0.5, midpoint_weight=0.1), "whole number"),
    (lambda: tfode.TrajectoryDecoder(40, 16, midpoint_weight=-1.0), ">= 0"),
    (lambda: tfode.TrajectoryDecoder(40, 16, kinetic_energy=-0.1), ">= 0"),
    (lambda: tfode.TrajectoryDecoder(40, 16, augment_dim=-1), ">= 0"),
    (lambda: tfode.ODERNNDecoder(40, 16, jacobian_norm=-1.0), ">= 0"),
    (lambda: tfode.GRUDecoder(40, 16, scheduled_sampling=1.5), r"\[0, 1\]"),
    (lambda: tfode.GRUDecoder(40, 16, word_dropout=1.0), r"\[0, 1\)"),
    (lambda: tfode.GRUDecoder(40, 16, dropout=1.0), r"\[0, 1\)"),
    (lambda: tfode.GRUDecoder(40, 16, time_span=0.0), "time_span"),
    (lambda: tfode.GRUEncoder(40, 16, dropout=-0.1), r"\[0, 1\)"),
    (lambda: tfode.GRUEncoder(3, 16), "vocab_size"),
    (lambda: tfode.VectorField(depth=0), "depth"),
    (lambda: tfode.RK4(steps_per_unit=0), "steps_per_unit"),
    (lambda: tfode.PathEnergy(0.0), "weight or words_weight must be > 0"),
    (lambda: tfode.PathEnergy(-1.0, words_weight=1.0), "weight must be >= 0"),
    (lambda: tfode.PathEnergy(1.0, words_weight=-1.0), "words_weight must be >= 0"),
    (lambda: tfode.PathEnergy(1.0, step=1.0), "step"),
    (lambda: tfode.PathEnergy(1.0, step=0.0), "step"),
    (lambda: tfode.PathEnergy(1.0, rows=1), "rows"),
    (lambda: tfode.PathEnergy(1.0, temperature=0.0), "temperature must be > 0"),
    (lambda: tfode.Dopri5(rtol=-1.0), "rtol"),
    (lambda: tfode.ODESolve(tfode.VectorField(), "midpoint"), "Unknown ODE solver"),
])
def test_each_object_refuses_bad_arguments_where_it_is_built(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_an_option_that_does_not_apply_is_not_a_parameter():
    with pytest.raises(TypeError, match="GRUEncoder"):
        tfode.Seq2SeqODE(tfode.GRUDecoder(40, 16), tfode.GRUDecoder(40, 16))
    for make in (lambda: tfode.GatedVectorField(hidden_units=64),
                 lambda: tfode.TrajectoryDecoder(40, 16, scheduled_sampling=0.5),
                 lambda: tfode.TrajectoryDecoder(40, 16, word_dropout=0.5),
                 lambda: tfode.GRUDecoder(40, 16, kinetic_energy=0.1),
                 lambda: tfode.ODERNNDecoder(40, 16, midpoint_weight=0.1)):
        with pytest.raises((TypeError, ValueError), match="keyword argument"):
            make()


def seeded_draws(seed):
    keras.utils.set_random_seed(seed)
    model = small_model(40, "odernn", dropout=0.5, scheduled_sampling=0.5, word_dropout=0.3,
                        encoder=dict(dropout=0.5, variational=True))
    tokens = np.random.default_rng(0).integers(4, 40, size=(6, 5)).astype("int32")
    return [w.numpy() for w in model.weights] + [model(tokens, training=True).numpy()]


def test_the_global_seed_reaches_every_random_stream():
    first, again, other = seeded_draws(3), seeded_draws(3), seeded_draws(4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[-1], other[-1])  # weights, masks, samples all differ



def test_token_noise_deletes_blanks_and_shuffles_in_training_only():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 10, size=400)
    tokens = np.zeros([400, 10], "int32")
    for row, length in zip(tokens, lengths):
        row[:length] = rng.permutation(np.arange(10, 30))[:length]
    words = tokens != 0
    noise = tfode.TokenNoise(delete=0.3, seed=1)
    np.testing.assert_array_equal(noise(tokens, training=False), tokens)
    deleted = noise(tokens, training=True).numpy()
    kept = (deleted != 0).sum(1)
    assert 0.6 < kept.sum() / lengths.sum() < 0.8 and (kept >= 1).all()
    for row, original in zip(deleted, tokens):  # the kept words, in order, then padding only
        survivors = row[row != 0]
        assert list(survivors) == [t for t in original if t in set(survivors)]
        assert not row[len(survivors):].any()
    assert (deleted[:, 0] == tokens[:, 0]).all()  # the first word stays
    blanked = tfode.TokenNoise(blank=0.5, seed=2)(tokens, training=True).numpy()
    assert 0.4 < (blanked[words] == UNK_ID).mean() < 0.6 and not blanked[~words].any()
    shuffled = tfode.TokenNoise(shuffle_distance=2, seed=3)(tokens, training=True).numpy()
    assert (shuffled != tokens).any()
    for row, original, length in zip(shuffled, tokens, lengths):
        assert sorted(row[:length]) == sorted(original[:length]) and not row[length:].any()
        for position, token in enumerate(row[:length]):  # no word moves more than 2 places
            assert abs(position - list(original).index(token)) <= 2
    with pytest.raises(ValueError, match="delete"):
        tfode.TokenNoise(delete=1.0)


def test_masked_blanks_are_a_vector_of_the_encoders_own_and_a_real_unk_stays_unk():
    from tfode.tokens import BLANK_ID

    rng = np.random.default_rng(0)
    tokens = rng.integers(10, 30, size=[400, 10]).astype("int32")
    tokens[:, 7:] = 0
    tokens[:, 1] = UNK_ID  # a real unknown word in every sentence
    noise = tfode.TokenNoise(blank=0.5, blank_token="mask", seed=2)
    blanked = noise(tokens, training=True).numpy()
    words = tokens != 0
    assert 0.4 < (blanked[words] == BLANK_ID).mean() < 0.6 and not blanked[~words].any()
    kept = blanked != BLANK_ID
    np.testing.assert_array_equal(blanked[kept], tokens[kept])  # nothing else changes
    restored = tfode.TokenNoise.from_config(noise.get_config())
    assert restored.blank_token == "mask" and restored.masks
    legacy = {key: value for key, value in noise.get_config().items() if key != "blank_token"}
    assert tfode.TokenNoise.from_config(legacy).blank_token == "unk"  # configs saved before the option
    with pytest.raises(ValueError, match="blank_token"):
        tfode.TokenNoise(blank=0.1, blank_token="pad")

    encoder = tfode.GRUEncoder(40, units=8, embedding_dim=6, input_noise=noise, seed=0)
    assert tfode.GRUEncoder(40, units=8, input_noise=tfode.TokenNoise(blank=0.1)).blank_embedding is None
    sentence = np.array([[12, 13, 14, 0]], "int32")
    as_blank = encoder.summarise(np.where(sentence == 13, BLANK_ID, sentence).astype("int32"))
    as_unk = encoder.summarise(np.where(sentence == 13, UNK_ID, sentence).astype("int32"))
    assert not np.allclose(as_blank, as_unk)  # a blank is not read as <unk>
    np.testing.assert_allclose(encoder.summarise(sentence), encoder(sentence)[0], atol=1e-6)
    with tf.GradientTape() as tape:
        energy = tf.reduce_sum(encoder(tokens, training=True)[0] ** 2)
    gradient = tape.gradient(energy, encoder.blank_embedding)
    assert gradient is not None and float(tf.norm(gradient)) > 0  # the vector learns in training
    with tf.GradientTape() as tape:
        energy = tf.reduce_sum(encoder(tokens, training=False)[0] ** 2)
    unused = tape.gradient(energy, encoder.blank_embedding)
    assert unused is None or not np.any(unused)  # no blanks at inference


def test_a_fading_noise_scales_deletion_and_blanking_by_its_strength():
    rng = np.random.default_rng(0)
    tokens = rng.integers(10, 30, size=[400, 10]).astype("int32")
    noise = tfode.TokenNoise(delete=0.3, blank=0.5, fades=True, seed=4)
    assert float(noise.strength.numpy()) == 1.0 and not noise.strength.trainable
    corrupted = noise(tokens, training=True).numpy()
    assert (corrupted == UNK_ID).mean() > 0.25 and (corrupted == 0).mean() > 0.2
    noise.strength.assign(0.5)
    half = noise(tokens, training=True).numpy()
    assert 0.12 < (half == 0).mean() < 0.15  # deletion at 0.15, the first word kept
    noise.strength.assign(0.0)
    np.testing.assert_array_equal(noise(tokens, training=True), tokens)
    restored = tfode.TokenNoise.from_config(noise.get_config())
    assert restored.fades and restored.strength is not None
    assert tfode.TokenNoise(blank=0.1).strength is None  # no variable unless it fades
    with pytest.raises(ValueError, match="fades"):
        tfode.TokenNoise(shuffle_distance=2, fades=True)


def test_the_latent_priors_penalties():
    keras.utils.set_random_seed(0)
    encoder = tfode.GRUEncoder(40, 8, embedding_dim=4, variational=True, free_bits=0.5, kl_weight=1.0)
    encoder.build((None, None))
    mean = tf.zeros([16, 8])
    # At the prior every dimension's KL is 0, so free bits count each as 0.5 nats.
    assert float(encoder.kl_divergence(mean, tf.zeros([16, 8]))) == pytest.approx(8 * 0.5)
    far = encoder.kl_divergence(tf.fill([16, 8], 3.0), tf.zeros([16, 8]))
    assert float(far) == pytest.approx(8 * 4.5)  # 0.5 · 3² per dimension, above the floor
    with pytest.raises(ValueError, match="variational"):
        tfode.GRUEncoder(40, 8, free_bits=0.5)
    wae = tfode.GRUEncoder(40, 8, mmd_weight=1.0, seed=0)
    near = np.mean([float(wae.prior_discrepancy(tf.random.normal([64, 8], seed=i))) for i in range(5)])
    shifted = float(wae.prior_discrepancy(tf.random.normal([64, 8]) + 2.0))
    assert abs(near) < 0.05 < shifted
    tokens = np.random.default_rng(0).integers(4, 40, size=(6, 5)).astype("int32")
    wae.build((None, None))
    wae(tokens, training=True)
    assert len(wae.losses) == 1
