"""Named configurations: the order settings are taken in, and that every preset builds."""

import pytest

import tfode
from training import presets


def test_preset_settings_for_the_chosen_decoder_come_between_the_preset_and_the_flags():
    odernn = presets.resolve("tatoeba-cpu", {"decoder": "odernn"})
    assert (odernn["solver"], odernn["kinetic_energy"]) == ("euler", 0.1)
    gru = presets.resolve("tatoeba-cpu", {"decoder": "gru", "solver": None})
    assert (gru["solver"], gru["kinetic_energy"]) == ("rk4", 0.0)
    flagged = presets.resolve("tatoeba-cpu", {"decoder": "odernn", "kinetic_energy": 0.0})
    assert (flagged["solver"], flagged["kinetic_energy"]) == ("euler", 0.0)
    assert "decoders" not in odernn
    trajectory = presets.resolve("tatoeba-cpu", {"decoder": "trajectory"})
    assert (trajectory["midpoint_weight"], trajectory["scheduled_sampling"]) == (0.1, 0.0)
    assert presets.resolve("tatoeba-cpu", {"decoder": "trajectory", "midpoint_weight": 0})["midpoint_weight"] == 0
    assert presets.resolve("tatoeba-cpu", {"decoder": "odernn"})["label_smoothing"] == 0.0
    assert presets.resolve("tatoeba-cpu", {"label_smoothing": 0.1})["label_smoothing"] == 0.1


@pytest.mark.parametrize("preset", sorted(presets.PRESETS))
@pytest.mark.parametrize("decoder", ["trajectory", "odernn", "gru"])
def test_every_preset_makes_a_model_for_every_decoder(preset, decoder):
    config = presets.resolve(preset, {"decoder": decoder})
    model = tfode.Seq2SeqODE(**presets.model_settings(config, vocab_size=40))
    assert model.settings["decoder"] == decoder


def test_unknown_presets_and_settings_are_refused():
    with pytest.raises(ValueError, match="Unknown preset"):
        presets.resolve("fast", {})
    with pytest.raises(ValueError, match="Unknown settings"):
        presets.resolve("tiny", {"unit": 3})
