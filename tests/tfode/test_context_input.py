"""`context_input`: the autoregressive decoders' GRU cell reads h(0) at every token."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfode
from tfode import export
from tfode.text import EOS_ID

AUTOREGRESSIVE = ["odernn", "gru"]
UNITS, EMBEDDING_DIM = 32, 16
SENTENCES = ["the cat sat on the mat .", "he has a red car ."]


def context_model(vocab_size, decoder, **overrides):
    keras.utils.set_random_seed(5)
    settings = dict(decoder=decoder, units=UNITS, embedding_dim=EMBEDDING_DIM, max_length=8,
                    solver={"name": "rk4", "steps_per_unit": 2}, context_input=True)
    settings.update(overrides)
    model = tfode.Seq2SeqODE(vocab_size, **settings)
    model.build((None, None))
    return model


def cell_kernel(model):
    decoder = model.decoder
    return decoder.cell.kernel if decoder.kind == "odernn" else decoder.rnn.cell.kernel


@pytest.mark.parametrize("decoder", AUTOREGRESSIVE)
def test_the_cell_reads_h0_at_every_token(tiny_text, tiny_tokens, decoder):
    model = context_model(tiny_text.vocabulary_size, decoder)
    plain = context_model(tiny_text.vocabulary_size, decoder, context_input=False)
    assert cell_kernel(model).shape[0] == EMBEDDING_DIM + UNITS
    assert cell_kernel(plain).shape[0] == EMBEDDING_DIM
    before = model(tiny_tokens).numpy()
    # Zero the kernel rows that read h(0): the logits change at every position.
    kernel = cell_kernel(model)
    kernel.assign(tf.concat([kernel[:EMBEDDING_DIM], tf.zeros_like(kernel[EMBEDDING_DIM:])], axis=0))
    after = model(tiny_tokens).numpy()
    assert (np.abs(before - after).max(axis=(0, 2)) > 1e-4).all()


@pytest.mark.parametrize("decoder", AUTOREGRESSIVE)
def test_free_running_search_agrees_with_teacher_forcing_on_its_own_output(tiny_text, tiny_tokens, decoder):
    model = context_model(tiny_text.vocabulary_size, decoder)
    decoded = model.reconstruct(tiny_tokens)
    ids = decoded.ids.numpy()
    # Teacher-force the decoded sentences (before their <eos>) from the same h(0).
    h0 = model.encode(tiny_tokens)[0]
    tokens = np.where(ids == EOS_ID, 0, ids)
    inputs = tfode.text.prepend_bos(tf.constant(tokens))
    forced = model.decoder(h0, inputs).numpy().argmax(-1)[:, : ids.shape[1]]
    for row, length in zip(range(len(ids)), decoded.lengths.numpy()):
        np.testing.assert_array_equal(forced[row, : length + 1], ids[row, : length + 1])
    beam = model.reconstruct(tiny_tokens, beam_width=3)
    assert (beam.scores.numpy().sum(-1) >= decoded.scores.numpy().sum(-1) - 1e-4).all()


@pytest.mark.parametrize("decoder", AUTOREGRESSIVE)
def test_scheduled_sampling_at_rate_one_is_greedy_decoding(tiny_text, tiny_tokens, decoder):
    model = context_model(tiny_text.vocabulary_size, decoder, scheduled_sampling=1.0)
    training_ids = model(tiny_tokens, training=True).numpy().argmax(-1)
    decoded = model.reconstruct(tiny_tokens)
    for row, length in enumerate(decoded.lengths.numpy()):
        np.testing.assert_array_equal(training_ids[row, : length + 1], decoded.ids.numpy()[row, : length + 1])


def test_trajectory_at_token_times_equals_call(tiny_text, tiny_tokens):
    model = context_model(tiny_text.vocabulary_size, "odernn")
    probabilities = tf.nn.softmax(model(tiny_tokens)).numpy()
    times = np.arange(1, probabilities.shape[1] + 1, dtype="float32")
    _, at_times = model.trajectory(tiny_tokens, times)
    np.testing.assert_allclose(at_times.numpy(), probabilities, atol=1e-5)


def test_round_trips_through_keras_file_and_saved_model(tiny_text, tiny_tokens, tmp_path):
    model = context_model(tiny_text.vocabulary_size, "odernn", solver="euler", kinetic_energy=0.1)
    model.compile(keras.optimizers.Adam(3e-3))
    history = model.fit(tiny_tokens, tfode.text.append_eos(tiny_tokens), epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    path = str(tmp_path / "context.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.settings["context_input"] is True
    np.testing.assert_allclose(loaded(tiny_tokens).numpy(), model(tiny_tokens).numpy(), atol=1e-5)
    exported = tf.saved_model.load(export.export_saved_model(model, tiny_text, str(tmp_path / "export"), "m"))
    sentences = tf.constant(SENTENCES)
    served = exported.signatures["decode"](sentences=sentences)["token_ids"].numpy()
    expected = model.reconstruct(tiny_text.encode(SENTENCES).ids).ids.numpy()
    np.testing.assert_array_equal(served, expected)


def test_refused_for_the_trajectory_decoder(tiny_text):
    with pytest.raises(ValueError, match="context_input"):
        context_model(tiny_text.vocabulary_size, "trajectory")
