"""Evaluation scores that need no model."""

import numpy as np


def test_accuracy_by_frequency_band():
    from training.evaluation import scores

    bands = scores.rank_bands(1010, edges=(100, 1000))
    assert [(first, end) for _, first, end in bands] == [(2, 3), (3, 4), (4, 104), (104, 1004), (1004, 1010)]
    assert bands[2][0] == "words ranked 1–100" and bands[4][0] == "words ranked 1001–1006"
    targets = np.array([[5, 200, 1005, 3, 2, 0]])
    decoded = np.array([[5, 201, 1005, 3]])  # shorter: the <eos> is missed
    assert scores.matches_by_band(decoded, targets, bands) == [(0, 1), (1, 1), (1, 1), (0, 1), (1, 1)]
    assert [first for _, first, _ in scores.rank_bands(50)] == [2, 3, 4]  # small vocabulary: one band


def test_error_kinds_tell_a_slip_from_a_cascade_from_a_wrong_length():
    from training.evaluation import scores

    targets = np.array([
        [5, 6, 7, 2, 0],  # exact
        [5, 6, 7, 2, 0],  # one wrong token
        [5, 6, 7, 8, 2],  # several wrong, length right
        [5, 6, 7, 2, 0],  # <eos> too early
        [5, 6, 7, 2, 0],  # no <eos> at all
    ])
    decoded = np.array([
        [5, 6, 7, 2, 0, 0],
        [5, 9, 7, 2, 0, 0],
        [5, 9, 9, 9, 2, 0],
        [5, 6, 2, 0, 0, 0],
        [5, 6, 7, 7, 7, 7],
    ])
    assert scores.error_kinds(decoded, targets) == {
        "exact": [1, 0], "one wrong token": [1, 1], "several wrong tokens": [1, 3], "wrong length": [2, 3],
    }
