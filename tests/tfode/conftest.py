"""Fixtures shared by the library's tests."""

import pytest

from tests.helpers import fit_until_reconstructed, model_once_per_run, small_model


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_text, tiny_tokens):
    """A small ODE-RNN (Euler, one step a token) fitted until it reconstructs the tiny corpus."""
    import keras

    import tfode

    def fit():
        keras.utils.set_random_seed(0)
        model = small_model(tiny_text.vocabulary_size, "odernn", units=32, max_length=tiny_text.max_length,
                            solver=tfode.Euler(steps_per_unit=1), seed=0)
        fit_until_reconstructed(model, tiny_tokens, max_rounds=4)
        return model

    return model_once_per_run(tmp_path_factory, "trained-euler-odernn", fit)
