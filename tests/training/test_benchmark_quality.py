"""The quality benchmark's verdicts on its targets (no training: made-up metrics)."""

import pytest

from training import presets
from training.benchmarks.common import relative_command
from training.benchmarks.quality import decoder_settings, target_checks


def metrics(accuracy, exact, midpoint=None, search="greedy"):
    return {"token_accuracy": accuracy, "exact_match": exact, "midpoint_consistency": midpoint,
            "search": search}


def test_targets_are_judged_on_the_best_ode_decoder_greedy_first_then_beam():
    results = [
        {"decoder": "trajectory", "greedy": metrics(0.906, 0.666, 0.839), "beam": None},
        {"decoder": "odernn", "greedy": metrics(0.935, 0.858, 0.998),
         "beam": metrics(0.9503, 0.874, search="beam 4")},
        {"decoder": "gru", "greedy": metrics(0.926, 0.86), "beam": metrics(0.942, 0.855, search="beam 4")},
    ]
    greedy, beam = target_checks(results)
    verdicts = {(check.value, check.goal): check.met for check in greedy}
    assert verdicts == {
        (0.935, 0.95): False,    # best ODE decoder (the ODE-RNN) ≥ 95 %
        (0.935, 0.926): True,    # best ODE decoder ≥ the GRU's tokens; the ODE-RNN's, likewise
        (0.858, 0.86): False,    # ODE-RNN exact match ≥ the GRU's
        (0.839, 0.9): False,     # trajectory midpoint consistency
        (0.998, 0.9): True,      # ODE-RNN midpoint consistency
    }
    assert [(check.value, check.met) for check in beam] == [(0.9503, True)]  # the GRU's beam is no ODE
    assert "1.50 points" in greedy[0].line()
    # Without a GRU or beams, only what can be judged is.
    greedy, beam = target_checks(results[:1])
    assert [(check.value, check.goal) for check in greedy] == [(0.906, 0.95), (0.839, 0.9)] and beam == []


def test_decoder_settings_name_the_flow_and_the_training_only_terms():
    odernn = presets.resolve("tatoeba-cpu", {"decoder": "odernn", "solver": "euler", "steps_per_unit": 1.0,
                                             "kinetic_energy": 0.3, "scheduled_sampling": 0.25})
    described = decoder_settings(odernn)
    assert "euler" in described and "0.3" in described and "0.25" in described
    plain_gru = presets.resolve(None, {"decoder": "gru"})
    assert decoder_settings(plain_gru) == "–"
    trajectory = decoder_settings(presets.resolve(None, {"decoder": "trajectory", "midpoint_weight": 0.7}))
    assert "rk4" in trajectory and "0.7" in trajectory


@pytest.mark.parametrize("argv, expected", [
    (["--budget", "60"], "python -m training.benchmarks.quality --budget 60"),
    (["--data", "../shared/data/x.zip"], "python -m training.benchmarks.quality --data ../shared/data/x.zip"),
    (["--train", "plain=", "noise=--input-noise 0.1"],
     "python -m training.benchmarks.quality --train plain= 'noise=--input-noise 0.1'"),
])
def test_printed_commands_keep_relative_paths(argv, expected):
    assert relative_command("python -m training.benchmarks.quality", argv) == expected


def test_printed_commands_make_absolute_paths_relative_to_the_repository():
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    command = relative_command("python -m training.benchmarks.quality",
                               ["--data", os.path.join(os.path.dirname(root), "shared", "x.zip")])
    assert command == "python -m training.benchmarks.quality --data " + os.path.join("..", "shared", "x.zip")
