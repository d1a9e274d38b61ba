"""Argument checks and seed derivation shared by the layers (each layer validates its own
arguments where it is constructed, with these)."""

from __future__ import annotations

import zlib


def check_rate(name: str, value: float, upper_inclusive: bool = False) -> float:
    """`value` as a float, or ValueError unless it is in [0, 1) ([0, 1] if `upper_inclusive`)."""
    value = float(value)
    if not (0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0):
        raise ValueError(f"{name} must be in [0, 1{']' if upper_inclusive else ')'}, got {value}.")
    return value


def derive_seed(seed: int | None, stream: str) -> int | None:
    """The seed of the random stream named `stream` ("encoder/latent", "decoder/sampling", …:
    one name a stream across the whole model) of a model seeded `seed`, or None (Keras then
    draws one from its global seed, `keras.utils.set_random_seed`). Streams that a model turns
    on together never start from the same state."""
    if seed is None:
        return None
    return (int(seed) * 1_000_003 + zlib.crc32(stream.encode("utf-8"))) % (2**31 - 1)


def check_non_negative(name: str, value: float) -> float:
    value = float(value)
    if not value >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {value}.")
    return value
