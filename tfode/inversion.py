"""`CodeRefinement`: a code whose decode is the sentence, found from the encoder's code.

The encoder is amortised: one pass gives every sentence a code, and for some sentences that code
decodes to a slightly different sentence (the amortisation gap). A few steps of gradient descent
on the decoder's teacher-forced negative log-likelihood of the sentence, started at the encoder's
code, close most of that gap on a trained model (semi-amortised inference, Kim et al. 2018
"Semi-Amortized Variational Autoencoders"). The code stays the model's: the sentence is still the
decode of a latent point, never a sentence looked up.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfode.tokens import append_eos, prepend_bos


@keras.saving.register_keras_serializable(package="tfode")
class CodeRefinement:
    """Refines codes `[batch, units]` toward the sentences they should decode to.

        codes = CodeRefinement(steps=6, learning_rate=0.1)(model, tokens)

    Args:
      steps: gradient steps (>= 0; 0 returns the encoder's codes). Each costs one teacher-forced
        decoder pass and its gradient; the loop is unrolled in the graph.
      learning_rate: the step size of plain gradient descent on the summed token negative
        log-likelihood (> 0). Each row ends at the best code it visited (its start included).
    """

    MAX_STEPS = 50  # the loop is unrolled in the graph; more steps make an oversized graph

    def __init__(self, steps: int = 6, learning_rate: float = 0.1):
        if not 0 <= int(steps) <= self.MAX_STEPS:
            raise ValueError(f"steps must be between 0 and {self.MAX_STEPS}, got {steps}.")
        if not float(learning_rate) > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}.")
        self.steps = int(steps)
        self.learning_rate = float(learning_rate)

    def get_config(self) -> dict:
        return {"steps": self.steps, "learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config) -> "CodeRefinement":
        return cls(**config)

    def __repr__(self):
        return f"CodeRefinement(steps={self.steps}, learning_rate={self.learning_rate})"

    @staticmethod
    def check(model) -> None:
        """Raises ValueError when `model`'s decoder cannot be refined through: an adaptive
        solver's gradient (TFP's adjoint) cannot be traced row by row, and a batched one would
        make a row's code depend on its batchmates."""
        from tfode.solvers import AdaptiveSolver

        solver = model.decoder.solver
        if isinstance(solver, AdaptiveSolver):
            raise ValueError(f"CodeRefinement differentiates through the decoder, which the adaptive {solver.name!r} "
                             "solver cannot do row by row; use a fixed-grid solver (rk4, euler) or "
                             "PathSearch(refinement=None).")

    def __call__(self, model, tokens, codes=None) -> tf.Tensor:
        """`tokens` `[batch, L]` 0-padded ids → refined codes `[batch, units]`, started from
        `codes` (default: the encoder's codes of `tokens`)."""
        self.check(model)
        tokens = tf.convert_to_tensor(tokens, tf.int32)
        if codes is None:
            codes = model.encode(tokens)[0]
        codes = tf.stop_gradient(codes)
        if not self.steps:
            return codes
        inputs, targets = prepend_bos(tokens), append_eos(tokens)
        mask = tf.cast(targets != 0, codes.dtype)

        def row_losses(codes):  # [batch]: each row's summed token negative log-likelihood
            logits = model.decoder(codes, inputs, training=False).logits
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, tf.cast(logits, codes.dtype))
            return tf.reduce_sum(losses * mask, axis=1)

        # Each row keeps the best code it has seen, so a step too long for a row never makes it
        # worse than where it started. A Python loop: the gradient of a decoder's own loops
        # cannot sit inside a tf.while_loop.
        best, best_loss = codes, None
        for _ in range(self.steps):
            with tf.GradientTape() as tape:
                tape.watch(codes)
                losses = row_losses(codes)
                total = tf.reduce_sum(losses)  # rows do not interact: each code gets its own row's gradient
            best, best_loss = _keep_better(codes, losses, best, best_loss)
            codes = codes - self.learning_rate * tape.gradient(total, codes)
        best, _ = _keep_better(codes, row_losses(codes), best, best_loss)
        return tf.stop_gradient(best)


def _keep_better(codes, losses, best, best_loss):
    """Row by row, `codes` where its `losses` are lower than `best_loss` (all when None)."""
    if best_loss is None:
        return codes, losses
    better = losses < best_loss
    return tf.where(better[:, None], codes, best), tf.where(better, losses, best_loss)
