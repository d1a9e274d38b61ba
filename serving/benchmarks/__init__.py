"""Benchmarks of the served model: each a command that prints its figures."""
