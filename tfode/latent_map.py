"""A 2-D map of a model's latent space, fitted once on the codes of real sentences (landmarks).

The map is a principal-component projection (the two directions of largest variance of the
landmark codes), so a code, a path of codes or a decoder state h(t) of the same width lands on
one plane, and every point can be asked for its nearest landmarks in the full latent space.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

NEIGHBOURS = 5  # nearest landmarks a point is answered with
MIN_LANDMARKS = 3  # two principal directions need at least three codes


class LatentMap(tf.Module):
    """Landmark `sentences` (N strings) and their `codes` `[N, units]` → a projection to 2-D and
    a nearest-neighbour index. Everything is held as constants, so a SavedModel that holds the
    map answers without the data it was fitted on."""

    def __init__(self, sentences, codes, name="latent_map"):
        super().__init__(name=name)
        codes = np.asarray(codes, np.float32)
        sentences = [str(sentence) for sentence in sentences]
        if codes.ndim != 2 or codes.shape[0] != len(sentences):
            raise ValueError(f"codes must be [N, units] with one row per sentence; got {codes.shape} "
                             f"for {len(sentences)} sentences.")
        if len(sentences) < MIN_LANDMARKS:
            raise ValueError(f"A latent map needs at least {MIN_LANDMARKS} landmark sentences, got {len(sentences)}.")
        if not np.all(np.isfinite(codes)):
            raise ValueError("Every landmark code must be finite.")
        self.mean = codes.mean(axis=0)
        # Right singular vectors of the centred codes: the principal directions, largest first.
        _, _, directions = np.linalg.svd(codes - self.mean, full_matrices=False)
        axes = directions[:2].T.astype(np.float32)
        self.axes = axes * np.where(axes.sum(axis=0) < 0, -1.0, 1.0).astype(np.float32)  # a fixed sign
        self.codes = codes
        self.sentences = sentences
        self.points = self.project_numpy(codes)

    def project_numpy(self, codes):
        return ((np.asarray(codes, np.float32) - self.mean) @ self.axes).astype(np.float32)

    def project(self, codes):
        """`[batch, units]` → `[batch, 2]`: the codes on the map's plane."""
        return tf.matmul(codes - tf.constant(self.mean), tf.constant(self.axes))

    def nearest(self, codes, k: int = NEIGHBOURS):
        """`[batch, units]` → `(sentences [batch, k] string, distances [batch, k] float32)`: the
        landmarks nearest each code (Euclidean distance in the latent space), nearest first."""
        landmarks = tf.constant(self.codes)
        squared = (tf.reduce_sum(codes ** 2, axis=1, keepdims=True) - 2.0 * tf.matmul(codes, landmarks, transpose_b=True)
                   + tf.reduce_sum(landmarks ** 2, axis=1)[None])
        top = tf.math.top_k(-squared, k=min(k, len(self.sentences)))
        return tf.gather(tf.constant(self.sentences), top.indices), tf.sqrt(tf.maximum(-top.values, 0.0))

    def landmarks(self, count):
        """The first `count` (a scalar, capped at the landmarks held) landmark sentences `[M]`
        and their map points `[M, 2]`."""
        count = tf.minimum(count, len(self.sentences))
        return tf.constant(self.sentences)[:count], tf.constant(self.points)[:count]
