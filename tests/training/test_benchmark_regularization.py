"""training.benchmarks.regularization: every setting it trains is a dopri5 trajectory model the builder makes."""

import pytest

from training import builder
from training.benchmarks import regularization as bench_regularization


@pytest.mark.parametrize("setting", bench_regularization.SETTINGS)
def test_every_setting_builds_the_dopri5_trajectory_model_with_its_weights(setting):
    args = bench_regularization.parser().parse_args(
        ["--settings", setting, "--kinetic-energy", "0.3", "--jacobian-norm", "0.2", "--batch-size", "16"])
    config = bench_regularization.run_config(setting, args)
    model = builder.build_model(config, vocab_size=40)
    assert type(model.decoder).__name__ == "TrajectoryDecoder" and model.decoder.solver.name == "dopri5"
    expected = {"none": (0, 0), "kinetic": (0.3, 0), "jacobian": (0, 0.2), "both": (0.3, 0.2)}
    assert (model.decoder.kinetic_energy, model.decoder.jacobian_norm) == expected[setting]
    assert config["batch_size"] == 16 and model.decoder.midpoint_weight == 0
