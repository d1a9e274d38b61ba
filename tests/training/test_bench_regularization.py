"""bench_regularization: every setting it trains is a model the preset can build."""

import pytest

import tfode
from training import bench_regularization, presets


@pytest.mark.parametrize("setting", bench_regularization.SETTINGS)
def test_every_setting_builds_the_dopri5_trajectory_model(setting):
    args = bench_regularization.parser().parse_args(["--settings", setting])
    config = bench_regularization.run_config(setting, args)
    model = tfode.Seq2SeqODE(**presets.model_settings(config, vocab_size=40))
    assert (model.settings["decoder"], model.settings["solver"]["name"]) == ("trajectory", "dopri5")
    # The settings docs/regularization.md was measured with, wherever the preset has moved since.
    assert (config["batch_size"], config["midpoint_weight"]) == (128, 0.0)
    expected = {"none": (0, 0), "kinetic": (0.05, 0), "jacobian": (0, 0.05), "both": (0.05, 0.05)}
    assert (config["kinetic_energy"], config["jacobian_norm"]) == expected[setting]
