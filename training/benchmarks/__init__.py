"""The benchmarks: each a command that prints a table and writes docs/ (`python -m
training.benchmarks.NAME`); shared code in `common`."""
