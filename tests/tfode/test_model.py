"""The layers and the seq2seq model: masking, learning, serialisation, trajectories."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfode
from tfode import interpolation
from tfode.text import EOS_ID, append_eos

DECODERS = ["trajectory", "odernn", "gru"]


def small_model(vocab_size, decoder, **overrides):
    settings = dict(
        decoder=decoder, units=32, embedding_dim=16, max_length=8, solver={"name": "rk4", "steps_per_unit": 2}
    )
    settings.update(overrides)
    model = tfode.Seq2SeqODE(vocab_size, **settings)
    model.build((None, None))
    return model


def test_padding_changes_no_output(tiny_text, tiny_tokens):
    model = small_model(tiny_text.vocabulary_size, "trajectory", bidirectional=True)
    padded = np.pad(tiny_tokens, [[0, 0], [0, 5]])
    h0, _, _ = model.encode(tiny_tokens)
    h0_padded, _, _ = model.encode(padded)
    np.testing.assert_allclose(h0.numpy(), h0_padded.numpy(), atol=1e-5)
    for decoder in DECODERS:
        model = small_model(tiny_text.vocabulary_size, decoder)
        logits = model(tiny_tokens).numpy()
        logits_padded = model(padded).numpy()
        real = append_eos(tiny_tokens).numpy() != 0
        np.testing.assert_allclose(
            logits[real], logits_padded[:, : logits.shape[1]][real], atol=1e-4
        )


@pytest.mark.parametrize("decoder", DECODERS)
def test_each_decoder_learns_to_reconstruct_a_tiny_corpus(tiny_text, tiny_tokens, decoder):
    keras.utils.set_random_seed(1)
    model = small_model(tiny_text.vocabulary_size, decoder)
    model.compile(keras.optimizers.Adam(3e-3, clipnorm=1.0))
    targets = append_eos(tiny_tokens)
    for _ in range(12):  # at most 12 × 25 = 300 steps
        model.fit(tiny_tokens, targets, epochs=25, batch_size=8, verbose=0)
        decoded = model.reconstruct(tiny_tokens)
        if np.array_equal(decoded.ids.numpy(), targets.numpy()):
            break
    np.testing.assert_array_equal(decoded.ids.numpy(), targets.numpy())
    sentences = tiny_text.decode(decoded.ids).numpy().astype(str)
    assert sentences[2] == "i like your style ."


@pytest.mark.parametrize("decoder", DECODERS)
def test_trajectory_at_token_times_equals_call(tiny_text, tiny_tokens, decoder):
    model = small_model(tiny_text.vocabulary_size, decoder)
    probabilities = tf.nn.softmax(model(tiny_tokens)).numpy()
    steps = probabilities.shape[1]
    times = np.arange(1, steps + 1, dtype="float32")[::-1].copy()  # any order
    states, at_times = model.trajectory(tiny_tokens, times)
    np.testing.assert_allclose(at_times.numpy()[:, ::-1], probabilities, atol=1e-5)
    assert states.shape[:2] == (len(tiny_tokens), steps)
    # Fractional times give distributions too.
    _, between = model.trajectory(tiny_tokens, [0.5, 1.5, 2.25])
    np.testing.assert_allclose(between.numpy().sum(-1), 1.0, atol=1e-5)


def test_trajectory_rejects_negative_and_non_finite_times(tiny_text, tiny_tokens):
    model = small_model(tiny_text.vocabulary_size, "trajectory")
    for times in ([-1.0, 1.0], [np.nan], [np.inf]):
        with pytest.raises(tf.errors.InvalidArgumentError):
            model.trajectory(tiny_tokens, times)


@pytest.mark.parametrize("decoder", DECODERS)
def test_keras_file_round_trip_gives_identical_outputs(tmp_path, tiny_text, tiny_tokens, decoder):
    model = small_model(tiny_text.vocabulary_size, decoder, variational=True)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(model(tiny_tokens).numpy(), loaded(tiny_tokens).numpy())
    np.testing.assert_array_equal(
        model.reconstruct(tiny_tokens).ids.numpy(), loaded.reconstruct(tiny_tokens).ids.numpy()
    )
    assert loaded.get_config() == model.get_config()


def test_beam_search_is_greedy_at_width_one_and_never_scores_worse(tiny_text, tiny_tokens):
    model = small_model(tiny_text.vocabulary_size, "odernn")
    greedy = model.reconstruct(tiny_tokens, beam_width=1)
    beam = model.reconstruct(tiny_tokens, beam_width=4)
    assert np.all(beam.scores.numpy().sum(-1) >= greedy.scores.numpy().sum(-1) - 1e-4)
    # Greedy: each token is the arg-max of the teacher-forced step on its own prefix.
    logits = model.decoder(model.encode(tiny_tokens)[0], tfode.text.prepend_bos(greedy.ids[:, :-1]))
    expected = tf.argmax(logits, -1, output_type=tf.int32).numpy()
    ids = greedy.ids.numpy()
    for row in range(len(ids)):
        length = int(greedy.lengths[row]) + 1
        np.testing.assert_array_equal(ids[row, :length], expected[row, :length])
    with pytest.raises(ValueError, match="non-autoregressive"):
        small_model(tiny_text.vocabulary_size, "trajectory").reconstruct(tiny_tokens, beam_width=3)


def test_decoded_rows_end_at_eos(tiny_text, tiny_tokens):
    model = small_model(tiny_text.vocabulary_size, "gru")
    decoded = model.reconstruct(tiny_tokens)
    ids, lengths = decoded.ids.numpy(), decoded.lengths.numpy()
    for row, length in zip(ids, lengths):
        if length < ids.shape[1]:
            assert row[length] == EOS_ID
            assert not row[length + 1 :].any()


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


def test_bdf_is_inference_only_and_with_solver_keeps_weights(tiny_text, tiny_tokens):
    model = small_model(tiny_text.vocabulary_size, "trajectory")
    stiff = model.with_solver({"name": "bdf", "rtol": 1e-3, "atol": 1e-5})
    fine = model.with_solver({"name": "rk4", "steps_per_unit": 16})
    tokens = tiny_tokens[:2, :4]
    np.testing.assert_allclose(stiff(tokens).numpy(), fine(tokens).numpy(), atol=5e-3)
    with pytest.raises(ValueError, match="inference only"):
        stiff(tokens, training=True)


def test_nfe_is_reported_as_a_fit_metric(tiny_text, tiny_tokens):
    model = small_model(tiny_text.vocabulary_size, "trajectory", solver="dopri5")
    model.compile(keras.optimizers.Adam(1e-3))
    history = model.fit(tiny_tokens, append_eos(tiny_tokens), epochs=1, verbose=0)
    nfe = history.history["nfe"][0]
    assert nfe > 0 and nfe == float(model.decoder.last_nfe.numpy())


def test_vector_fields_can_be_called_on_their_own():
    from tfode.layers import GatedVectorField, VectorField

    state = tf.random.normal([3, 8])
    for field in (VectorField(16, depth=2), GatedVectorField()):
        derivative = field(tf.constant(0.5), state)
        assert derivative.shape == (3, 8)
        assert not np.allclose(field(tf.constant(3.0), state).numpy(), derivative.numpy())  # time-conditioned


@pytest.mark.parametrize("decoder", ["trajectory", "odernn"])
def test_mixed_precision_trains_with_a_float32_flow(tiny_text, tiny_tokens, decoder):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = small_model(tiny_text.vocabulary_size, decoder, vector_field={"type": "gated"},
                            tied_embeddings=True)  # as the gpu preset
        model.compile(keras.optimizers.Adam(1e-3))
        history = model.fit(tiny_tokens, append_eos(tiny_tokens), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert model.decoder.ode.compute_dtype == "float32"
        assert model.decoder.ode.vector_field.compute_dtype == "float32"
        assert model.encoder.compute_dtype == "float16"
        states, probabilities = model.trajectory(tiny_tokens[:2], [0.5, 1.0])
        assert states.dtype == tf.float32 and probabilities.dtype == tf.float32
        assert model(tiny_tokens).dtype == tf.float32  # the tied readout's logits
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
    # The logit of a token is its embedding row · the projected state.
    row = 7
    matrix.assign(tf.tensor_scatter_nd_update(matrix, [[row]], [tf.ones([16])]))
    states = tf.random.normal([2, 32])
    logits = model.decoder.readout(states).numpy()
    projected = model.decoder.readout.projection(states).numpy()
    np.testing.assert_allclose(
        logits[:, row], projected.sum(-1) + model.decoder.readout.bias.numpy()[row], rtol=1e-5
    )
    path = str(tmp_path / "tied.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.decoder.readout.embedding is loaded.encoder.embedding
    np.testing.assert_array_equal(model(tiny_tokens).numpy(), loaded(tiny_tokens).numpy())


def test_word_dropout_replaces_decoder_inputs_in_training_only(tiny_text, tiny_tokens):
    from tfode.text import UNK_ID, prepend_bos

    model = small_model(tiny_text.vocabulary_size, "gru", word_dropout=0.5)
    tokens = np.tile(tiny_tokens, [20, 1])
    clean = prepend_bos(tokens).numpy()
    np.testing.assert_array_equal(model.decoder_inputs(tokens, training=False).numpy(), clean)
    dropped = model.decoder_inputs(tokens, training=True).numpy()
    words = clean > EOS_ID
    changed = dropped != clean
    assert not changed[~words].any()  # padding and <bos> stay
    assert (dropped[changed] == UNK_ID).all()
    rate = changed[words & (clean != UNK_ID)].mean()
    assert 0.4 < rate < 0.6, rate
    with pytest.raises(ValueError, match="trajectory"):
        small_model(tiny_text.vocabulary_size, "trajectory", word_dropout=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        small_model(tiny_text.vocabulary_size, "gru", word_dropout=1.0)


@pytest.mark.parametrize("decoder", ["trajectory", "odernn", "gru"])
def test_dropout_acts_in_training_only(tiny_text, tiny_tokens, decoder):
    model = small_model(tiny_text.vocabulary_size, decoder, dropout=0.5)
    tokens = np.tile(tiny_tokens, [4, 1])
    inference = model(tokens, training=False).numpy()
    np.testing.assert_array_equal(model(tokens, training=False).numpy(), inference)
    first, second = model(tokens, training=True).numpy(), model(tokens, training=True).numpy()
    assert np.abs(first - inference).max() > 1e-3
    assert np.abs(first - second).max() > 1e-3  # a fresh mask each call
    # Inference matches a model without dropout holding the same trained weights.
    plain = small_model(tiny_text.vocabulary_size, decoder)
    for target, source in zip(plain.trainable_weights, model.trainable_weights):
        target.assign(source)
    np.testing.assert_allclose(plain(tokens, training=False).numpy(), inference, atol=1e-5)
    assert tfode.Seq2SeqODE.from_config(model.get_config()).settings["dropout"] == 0.5


def test_dropout_zeroes_the_encoders_embeddings_at_its_rate(tiny_text, tiny_tokens):
    model = small_model(tiny_text.vocabulary_size, "gru", dropout=0.3)
    embedded = model.encoder.embedding(np.tile(tiny_tokens, [50, 1]))
    dropped = model.encoder.embedding_dropout(embedded, training=True).numpy()
    assert 0.25 < np.mean(dropped == 0) < 0.35
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        small_model(tiny_text.vocabulary_size, "gru", dropout=1.0)
    # Without dropout no layer is made, so models saved before the option load unchanged.
    plain = small_model(tiny_text.vocabulary_size, "odernn")
    assert plain.encoder.embedding_dropout is None and plain.decoder.dropout_layer is None
