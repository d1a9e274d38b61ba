"""Evaluation of a trained run: scores, path metrics, the reference language model, latent paths
and the report (`training.evaluate` is the command)."""
