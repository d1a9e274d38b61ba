"""Decoders from h(0) to token logits: `TrajectoryDecoder` (non-autoregressive Neural ODE),
`ODERNNDecoder` and `GRUDecoder` (one autoregressive loop around an ODE-RNN or a GRU cell)."""

from tfode.decoders.autoregressive import (
    AutoregressiveDecoder, GRUDecoder, GRUStepCell, ODERNNCell, ODERNNDecoder,
)
from tfode.decoders.base import Decoder, DecoderOutput
from tfode.decoders.trajectory import TrajectoryDecoder

__all__ = [
    "AutoregressiveDecoder", "Decoder", "DecoderOutput", "GRUDecoder", "GRUStepCell", "ODERNNCell",
    "ODERNNDecoder", "TrajectoryDecoder",
]
