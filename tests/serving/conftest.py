"""A small trained model, exported once per session, and a server subprocess over it."""

import os
import sys

import keras
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import MODEL_NAME, ServerProcess  # noqa: E402


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_text, tiny_tokens):
    """An ODE-RNN trained until it reconstructs every sentence of the tiny corpus (once a run)."""
    import tfode
    from tests.helpers import fit_until_reconstructed, model_once_per_run, small_model
    from tfode.tokens import append_eos

    def fit():
        keras.utils.set_random_seed(0)
        model = small_model(tiny_text.vocabulary_size, "odernn", max_length=tiny_text.max_length,
                            solver=tfode.RK4(steps_per_unit=1))
        decoded = fit_until_reconstructed(model, tiny_tokens, epochs_per_round=20, learning_rate=1e-2)
        np.testing.assert_array_equal(decoded.ids.numpy(), append_eos(tiny_tokens).numpy())
        return model

    return model_once_per_run(tmp_path_factory, "trained-rk4-odernn", fit)


@pytest.fixture(scope="session")
def export_base(tmp_path_factory, trained, tiny_text):
    """Its export, version 1, with landmarks (once a run; tests copy from it, never write in it)."""
    from training.serving_export import export_for_serving

    from tests.conftest import TINY_CORPUS
    from tests.helpers import once_per_run

    return once_per_run(tmp_path_factory, "exports", lambda base: export_for_serving(
        trained, tiny_text, str(base), MODEL_NAME, version=1, landmarks=TINY_CORPUS))


@pytest.fixture(scope="module")
def server(export_base):
    process = ServerProcess(export_base, "--max_request_rows", "16", "--max_request_bytes", str(8 << 20))
    yield process
    process.stop()


@pytest.fixture
def sentences():
    return np.array(["the cat sat on the mat .", "I like your style.", "he has a red car ."], dtype=object)
