"""The quality benchmark's verdicts on issue 5's targets (no training: made-up metrics)."""

from training.bench_quality import decoder_settings, target_lines
from training import presets


def metrics(accuracy, exact, midpoint=None, search="greedy"):
    return {"token_accuracy": accuracy, "exact_match": exact, "midpoint_consistency": midpoint,
            "search": search}


def test_targets_say_met_or_by_how_much_missed_greedy_first_then_beam():
    results = [
        {"decoder": "trajectory", "greedy": metrics(0.906, 0.666, 0.839), "beam": None},
        {"decoder": "odernn", "greedy": metrics(0.935, 0.858, 0.998),
         "beam": metrics(0.9503, 0.874, search="beam 4")},
        {"decoder": "gru", "greedy": metrics(0.926, 0.86), "beam": metrics(0.942, 0.855, search="beam 4")},
    ]
    lines = target_lines(results)
    assert "- best ODE decoder (odernn) token accuracy ≥ 95 %: 93.50 % against 95.00 % — missed by 1.50 points" in lines
    assert "- ODE-RNN token accuracy ≥ the GRU's: 93.50 % against 92.60 % — met" in lines
    assert "- ODE-RNN exact match ≥ the GRU's: 85.80 % against 86.00 % — missed by 0.20 points" in lines
    assert "- trajectory midpoint consistency ≥ 90 %: 83.90 % against 90.00 % — missed by 6.10 points" in lines
    beam_line = "- best ODE decoder (odernn), beam 4, token accuracy ≥ 95 %: 95.03 % against 95.00 % — met"
    assert lines.index(beam_line) > lines.index("Beam search is free-running too; the greedy lines above are the strict reading:")


def test_decoder_settings_name_the_flow_and_the_sampling():
    odernn = presets.resolve("tatoeba-cpu", {"decoder": "odernn", "scheduled_sampling": 0.5, "context_input": False})
    assert decoder_settings(odernn) == (
        "gated field, euler 1/token, λ kinetic 0.1, λ Jacobian 0, scheduled sampling 0 → 0.5")
    odernn["context_input"] = True
    assert decoder_settings(odernn) == ("gated field, euler 1/token, λ kinetic 0.1, λ Jacobian 0, "
                                        "h(0) read at every token, scheduled sampling 0 → 0.5")
    plain_gru = {"decoder": "gru", "scheduled_sampling": 0, "context_input": False}
    assert decoder_settings(presets.resolve("tatoeba-cpu", plain_gru)) == "–"
    gru = presets.resolve("tatoeba-cpu", {"decoder": "gru", "label_smoothing": 0.1, "context_input": False})
    assert decoder_settings(gru) == "scheduled sampling 0 → 0.5, label smoothing 0.1"
    assert decoder_settings(presets.resolve("tatoeba-cpu", {"decoder": "trajectory", "midpoint_weight": 1})) == (
        "gated field, rk4 1/token, midpoint term λ 1")
