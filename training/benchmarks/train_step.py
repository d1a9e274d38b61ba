"""Train-step speed of the decoders: `python -m training.benchmarks.train_step`.

One batch of `--batch` random sentences of `--length` tokens, hidden `--units`, on this machine;
prints milliseconds per training step (median of `--steps` after `--warmup`), NFE per step and the
ratio to the discrete GRU baseline, all measured in one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


SETTINGS = [
    ("trajectory", "dopri5", {"solver": "dopri5"}),
    ("trajectory", "rk4 (2/token)", {"solver": "rk4", "steps_per_unit": 2.0}),
    ("trajectory", "rk4 (1/token)", {"solver": "rk4", "steps_per_unit": 1.0}),
    ("odernn", "rk4 (1/token)", {"solver": "rk4", "steps_per_unit": 1.0}),
    ("gru", "-", {}),
]


def time_train_steps(decoder, solver, args, tokens, targets):
    import keras

    from .. import builder, presets

    keras.utils.set_random_seed(0)
    config = presets.resolve(None, {"decoder": decoder, "units": args.units, "max_length": args.length,
                                    **solver})
    model = builder.build_model(config, args.vocab)
    model.compile(keras.optimizers.Adam(1e-3, clipnorm=1.0))
    for _ in range(args.warmup):
        model.train_on_batch(tokens, targets)
    durations, nfes = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        logs = model.train_on_batch(tokens, targets, return_dict=True)
        durations.append(time.perf_counter() - start)
        nfes.append(logs.get("nfe", 0))
    return 1000 * statistics.median(durations), statistics.mean(nfes)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.benchmarks.train_step", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64, help="sentences per step (default: %(default)s)")
    parser.add_argument("--length", type=int, default=14, help="tokens per sentence (default: %(default)s)")
    parser.add_argument("--units", type=int, default=256, help="hidden units (default: %(default)s)")
    parser.add_argument("--vocab", type=int, default=8000, help="vocabulary size (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (the median is printed) (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: %(default)s)")
    args = parser.parse_args(argv)
    from tfode.tokens import append_eos  # TensorFlow loads after the arguments are read

    rng = np.random.default_rng(0)
    tokens = rng.integers(4, args.vocab, size=(args.batch, args.length)).astype("int32")
    targets = append_eos(tokens)
    rows = [
        (decoder, label, *time_train_steps(decoder, solver, args, tokens, targets))
        for decoder, label, solver in SETTINGS
    ]
    baseline = next(ms for decoder, _, ms, _ in rows if decoder == "gru")
    print(
        f"train step, batch {args.batch} × {args.length} tokens, hidden {args.units}, "
        f"vocab {args.vocab}, {os.cpu_count()} CPU cores, median of {args.steps} steps"
    )
    print(f"| decoder | solver | step ms | NFE/step | × GRU |")
    print(f"|---|---|---:|---:|---:|")
    for decoder, label, ms, nfe in rows:
        print(f"| {decoder} | {label} | {ms:.0f} | {nfe:.0f} | {ms / baseline:.2f} |")


if __name__ == "__main__":
    main()
