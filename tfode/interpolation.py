"""Paths between two latent vectors: linear and spherical-linear (slerp)."""

from __future__ import annotations

import tensorflow as tf

MODES = ("linear", "slerp")


def linear(start: tf.Tensor, end: tf.Tensor, alphas: tf.Tensor) -> tf.Tensor:
    """`start`, `end` `[batch, units]`, `alphas` `[A]` → `[batch, A, units]`, (1-α)·start + α·end."""
    return _linear(start, end, tf.cast(alphas, start.dtype)[None, :, None])


def slerp(start: tf.Tensor, end: tf.Tensor, alphas: tf.Tensor) -> tf.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for latent spaces), `[batch, A, units]`.

    Follows the great circle between the two directions while interpolating the norms' blend
    like `linear` does; falls back to `linear` for (nearly) parallel vectors.
    """
    return _slerp(start, end, tf.cast(alphas, start.dtype)[None, :, None])


def _linear(start, end, alphas):
    """`alphas` `[batch or 1, A, 1]` → `[batch, A, units]`."""
    return (1.0 - alphas) * start[:, None] + alphas * end[:, None]


def _slerp(start, end, alphas):
    """`alphas` `[batch or 1, A, 1]` → `[batch, A, units]`."""
    unit_start = tf.math.l2_normalize(start, axis=-1)
    unit_end = tf.math.l2_normalize(end, axis=-1)
    cosine = tf.clip_by_value(tf.reduce_sum(unit_start * unit_end, axis=-1), -1.0, 1.0)
    angle = tf.acos(cosine)[:, None, None]
    sine = tf.sin(angle)
    nearly_parallel = sine < 1e-4
    safe_sine = tf.where(nearly_parallel, tf.ones_like(sine), sine)
    start_weight = tf.where(nearly_parallel, 1.0 - alphas, tf.sin((1.0 - alphas) * angle) / safe_sine)
    end_weight = tf.where(nearly_parallel, alphas, tf.sin(alphas * angle) / safe_sine)
    return start_weight * start[:, None] + end_weight * end[:, None]


def interpolate_rows(start: tf.Tensor, end: tf.Tensor, alpha: tf.Tensor, mode: tf.Tensor) -> tf.Tensor:
    """One point per row: `start`, `end` `[batch, units]`, `alpha` `[batch]` float and `mode`
    `[batch]` string (each "linear" or "slerp") → `[batch, units]`. Row i equals
    `interpolate(start[i:i+1], end[i:i+1], [alpha[i]], mode[i])`; an unknown mode raises
    `InvalidArgumentError`."""
    mode = tf.convert_to_tensor(mode, tf.string)
    known = tf.reduce_all(tf.reduce_any(tf.equal(mode[:, None], tf.constant(MODES)[None]), axis=1))
    check = tf.debugging.Assert(known, ["mode must be 'linear' or 'slerp' in every row, got", mode])
    with tf.control_dependencies([check]):
        alphas = tf.cast(alpha, start.dtype)[:, None, None]
    spherical = tf.equal(mode, "slerp")[:, None]
    return tf.where(spherical, _slerp(start, end, alphas)[:, 0], _linear(start, end, alphas)[:, 0])


def interpolate(start, end, alphas, mode="linear") -> tf.Tensor:
    """`linear` or `slerp` by name; `mode` may be a Python string or a string scalar tensor (an
    unknown name raises `ValueError`, or `InvalidArgumentError` when it is a tensor)."""
    if isinstance(mode, str):
        if mode not in MODES:
            raise ValueError(f"Unknown interpolation mode {mode!r}; expected one of {MODES}.")
        return (linear if mode == "linear" else slerp)(start, end, alphas)
    mode = tf.convert_to_tensor(mode, tf.string)
    known = tf.reduce_any(tf.equal(mode, tf.constant(MODES)))
    check = tf.debugging.Assert(known, ["mode must be 'linear' or 'slerp', got", mode])
    with tf.control_dependencies([check]):
        return tf.cond(
            tf.equal(mode, "slerp"),
            lambda: slerp(start, end, alphas),
            lambda: linear(start, end, alphas),
        )
