"""The learning-rate schedules a run can ask for."""

import math

import keras
import numpy as np
import pytest

from training import callbacks, presets, train


def test_cosine_schedule_warms_up_then_decays_to_its_floor():
    schedule = callbacks.CosineSchedule(1e-3, warmup_steps=10, total_steps=110, final_fraction=0.02)
    assert schedule.rate(0) == pytest.approx(1e-3 * 0.1 * (0.02 + 0.98 * 0.5 * (1 + math.cos(0))))
    assert schedule.rate(9) == pytest.approx(1e-3 * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * 9 / 110))))
    assert schedule.rate(55) == pytest.approx(1e-3 * (0.02 + 0.98 * 0.5))
    assert schedule.rate(110) == pytest.approx(2e-5)
    assert schedule.rate(500) == pytest.approx(2e-5)
    rates = [schedule.rate(step) for step in range(10, 111)]
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))
    with pytest.raises(ValueError, match="exactly one"):
        callbacks.CosineSchedule(1e-3)
    with pytest.raises(ValueError, match="exactly one"):
        callbacks.CosineSchedule(1e-3, total_steps=5, seconds=5.0)


def test_cosine_schedule_sets_the_optimizer_rate_during_fit():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1.0), loss="mse")
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(float(model.optimizer.learning_rate))
    )
    schedule = callbacks.CosineSchedule(0.1, warmup_steps=2, total_steps=8)
    x = np.zeros((8, 2), "float32")
    model.fit(x, x[:, :1], batch_size=1, epochs=1, callbacks=[schedule, record], verbose=0)
    assert seen == pytest.approx([schedule.rate(step) for step in range(8)])


def test_a_run_picks_its_schedule_from_the_config():
    # Over a time budget: a callback, since the steps that fit are not known in advance.
    config = presets.resolve("tiny", {"lr_schedule": "cosine", "time_budget": 60.0, "warmup_steps": 3})
    schedule = train.learning_rate_schedule(config, steps_per_epoch=10)
    assert isinstance(schedule, callbacks.CosineSchedule)
    assert schedule.seconds == 60.0 and schedule.warmup_steps == 3
    assert train.learning_rate(config, 10) == config["learning_rate"]
    # Over known epochs: Keras' own schedule in the optimizer, warm-up then cosine to the floor.
    config = presets.resolve("tiny", {"lr_schedule": "cosine", "warmup_steps": 4})
    assert train.learning_rate_schedule(config, steps_per_epoch=10) is None
    rate = train.learning_rate(config, steps_per_epoch=10)
    assert isinstance(rate, keras.optimizers.schedules.CosineDecay)
    base, total = config["learning_rate"], 10 * config["epochs"]
    assert float(rate(0)) == pytest.approx(0.0) and float(rate(2)) == pytest.approx(base / 2)
    assert float(rate(4)) == pytest.approx(base)
    assert float(rate(total)) == pytest.approx(callbacks.COSINE_FLOOR * base)
    rates = [float(rate(step)) for step in range(4, total + 1)]
    assert all(later <= earlier + 1e-12 for earlier, later in zip(rates, rates[1:]))
    config = presets.resolve("tiny", {})
    assert isinstance(train.learning_rate_schedule(config, 10), keras.callbacks.ReduceLROnPlateau)
    assert train.learning_rate(config, 10) == config["learning_rate"]


def test_sampling_ramp_raises_the_decoders_rate_during_fit(tiny_text, tiny_tokens):
    from tfode.tokens import append_eos

    ramp = callbacks.SamplingRamp(0.4, total_steps=8)
    assert [ramp.rate(step) for step in (0, 4, 8, 20)] == pytest.approx([0.0, 0.2, 0.4, 0.4])
    model = tfode_model(tiny_text.vocabulary_size)
    model.compile(keras.optimizers.Adam(1e-3))
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(float(model.decoder.sampling_rate.numpy()))
    )
    model.fit(tiny_tokens, append_eos(tiny_tokens), batch_size=1, epochs=1, callbacks=[ramp, record], verbose=0)
    assert seen == pytest.approx([ramp.rate(step) for step in range(8)])


def test_noise_fade_turns_the_encoders_input_noise_down_over_the_end_of_training(tiny_text, tiny_tokens):
    import tfode
    from tests.helpers import small_model
    from tfode.tokens import append_eos

    fade = callbacks.NoiseFade(0.5, total_steps=8)
    assert [fade.strength(step) for step in (0, 4, 6, 8, 20)] == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])
    with pytest.raises(ValueError, match="share"):
        callbacks.NoiseFade(0.0, total_steps=8)
    noise = tfode.TokenNoise(blank=0.2, fades=True, seed=0)
    model = small_model(tiny_text.vocabulary_size, "gru", units=16, embedding_dim=8,
                        encoder=dict(input_noise=noise))
    model.compile(keras.optimizers.Adam(1e-3))
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(float(noise.strength.numpy()))
    )
    model.fit(tiny_tokens, append_eos(tiny_tokens), batch_size=1, epochs=1, callbacks=[fade, record], verbose=0)
    assert seen == pytest.approx([fade.strength(step) for step in range(8)])


def test_a_run_fades_its_input_noise_only_when_asked():
    from training import builder

    config = presets.resolve("tiny", {"input_blank": 0.1, "input_noise_fade": 0.3})
    assert builder.build_model(config, 50).encoder.input_noise.fades
    with pytest.raises(ValueError, match="--input-noise-fade does not apply"):
        builder.check_flags(presets.resolve("tiny", {"input_noise_fade": 0.3}), {"input_noise_fade"})
    builder.check_flags(presets.resolve("tiny", {"input_noise_fade": 0.0}), {"input_noise_fade"})  # off: fine
    # A fade that comes with a preset has nothing to do once its noise is turned off.
    config = presets.resolve("tiny", {"input_noise_fade": 0.3, "input_shuffle": 2})
    builder.check_flags(config, {"input_shuffle"})
    assert not builder.build_model(config, 50).encoder.input_noise.fades
    assert builder.build_model(presets.resolve("tiny", {"input_noise_fade": 0.3}), 50).encoder.input_noise is None
    with pytest.raises(ValueError, match="--input-noise-fade must be"):
        builder.check_flags(presets.resolve("tiny", {"input_blank": 0.1, "input_noise_fade": 1.5}))


def tfode_model(vocab_size):
    from tests.helpers import small_model

    return small_model(vocab_size, "gru", units=16, embedding_dim=8, scheduled_sampling=0.4)
