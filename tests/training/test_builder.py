"""The configuration → objects path: presets layered in order, every flag documented and checked,
and the builder making the objects a configuration names."""

import os
import subprocess
import sys

import pytest

import tfode
from training import builder, presets, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_settings_are_layered_defaults_preset_per_decoder_then_flags(monkeypatch):
    monkeypatch.setitem(presets.PRESETS, "layered", dict(
        units=48, solver="rk4", decoders={"odernn": dict(solver="euler", units=24)}))
    assert presets.resolve("layered", {"decoder": "gru"})["units"] == 48
    odernn = presets.resolve("layered", {"decoder": "odernn"})
    assert (odernn["solver"], odernn["units"]) == ("euler", 24) and "decoders" not in odernn
    flagged = presets.resolve("layered", {"decoder": "odernn", "units": 12, "solver": None})
    assert (flagged["solver"], flagged["units"]) == ("euler", 12)  # None: not given
    assert presets.resolve(None, {})["units"] == presets.DEFAULTS["units"]
    with pytest.raises(ValueError, match="Unknown preset"):
        presets.resolve("fast", {})
    with pytest.raises(ValueError, match="Unknown settings"):
        presets.resolve("tiny", {"unit": 3})


def test_every_setting_has_one_default_and_one_flag_whose_help_shows_it():
    assert set(builder.FLAGS) == set(presets.DEFAULTS)
    help_text = " ".join(train.build_parser().format_help().split())
    for name in builder.FLAGS:
        assert f"--{name.replace('_', '-')}" in help_text
        default = presets.DEFAULTS[name]
        assert f"(default: {'none' if default is None else default})" in help_text


def test_the_library_defaults_are_the_builders():
    config = presets.resolve(None, {})
    model = builder.build_model(config, vocab_size=40)
    assert model.max_length == tfode.Seq2SeqODE(tfode.GRUEncoder(40), tfode.GRUDecoder(40, 256)).max_length
    assert builder.build_solver(config) == tfode.RK4()
    assert config["embedding_dim"] == tfode.GRUEncoder(40).embedding_dim
    text_default = tfode.TextProcessor.__init__.__defaults__[0]
    assert config["max_length"] == text_default


@pytest.mark.parametrize("preset", sorted(presets.PRESETS))
@pytest.mark.parametrize("decoder", builder.DECODERS)
def test_every_preset_passes_its_checks_for_every_decoder(preset, decoder):
    config = presets.resolve(preset, {"decoder": decoder})
    builder.check(config, given={"decoder"})


def test_the_builder_makes_the_objects_the_configuration_names():
    config = presets.resolve(None, {"decoder": "odernn", "field_type": "gated", "solver": "euler",
                                    "steps_per_unit": 1.0, "kinetic_energy": 0.2, "units": 24,
                                    "embedding_dim": 8, "scheduled_sampling": 0.3, "tied_embeddings": True,
                                    "bidirectional": True, "seed": 9, "max_length": 11})
    model = builder.build_model(config, vocab_size=50)
    assert isinstance(model.decoder, tfode.ODERNNDecoder)
    assert isinstance(model.decoder.vector_field, tfode.GatedVectorField)
    assert model.decoder.solver == tfode.Euler(steps_per_unit=1.0)
    assert model.decoder.cell.kinetic_energy == 0.2 and model.decoder.scheduled_sampling == 0.3
    assert model.encoder.bidirectional and model.tied_embeddings and model.max_length == 11
    assert model.encoder.seed == 9 and model.decoder.seed == 9
    assert model.encoder.input_noise is None
    config = presets.resolve(None, {"input_noise": 0.3, "input_shuffle": 2, "variational": True,
                                    "free_bits": 0.2, "mmd_weight": 1.0})
    encoder = builder.build_model(config, vocab_size=50).encoder
    assert (encoder.input_noise.delete, encoder.input_noise.blank, encoder.input_noise.shuffle_distance) == (0.3, 0, 2)
    assert (encoder.free_bits, encoder.mmd_weight) == (0.2, 1.0)
    assert encoder.blank_embedding is None  # no blanking, no blank vector
    config = presets.resolve(None, {"input_blank": 0.1, "input_blank_token": "mask"})
    encoder = builder.build_model(config, vocab_size=50).encoder
    assert encoder.input_noise.blank_token == "mask" and encoder.blank_embedding is not None
    config = presets.resolve(None, {"decoder": "trajectory", "solver": "dopri5", "rtol": 1e-5,
                                    "field_units": 20, "field_depth": 3, "augment_dim": 2})
    model = builder.build_model(config, vocab_size=50)
    assert model.decoder.solver == tfode.Dopri5(rtol=1e-5, atol=config["atol"])
    assert (model.decoder.vector_field.hidden_units, model.decoder.vector_field.depth) == (20, 3)
    assert model.decoder.augment_dim == 2
    assert isinstance(builder.build_model(presets.resolve(None, {"decoder": "gru"}), 50).decoder, tfode.GRUDecoder)
    assert model.path_energy is None
    config = presets.resolve(None, {"path_energy": 0.2, "path_energy_rows": 8, "seed": 4})
    energy = builder.build_model(config, vocab_size=50).path_energy
    assert (energy.weight, energy.rows, energy.seed, energy.words_weight) == (0.2, 8, 4, 0.0)
    assert energy.temperature == 1.0
    config = presets.resolve(None, {"path_energy": 0.2, "path_temperature": 0.25})
    assert builder.build_model(config, vocab_size=50).path_energy.temperature == 0.25
    energy = builder.build_model(presets.resolve(None, {"path_words": 0.3}), vocab_size=50).path_energy
    assert (energy.weight, energy.words_weight) == (0.0, 0.3)


@pytest.mark.parametrize("flags, message", [
    (["--decoder", "gru", "--solver", "euler"], "--solver does not apply here: the gru decoder has no ODE"),
    (["--decoder", "gru", "--kinetic-energy", "0.1"], "--kinetic-energy does not apply"),
    (["--decoder", "trajectory", "--scheduled-sampling", "0.2"], "--scheduled-sampling does not apply"),
    (["--decoder", "trajectory", "--word-dropout", "0.2"], "--word-dropout does not apply"),
    (["--decoder", "odernn", "--midpoint-weight", "1"], "--midpoint-weight does not apply"),
    (["--decoder", "odernn", "--augment-dim", "4"], "--augment-dim does not apply"),
    (["--field-type", "gated", "--field-units", "64"], "--field-units does not apply"),
    (["--field-type", "gated", "--no-layer-norm"], "--layer-norm does not apply"),
    (["--solver", "rk4", "--rtol", "1e-4"], "--rtol does not apply"),
    (["--solver", "dopri5", "--steps-per-unit", "2"], "--steps-per-unit does not apply"),
    (["--kl-weight", "0.5"], "--kl-weight does not apply"),
    (["--free-bits", "0.1"], "--free-bits does not apply"),
    (["--input-noise", "1.0"], "delete must be in [0, 1)"),
    (["--path-energy-rows", "8"], "--path-energy-rows does not apply"),
    (["--input-blank-token", "mask"], "--input-blank-token does not apply"),
    (["--path-energy", "-1"], "weight must be >= 0"),
    (["--path-words", "0.2", "--path-temperature", "0.5"], "--path-temperature does not apply"),
    (["--path-energy", "0.2", "--path-temperature", "0"], "temperature must be > 0"),
    (["--path-words", "-1"], "words_weight must be >= 0"),
    (["--path-energy", "0.1", "--path-energy-rows", "1"], "rows must be >= 2"),
    (["--lr-schedule", "plateau", "--warmup-steps", "10"], "--warmup-steps does not apply"),
    (["--data", "tatoeba", "--synthetic-size", "10"], "--synthetic-size does not apply"),
    (["--logical-cpus", "2"], "--logical-cpus does not apply"),
    (["--dropout", "1.0"], "dropout must be in [0, 1)"),
    (["--label-smoothing", "1"], "label_smoothing must be in [0, 1)"),
    (["--decoder", "trajectory", "--solver", "dopri5", "--midpoint-weight", "0.1"], "fixed-grid"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--min-words", "5", "--max-words", "3"], "--min-words"),
    (["--units", "0"], "units"),
])
def test_a_flag_that_does_not_apply_or_is_out_of_range_is_refused_before_the_run_directory(
        tmp_path, capsys, flags, message):
    run_dir = tmp_path / "run"
    assert train.main(["--run-dir", str(run_dir), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not run_dir.exists()


def test_help_does_not_load_tensorflow():
    probe = ("import sys; import training.train, training.evaluate, training.export; "
             "training.train.build_parser().format_help(); print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"


def trains(decoder, solver):
    """What the test expects of a decoder and a solver (None: the preset's): a GRU has no solver,
    BDF is never differentiated through, and the ODE-RNN steps its solver inside its loop."""
    from tfode.solvers import SOLVERS

    if decoder == "gru":
        return solver is None
    return solver != "bdf" and (decoder != "odernn" or solver is None or SOLVERS[solver].steps_in_a_loop)


def decoder_solver_cases():
    """Every decoder × solver; those that take a training step (a traced train step, a few
    seconds each) are in the slow tier."""
    return [pytest.param(decoder, solver, id=f"{solver}-{decoder}",
                         marks=[pytest.mark.slow] if solver and trains(decoder, solver) else [])
            for decoder in ("trajectory", "odernn", "gru") for solver in ("dopri5", "bdf", "rk4", "euler", None)]


@pytest.mark.parametrize("decoder, solver", decoder_solver_cases())
def test_every_decoder_and_solver_either_trains_or_is_refused_before_the_run_exists(decoder, solver, tmp_path,
                                                                                    capsys):
    """The decoder's own rule (`training_refusal`) is asked before anything is written; a
    combination it accepts takes a training step."""
    import numpy as np

    from tfode.solvers import SOLVERS
    from training import train

    run_dir = tmp_path / "run"
    flags = ["--data", "synthetic", "--preset", "tiny", "--decoder", decoder, "--run-dir", str(run_dir), "--quiet"]
    flags += ["--solver", solver] if solver else []
    args = train.build_parser().parse_args(flags)
    try:
        config = train.resolve_config(args)
        builder.check_objects(config)
    except ValueError as error:
        refused = str(error)
    else:
        refused = None
    assert (refused is None) == trains(decoder, solver), refused
    if refused:
        assert train.main(flags) == 2 and not run_dir.exists()
        assert refused.splitlines()[0] in capsys.readouterr().err
        return
    if solver is None and decoder != "gru":
        # The preset's solver: the same configuration as naming it, whose case takes the step.
        named = train.resolve_config(train.build_parser().parse_args([*flags, "--solver", config["solver"]]))
        assert named == config and config["solver"] in SOLVERS
        return
    model = builder.build_model(config, vocab_size=12)
    model.compile(loss=builder.build_loss(config))
    tokens = np.array([[5, 6, 7, 0], [8, 9, 10, 11]], "int32")
    from tfode.tokens import append_eos

    loss = model.train_on_batch(tokens, append_eos(tokens).numpy())
    assert np.isfinite(loss).all()


@pytest.mark.parametrize("decoder", ["trajectory", "odernn"])
def test_every_random_stream_of_a_model_starts_from_its_own_state(decoder):
    """Each SeedGenerator (noise, dropout, sampling, probes, path pairs, latent samples) is seeded
    from --seed and its own stream name: no two start alike; the same seed gives the same starts."""
    def starts(seed):
        config = presets.resolve("tatoeba-cpu", {
            "decoder": decoder, "seed": seed, "variational": True, "input_noise": 0.1, "path_energy": 0.1,
            "jacobian_norm": 0.1, "kl_weight": 0.1})
        model = builder.build_model(config, vocab_size=40)
        model.build((None, None))
        return sorted(tuple(int(x) for x in variable.numpy()) for variable in model.variables
                      if variable.path.endswith("seed_generator_state"))

    first = starts(3)
    assert len(first) >= 7 and len(set(first)) == len(first), first
    assert starts(3) == first
    assert set(starts(4)).isdisjoint(first)
