"""Latent path metrics, the reference language model that judges fluency, and their wiring."""

import json
import math

import numpy as np
import pytest

from training.evaluation import latent_paths, path_metrics


def test_path_figures_on_paths_made_by_hand():
    a, b = "the cat sat .", "a dog ran ."
    one_jump = [a, a, a, b, b]                              # flips in one step
    gradual = [a, "a cat sat .", "a dog sat .", b, b]      # one word at a time, straight
    detour = [a, "the cat sat on a mat .", b, b, b]        # away from both ends first
    corpus = {a, b, "a dog sat ."}
    metrics = path_metrics.path_metrics([one_jump, gradual, detour], [(a, b), (a, b), (a, "x .")], corpus)
    shapes = [path_metrics.path_shape(p) for p in (one_jump, gradual, detour)]
    assert [s["span"] for s in shapes] == [3, 3, 3]
    assert [s["largest_step"] for s in shapes] == [3, 1, 6]
    assert [s["monotone"] for s in shapes] == [True, True, False]
    assert [s["distinct"] for s in shapes] == [0, 2, 1]
    assert metrics["gradual"]["value"] == pytest.approx((1 + 1 / 3 + 2) / 3)
    assert metrics["smooth"]["value"] == pytest.approx((1 + 1 + 3 / 9) / 3)
    assert metrics["smooth_bound"]["value"] == pytest.approx(3 / 4)  # spans of 3 words over 4 steps
    assert metrics["monotone"]["value"] == pytest.approx(2 / 3) and metrics["monotone"]["n"] == 3
    assert metrics["endpoints"]["value"] == pytest.approx(2 / 3)
    assert [s["steps"] for s in shapes] == [[0, 0, 3, 0], [1, 1, 1, 0], [3, 6, 0, 0]]
    assert metrics["steps"] == pytest.approx([4 / 3, 7 / 3, 4 / 3, 0])
    interior = [s for p in (one_jump, gradual, detour) for s in p[1:-1]]
    assert metrics["real_interior"]["value"] == pytest.approx(sum(s in corpus for s in interior) / len(interior))
    # The new points: neither end of their path (the repeats of A′ and B′ are left out).
    assert metrics["new"] == 3 and metrics["real"]["n"] == 3
    assert metrics["real"]["value"] == pytest.approx(1 / 3)  # "a dog sat ." of the three
    assert "fluent" not in metrics
    judged = path_metrics.path_metrics([gradual], [(a, b)], corpus, fluent=lambda ss: [s != "a cat sat ." for s in ss])
    assert judged["fluent_interior"]["value"] == pytest.approx(2 / 3)
    assert judged["fluent"]["value"] == pytest.approx(1 / 2) and judged["fluent"]["n"] == 2


def test_grid_figures_count_distinct_sentences_holes_and_the_floor():
    a, b = "the cat sat .", "a dog ran ."
    grid = [a, a, "a cat sat .", "xx yy zz .", "a dog sat .", b, b]
    flat = [a, a, a, a, b, b, b]
    figures = path_metrics.grid_metrics([grid, flat], fluent=lambda ss: [s != "xx yy zz ." for s in ss])
    assert figures["grid_points"] == 7
    assert figures["grid_distinct"]["value"] == pytest.approx((3 + 0) / 2)
    assert figures["grid_fluent"]["value"] == pytest.approx(9 / 10) and figures["grid_fluent"]["n"] == 10
    # The grid path's largest steps go through "xx yy zz ." (3 words of 3); the flat one flips at once.
    assert figures["floor"]["value"] == pytest.approx(1.0)
    assert path_metrics.grid_metrics([[a, "a cat sat .", "a dog sat .", b]])["floor"]["value"] == pytest.approx(1 / 3)


def test_paths_that_cannot_move_are_left_out_of_the_ratios():
    a = "the cat sat ."
    metrics = path_metrics.path_metrics([[a, "a cat .", a]], [(a, a)], set())
    assert metrics["gradual"]["n"] == 0 and math.isnan(metrics["gradual"]["value"])
    assert metrics["monotone"]["n"] == 1


def test_intervals_hold_their_value_and_narrow_with_more_data():
    small, large = path_metrics.share([True] * 8 + [False] * 2), path_metrics.share([True] * 80 + [False] * 20)
    for figure in (small, large):
        assert figure["low"] < figure["value"] < figure["high"]
    assert large["high"] - large["low"] < small["high"] - small["low"]
    assert path_metrics.wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12)


def test_broken_sentences_are_made_as_described():
    rng = np.random.default_rng(0)
    sentence = "i like your red car ."
    swapped = path_metrics.swapped(sentence, rng)
    assert sorted(swapped.split()) == sorted(sentence.split()) and swapped != sentence
    assert swapped.endswith(" .")
    assert path_metrics.spliced("a b c d .", "e f g h i .") == "a b h i ."
    assert path_metrics.changed_words("a b c .", "a x c d .") == {1, 3}


def test_pairs_are_seeded_disjoint_and_bounded():
    pairs = latent_paths.sample_pairs(10, 4, seed=3)
    assert pairs == latent_paths.sample_pairs(10, 4, seed=3) != latent_paths.sample_pairs(10, 4, seed=4)
    flat = [i for pair in pairs for i in pair]
    assert len(set(flat)) == 8
    assert len(latent_paths.sample_pairs(5, 10, seed=0)) == 2


@pytest.fixture(scope="module")
def grammar_lm(tmp_path_factory):
    from training import grammar
    from training.evaluation import reference_lm

    sentences = grammar.corpus(1500, seed=1)
    cache = str(tmp_path_factory.mktemp("lm"))
    lm = reference_lm.ReferenceLM.fit_or_load(sentences, cache, units=32, embedding_dim=16, epochs=6,
                                              batch_size=64, learning_rate=1e-2)
    return lm, sentences, cache


@pytest.mark.slow
def test_the_reference_lm_is_cached_and_tells_real_sentences_from_broken_ones(grammar_lm):
    import os

    from training import grammar
    from training.evaluation import reference_lm

    lm, sentences, cache = grammar_lm
    assert len(os.listdir(cache)) == 1
    again = reference_lm.ReferenceLM.fit_or_load(sentences, cache, units=32, embedding_dim=16, epochs=6,
                                                 batch_size=64, learning_rate=1e-2)
    assert again.directory == lm.directory and len(os.listdir(cache)) == 1  # loaded, not trained
    held_out = [s for s in grammar.corpus(2200, seed=2) if s not in set(sentences)][:300]
    judge = reference_lm.FluencyJudge(lm, held_out)
    calibration = judge.calibration
    assert calibration["real sentences"]["value"] == pytest.approx(0.95, abs=0.01)
    assert calibration["two adjacent words swapped"]["value"] < 0.5
    assert 1.0 < calibration["perplexity on the real sentences"] < lm.text.vocabulary_size
    assert judge([]) == []


def test_measure_decodes_seeded_paths_of_a_model(tiny_text):
    import keras

    from tests.helpers import small_model

    sentences = ["the cat sat on the mat .", "a dog ran in the park .", "i like your style .",
                 "she reads a long book .", "he has a red car .", "the pain was unbearable ."]
    keras.utils.set_random_seed(0)  # an untrained model's near-ties decide its words: fix them
    model = small_model(tiny_text.vocabulary_size, "gru", max_length=tiny_text.max_length)
    from tfode.paths import PathSearch

    measured = latent_paths.measure(model, tiny_text, sentences, set(sentences), pairs=3, points=5, seed=1,
                                    accepts=lambda s: s.endswith("."), grid=17,
                                    searches={"path": PathSearch(grid=4, directions=1, radii=(0.2,), refinement=None)})
    assert measured["slerp"]["grid_points"] == 17 and "grid_distinct" in measured["slerp"]
    searched = measured["_paths"]["path"]["paths"]
    assert len(searched) == 3 and all(len(p) == 5 for p in searched)
    assert measured["path"]["seconds_per_path"] > 0 and measured["path"]["search"]["grid"] == 4
    assert [p[0] for p in searched] == [p[0] for p in measured["_paths"]["linear"]["paths"]]  # unrefined ends
    paths = measured["_paths"]["slerp"]
    assert len(paths["paths"]) == 3 and all(len(p) == 5 for p in paths["paths"])
    assert paths["codes"].shape == (3, 5, 32)
    assert measured["linear"]["paths"] == 3 and 0 <= measured["linear"]["grammatical"]["value"] <= 1
    # The ends of a path are the model's own reconstructions of the pair.
    first, second = latent_paths.sample_pairs(len(sentences), 3, seed=1)[0]
    ids = tiny_text.encode([sentences[first], sentences[second]]).ids
    expected = [s.decode() for s in tiny_text.decode(model.reconstruct(ids).ids).numpy()]
    assert [paths["paths"][0][0], paths["paths"][0][-1]] == expected


def test_bench_interpolation_refuses_what_it_cannot_run(tmp_path, capsys):
    from training.benchmarks import interpolation as bench_interpolation

    assert bench_interpolation.main(["--results", str(tmp_path / "x.md")]) == 2
    assert bench_interpolation.main(["--runs", f"a={tmp_path}", "--results", str(tmp_path / "x.md")]) == 2
    assert "not a training run" in capsys.readouterr().err
    assert bench_interpolation.main(["--runs", "nameless", "--results", str(tmp_path / "x.md")]) == 2
    assert bench_interpolation.main(["--train", "a=", "--beam-width", "0", "--results", str(tmp_path / "x.md")]) == 2
    assert "--beam-width" in capsys.readouterr().err
    from training import presets, train

    run_dir = str(tmp_path / "trajectory")
    train.prepare_run_dir(run_dir, presets.resolve("tiny", {"decoder": "trajectory"}), overwrite=False)
    assert bench_interpolation.main(["--runs", f"t={run_dir}", "--beam-width", "3",
                                     "--results", str(tmp_path / "x.md")]) == 2
    assert "no beam" in capsys.readouterr().err
    assert bench_interpolation.main(["--train", "t=", "--decoder", "trajectory", "--beam-width", "3",
                                     "--out-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "x.md")]) == 2
    assert not (tmp_path / "x.md").exists() and not (tmp_path / "runs").exists()  # refused before training


def test_a_runs_training_command_names_what_differs_from_its_preset(tmp_path):
    from training import presets, train
    from training.benchmarks import interpolation as bench_interpolation

    config = presets.resolve("synthetic", {"input_noise": 0.3, "bidirectional": False, "epochs": 3})
    config["preset"] = "synthetic"
    run_dir = str(tmp_path / "run")
    train.prepare_run_dir(run_dir, config, overwrite=False)
    command = bench_interpolation.training_command(run_dir).split()
    assert command[:5] == ["python", "-m", "training.train", "--preset", "synthetic"]
    for flags in (["--input-noise", "0.3"], ["--epochs", "3"], ["--no-bidirectional"]):
        position = command.index(flags[0])
        assert command[position : position + len(flags)] == flags
    assert "--units" not in command  # the preset's own values are not repeated
    # A run trained before a setting existed ran with its default, even where the preset now differs.
    older = json.loads((tmp_path / "run" / "config.json").read_text())
    del older["input_noise"]
    (tmp_path / "run" / "config.json").write_text(json.dumps(older))
    command = bench_interpolation.training_command(run_dir).split()
    assert command[command.index("--input-noise") + 1] == str(float(presets.DEFAULTS["input_noise"]))


def test_the_step_table_gives_each_runs_mean_edits_per_step():
    from training.benchmarks import interpolation as bench_interpolation

    def figures(steps):
        return {"points": len(steps) + 1, "steps": steps}

    rows = [{"name": "plain", "interpolation": {"linear": figures([0.5, 3.0, 0.25]), "slerp": figures([1, 2, 1])}},
            {"name": "energy", "interpolation": {"linear": figures([1, 1, 1]), "slerp": figures([2, 0, 1])}}]
    lines = bench_interpolation.step_table(rows, ["linear", "slerp"])
    assert lines[0] == "| run | mode | 0.000 → 0.333 | 0.333 → 0.667 | 0.667 → 1.000 |"
    assert lines[2:] == ["| plain | linear | 0.50 | 3.00 | 0.25 |", "| plain | slerp | 1.00 | 2.00 | 1.00 |",
                         "| energy | linear | 1.00 | 1.00 | 1.00 |", "| energy | slerp | 2.00 | 0.00 | 1.00 |"]


def test_searches_are_named_or_given_as_settings(tmp_path, capsys):
    from training.benchmarks import interpolation as bench_interpolation

    searches = bench_interpolation.named_searches(["path", 'wide={"grid": 8, "directions": 2}'])
    from tfode.paths import search_from_name

    assert searches["path"].get_config() == search_from_name("path").get_config()
    assert searches["path"].refinement is not None  # the product's search refines its ends
    assert searches["wide"].grid == 8 and searches["wide"].directions == 2
    for bad in (["no-such-search"], ['x={"grid": 1}'], ["x={grid"], ['x={"colour": 1}']):
        assert bench_interpolation.main(["--train", "a=", "--searches", *bad, "--out-dir", str(tmp_path / "runs"),
                                         "--results", str(tmp_path / "x.md")]) == 2
        assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_fit_language_model_refuses_what_it_cannot_use(tmp_path, capsys):
    from training import fit_language_model

    assert fit_language_model.main(["--run-dir", str(tmp_path)]) == 2
    assert "not a training run" in capsys.readouterr().err
    assert fit_language_model.main(["--run-dir", str(tmp_path), "--quantile", "1.5"]) == 2
    assert "--quantile" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written
