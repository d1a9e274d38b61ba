"""Export a trained run as a SavedModel for TF Serving and `tf.saved_model.load`.

    python -m training.export --run-dir DIR --export-base BASE --model-name NAME [--version N]

Writes BASE/NAME/N/ atomically (N defaults to the newest version + 1). Solver settings are fixed
here: `--solver`/`--rtol`/`--atol`/`--steps-per-unit` replace the training solver (e.g. a tighter
dopri5, or bdf for stiff dynamics), and are recorded in assets.extra/tfode.json. The run's
language model (`training.fit_language_model`), when it has one, travels inside the SavedModel
for the `path` signature.
"""

from __future__ import annotations

import argparse
import sys

from .presets import DEFAULTS
from .rundir import RunError

DEFAULT_LANDMARKS = 400  # enough for a readable map and its neighbours; small beside the model


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="a directory written by training.train")
    parser.add_argument("--export-base", required=True, help="the folder TF Serving watches")
    parser.add_argument("--model-name", required=True, help="the model's name in requests")
    parser.add_argument("--version", type=int, help="integer version (default: newest + 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--solver", help="inference solver, a name of tfode.solvers.SOLVERS (default: the training solver)")
    parser.add_argument("--rtol", type=float, help=f"dopri5/bdf relative tolerance (default: {DEFAULTS['rtol']})")
    parser.add_argument("--atol", type=float, help=f"dopri5/bdf absolute tolerance (default: {DEFAULTS['atol']})")
    parser.add_argument("--steps-per-unit", type=float, help=f"rk4/euler steps per token (default: {DEFAULTS['steps_per_unit']})")
    parser.add_argument("--beam-width", type=int, default=1,
                        help="beam search width for autoregressive decoders (default: 1, greedy)")
    parser.add_argument("--landmarks", type=int, default=DEFAULT_LANDMARKS,
                        help="test sentences whose codes the latent map (the landmarks and locate "
                             f"signatures) is fitted on; 0 = no map (default: {DEFAULT_LANDMARKS})")
    return parser


def landmark_sentences(run_dir: str, count: int, seed: int = 0) -> list[str]:
    """A seeded sample of `count` sentences of the run's test split (all of them if fewer)."""
    import random

    from .rundir import read_config
    from .run_data import run_sentences

    test = run_sentences(read_config(run_dir), split="test").sentences
    return test if len(test) <= count else random.Random(seed).sample(test, count)


def check_solver_flags(args) -> None:
    """Refuses solver flags that do not go with `--solver` (ValueError naming the flag): each
    solver says which settings it takes (`options`)."""
    from tfode import solvers

    given = [name for name in ("rtol", "atol", "steps_per_unit") if getattr(args, name) is not None]
    if args.solver is None:
        if given:
            raise ValueError("--rtol, --atol and --steps-per-unit go with --solver.")
        return
    if args.solver not in solvers.SOLVERS:
        raise ValueError(f"Unknown --solver {args.solver!r}; expected one of {sorted(solvers.SOLVERS)}.")
    options = solvers.SOLVERS[args.solver].options
    for name in given:
        if name not in options:
            raise ValueError(f"--{name.replace('_', '-')} does not apply here: the {args.solver} solver takes "
                             f"{', '.join('--' + option.replace('_', '-') for option in options)}.")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_solver_flags(args)
        if args.beam_width < 1:
            raise ValueError("--beam-width must be at least 1.")
        if args.landmarks < 0:
            raise ValueError("--landmarks must be 0 (no map) or more.")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from tfode.export import ExportError
    from tfode.paths import PathSearch, search_from_name
    from tfode.solvers import AdaptiveSolver
    from . import builder
    from .data import DataError
    from .serving_export import export_for_serving
    from .rundir import load_language_model, load_run

    try:
        _, text, model = load_run(args.run_dir)
        language_model = load_language_model(args.run_dir)
        if args.solver:
            given = {"rtol": args.rtol, "atol": args.atol, "steps_per_unit": args.steps_per_unit}
            solver = builder.inference_solver(
                args.solver, **{key: value for key, value in given.items() if value is not None}
            )
            model = model.with_solver(solver)
        search = search_from_name("path")  # the product's search: refined ends
        if isinstance(model.decoder.solver, AdaptiveSolver):  # no gradient through it row by row
            search = PathSearch(**{**search.get_config(), "refinement": None})
            print(f"note: the path signature's ends are the encoder's codes, unrefined: the "
                  f"{model.decoder.solver.name} solver cannot be differentiated row by row")
        try:
            landmarks = landmark_sentences(args.run_dir, args.landmarks) if args.landmarks else None
        except (DataError, FileNotFoundError, KeyError) as error:
            raise ExportError(f"the run's test sentences for the latent map cannot be read ({error!r}); "
                              "pass --landmarks 0 to export without a map") from None
        path = export_for_serving(model, text, args.export_base, args.model_name, args.version,
                                  args.overwrite, beam_width=args.beam_width, path_search=search,
                                  language_model=language_model, landmarks=landmarks)
    except (ExportError, RunError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    extras = [what for what, present in (("the run's language model", language_model is not None),
                                         (f"a latent map of {len(landmarks or [])} test sentences", bool(landmarks)))
              if present]
    print(f"exported {path}" + (f" (with {' and '.join(extras)})" if extras else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
