"""Train the language model a run's path search asks which sentences read as real text.

    python -m training.fit_language_model --run-dir DIR [--epochs 3] [--units 256] \\
        [--embedding-dim 64] [--quantile 0.05] [--seed 1]

Fits a `tfode.LanguageModel` over the run's own vocabulary on the run's training split (Keras
`fit`), sets its threshold to the `--quantile`-th score of the validation split's sentences (so
that 95 % of real sentences are fluent by default), and writes `DIR/language_model.keras`
atomically. `Seq2SeqODE.path`, `training.evaluate`, `training.benchmarks.interpolation` and
`training.export` use it when it is there. It is a model of its own (other settings and seed than
the reference language model that `training.evaluate --judge` trains to judge fluency).
"""

from __future__ import annotations

import argparse
import os
import sys

from .data import DataError
from .rundir import RunError


def fit(run_dir: str, epochs: int = 3, units: int = 256, embedding_dim: int = 64, quantile: float = 0.05,
        seed: int = 1, batch_size: int = 128, verbose: int = 2) -> dict:
    """Trains, calibrates and saves the run's language model; returns what it measured."""
    import keras

    from tfode.language_model import LanguageModel
    from tfode.losses import MaskedCrossEntropy
    from tfode.text import TextProcessor
    from tfode.tokens import append_eos
    from .run_data import run_sentences
    from .rundir import LANGUAGE_MODEL_FILE, read_config, save_model_atomically

    config = read_config(run_dir)
    text = TextProcessor.load(run_dir)
    train = run_sentences(config, None, "train").sentences
    validation = run_sentences(config, None, "validation").sentences
    if not train or not validation:
        raise DataError(f"{run_dir}'s data has no training or validation sentences.")
    keras.utils.set_random_seed(seed)
    model = LanguageModel(text.vocabulary_size, units=units, embedding_dim=embedding_dim)
    ids = text.encode(train).ids.numpy()
    model.compile(keras.optimizers.Adam(3e-3, clipnorm=1.0), loss=MaskedCrossEntropy())
    history = model.fit(ids, append_eos(ids).numpy(), batch_size=batch_size, epochs=epochs, verbose=verbose)
    threshold = model.calibrate(text.encode(validation).ids, quantile)
    save_model_atomically(model, os.path.join(run_dir, LANGUAGE_MODEL_FILE))
    return {"loss": float(history.history["loss"][-1]), "threshold": threshold,
            "train_sentences": len(train), "validation_sentences": len(validation)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.fit_language_model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="a directory written by training.train")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training split (default: 3)")
    parser.add_argument("--units", type=int, default=256, help="the GRU's width (default: 256)")
    parser.add_argument("--embedding-dim", type=int, default=64, help="the embedding's width (default: 64)")
    parser.add_argument("--quantile", type=float, default=0.05,
                        help="share of real validation sentences below the fluency threshold (default: 0.05)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the weights and the shuffling (default: 1)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.units < 1 or args.embedding_dim < 1 or not 0.0 <= args.quantile < 1.0:
        print("error: --epochs, --units and --embedding-dim must be positive and --quantile in [0, 1)",
              file=sys.stderr)
        return 2
    try:
        result = fit(args.run_dir, args.epochs, args.units, args.embedding_dim, args.quantile, args.seed)
    except (DataError, RunError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"language model: loss {result['loss']:.3f} after {args.epochs} epochs on {result['train_sentences']} "
          f"sentences; fluency threshold {result['threshold']:.3f} (mean log-probability per token) → "
          f"{os.path.join(args.run_dir, 'language_model.keras')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
