"""Scheduled sampling: in training, the autoregressive decoders may read their own predictions."""

import keras
import numpy as np
import pytest

import tfode
from tfode.text import append_eos

AUTOREGRESSIVE = ["odernn", "gru"]


def sampling_model(vocab_size, decoder, rate, **overrides):
    settings = dict(decoder=decoder, units=32, embedding_dim=16, max_length=8,
                    solver={"name": "rk4", "steps_per_unit": 2}, scheduled_sampling=rate)
    settings.update(overrides)
    model = tfode.Seq2SeqODE(vocab_size, **settings)
    model.build((None, None))
    return model


@pytest.mark.parametrize("decoder", AUTOREGRESSIVE)
def test_sampling_every_input_in_training_is_greedy_decoding(tiny_text, tiny_tokens, decoder):
    keras.utils.set_random_seed(3)
    model = sampling_model(tiny_text.vocabulary_size, decoder, 1.0)
    training_ids = model(tiny_tokens, training=True).numpy().argmax(-1)
    decoded = model.reconstruct(tiny_tokens).ids.numpy()
    compared = 0
    for row, decoded_row in zip(training_ids, decoded):
        # Greedy decoding masks what follows its first <eos>; up to there the two must agree.
        ends = np.flatnonzero(decoded_row == tfode.text.EOS_ID)
        width = min(len(row), ends[0] + 1 if len(ends) else len(decoded_row))
        np.testing.assert_array_equal(row[:width], decoded_row[:width])
        compared += width
    assert compared >= 2 * len(tiny_tokens)
    # With the rate at 0 the same training call is teacher forcing again.
    teacher_forced = model(tiny_tokens, training=False).numpy()
    assert np.abs(model(tiny_tokens, training=True).numpy() - teacher_forced).max() > 1e-3
    model.decoder.sampling_rate.assign(0.0)
    np.testing.assert_allclose(model(tiny_tokens, training=True).numpy(), teacher_forced, atol=1e-5)


@pytest.mark.parametrize("decoder", AUTOREGRESSIVE)
def test_sampling_with_dropout_and_regularisers_trains_and_saves(tiny_text, tiny_tokens, tmp_path, decoder):
    extra = dict(kinetic_energy=0.1, solver="euler") if decoder == "odernn" else {}
    model = sampling_model(tiny_text.vocabulary_size, decoder, 0.5, dropout=0.2, **extra)
    model.compile(keras.optimizers.Adam(3e-3))
    targets = append_eos(tiny_tokens)
    before = [weight.numpy().copy() for weight in model.trainable_weights]
    history = model.fit(tiny_tokens, targets, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(changed), "every trainable weight gets a gradient through the sampled loop"
    path = str(tmp_path / "sampled.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.settings["scheduled_sampling"] == 0.5
    assert float(loaded.decoder.sampling_rate.numpy()) == 0.5
    np.testing.assert_allclose(loaded(tiny_tokens).numpy(), model(tiny_tokens).numpy(), atol=1e-5)


def test_sampling_is_refused_where_it_cannot_apply(tiny_text):
    with pytest.raises(ValueError, match="trajectory"):
        sampling_model(tiny_text.vocabulary_size, "trajectory", 0.2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sampling_model(tiny_text.vocabulary_size, "gru", 1.5)
    # Without it no variable is made, so models saved before the option load unchanged.
    assert sampling_model(tiny_text.vocabulary_size, "odernn", 0.0).decoder.sampling_rate is None
