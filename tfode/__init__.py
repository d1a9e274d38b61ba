"""tfode: sequence-to-sequence models whose decoder is a Neural ODE (Keras 3 on TensorFlow)."""

import os

# Keras 3 must run on TensorFlow: the solvers are TensorFlow Probability's.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if os.environ["KERAS_BACKEND"] != "tensorflow":
    raise ImportError(
        f"tfode needs KERAS_BACKEND=tensorflow, found {os.environ['KERAS_BACKEND']!r}."
    )

from tfode.solvers import BDF, RK4, Dopri5, Euler, odeint  # noqa: E402
from tfode.fields import GatedVectorField, VectorField  # noqa: E402
from tfode.ode import ODESolution, ODESolve  # noqa: E402
from tfode.readout import TiedReadout  # noqa: E402
from tfode.noise import TokenNoise  # noqa: E402
from tfode.path_energy import PathEnergy  # noqa: E402
from tfode.inversion import CodeRefinement  # noqa: E402
from tfode.paths import PathSearch, SentencePath  # noqa: E402
from tfode.encoder import GRUEncoder  # noqa: E402
from tfode.decoders import (  # noqa: E402
    AutoregressiveDecoder, GRUDecoder, GRUStepCell, ODERNNCell, ODERNNDecoder, TrajectoryDecoder,
)
from tfode.losses import MaskedCrossEntropy  # noqa: E402
from tfode.metrics import ExactMatch, MaskedTokenAccuracy  # noqa: E402
from tfode.model import Seq2SeqODE  # noqa: E402
from tfode.language_model import LanguageModel  # noqa: E402
from tfode.text import TextProcessor  # noqa: E402

__version__ = "0.4.0"

__all__ = [
    "BDF", "RK4", "Dopri5", "Euler", "odeint", "GatedVectorField", "VectorField", "ODESolution",
    "ODESolve", "TiedReadout", "TokenNoise", "PathEnergy", "CodeRefinement", "PathSearch", "SentencePath", "GRUEncoder", "AutoregressiveDecoder", "GRUDecoder", "GRUStepCell",
    "ODERNNCell", "ODERNNDecoder", "TrajectoryDecoder", "MaskedCrossEntropy", "ExactMatch",
    "MaskedTokenAccuracy", "Seq2SeqODE", "LanguageModel", "TextProcessor",
]
