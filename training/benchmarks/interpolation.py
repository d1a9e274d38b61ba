"""Are the points of a latent path between two sentences sentences? One table from one command.

    python -m training.benchmarks.interpolation [--runs NAME=RUN_DIR ...] \\
        [--train NAME="FLAGS" ...] [--preset tatoeba-cpu] [--decoder odernn] [--budget 1800] \\
        [--data ../shared/data/fra-eng-dev.zip] [--pairs 200] [--points 9] [--seed 0] \\
        [--beam-width 1] [--out-dir runs/interpolation] [--results docs/interpolation.md]

`--train NAME="FLAGS"` trains `python -m training.train --preset PRESET --decoder DECODER --data DATA
--time-budget BUDGET FLAGS` into OUT_DIR/NAME first (an empty FLAGS is the preset itself);
`--runs` names runs trained before. Every run is then evaluated on its test split: free-running
token accuracy and exact match, and the latent path figures of `training.evaluation.path_metrics` on `--pairs`
seeded pairs with `--points` points per path, linear and slerp; sentences and paths are decoded
greedily, or by beam search with `--beam-width` above 1 (autoregressive decoders only). Fluency is
judged by a reference GRU language model trained on the training split (`training.evaluation.reference_lm`);
its calibration — held-out perplexity and the share of real, word-swapped and spliced sentences it
calls fluent — is printed beside the table. On the built-in grammar the share of grammatical interpolants is
exact. Prints the table and writes it, with example paths, to `--results`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from .common import DEFAULT_DATA, measured_on, relative_command, relative_path
from ..rundir import read_config
from .. import rundir

FIGURES = ("fluent", "grammatical", "new", "real", "gradual", "smooth", "smooth_bound", "monotone", "distinct",
           "endpoints", "seconds_per_path")
GRID_FIGURES = ("grid_distinct", "grid_fluent", "floor", "fluent_interior", "real_interior")


METHODS_CAPTION = (
    "Methods: `linear` and `slerp` decode 9 evenly spaced points of the straight latent path; the others "
    "are the model's `path` (`tfode.PathSearch`, settings in each run's `report-interpolation/metrics.json`): "
    "`placement` chooses 9 points "
    "of a 64-point grid of the slerp line by dynamic programming, `line` the same among the grid's sentences "
    "that the run's language model (`training.fit_language_model`) finds fluent, `path` leaves the line "
    "(candidates around it and the encoder's codes of the sentences spliced from the two ends' words, "
    "fluent ones only); each starts and ends at codes refined until they decode to "
    "the inputs (`tfode.CodeRefinement`). A search named `unspliced` is `path` without the spliced "
    "candidates, `unrefined` without the refined ends. fluent, real and "
    "grammatical count only the new points "
    "(interior points that differ from both ends; `new` is how many); seconds_per_path is `model.path` in "
    "process, 25 pairs a call.")
GRID_CAPTION = ("Each straight path decoded greedily on a fine grid of {grid} points: the distinct sentences "
                "strictly between its ends, the share of grid points that decode to a fluent sentence (the "
                "rest are holes), and the floor (the largest change between neighbouring grid points over "
                "the span: no placement of points on that line is more gradual). fluent_interior and "
                "real_interior count every interior point of the 9-point path, repeats of the ends included.")
STEPS_CAPTION = ("Where along a path its words change: the mean word edit distance of each step "
                 "(α_k → α_k+1) over the same paths. A path that covers its way evenly has equal steps; "
                 "gradual is the mean of each path's largest step over its span.")


def named(values, what):
    pairs = []
    for value in values or []:
        name, separator, rest = value.partition("=")
        if not separator or not name:
            raise ValueError(f"{what} takes NAME=VALUE, got {value!r}.")
        pairs.append((name, rest))
    return pairs


def named_searches(values) -> dict:
    """`{name: PathSearch}` from names of `tfode.paths.SEARCHES` and NAME=JSON settings
    (ValueError naming what is wrong)."""
    import json

    from tfode.paths import SEARCHES, PathSearch, search_from_name

    searches = {}
    for value in values or []:
        name, separator, settings = value.partition("=")
        if not separator:
            searches[name] = search_from_name(name)
            continue
        try:
            searches[name] = PathSearch(**json.loads(settings))
        except (json.JSONDecodeError, TypeError) as error:
            raise ValueError(f"--searches {value!r}: not PathSearch settings as JSON ({error}); names: "
                             f"{sorted(SEARCHES)}.") from None
    return searches


def train_run(name, flags, args) -> str:
    from .. import train

    run_dir = os.path.join(args.out_dir, name)
    command = ["--preset", args.preset, "--decoder", args.decoder, "--data", args.data,
               "--time-budget", str(args.budget), "--run-dir", run_dir, "--quiet", *shlex.split(flags)]
    if train.main(command + (["--overwrite"] if os.path.exists(run_dir) else [])) != 0:
        raise RuntimeError(f"training {name} failed: python -m training.train {' '.join(command)}")
    return run_dir


def table(rows, modes, figures=FIGURES, grid_only=False) -> list[str]:
    """One line per run and method (`modes`): its reconstruction and the path `figures`."""
    from ..evaluation.path_metrics import formatted

    def shown_value(name, values):
        if name not in values:
            return "–"
        if name == "seconds_per_path":
            return f"{values[name]:.3f}"
        return formatted(name, values[name], interval=False)

    shown = [name for name in figures if any(name in row["interpolation"][m] for row in rows for m in modes)]
    header = "| run | token acc | exact | method | " + " | ".join(shown) + " |"
    lines = [header, "|---|---:|---:|---|" + "---:|" * len(shown)]
    for row in rows:
        for mode in modes:
            values = row["interpolation"][mode]
            if grid_only and "grid_points" not in values:
                continue
            lines.append(
                f"| {row['name']} | {100 * row['token_accuracy']:.2f} % | {100 * row['exact_match']:.2f} % "
                f"| {mode} | " + " | ".join(shown_value(name, values) for name in shown) + " |")
    return lines


def step_table(rows, modes) -> list[str]:
    """Each run's mean word edits per step of its paths, one column per step."""
    alphas = rows[0]["interpolation"][modes[0]]["points"]
    labels = [f"{k / (alphas - 1):.3f} → {(k + 1) / (alphas - 1):.3f}" for k in range(alphas - 1)]
    lines = ["| run | mode | " + " | ".join(labels) + " |", "|---|---|" + "---:|" * len(labels)]
    for row in rows:
        for mode in modes:
            steps = row["interpolation"][mode].get("steps", [])
            lines.append(f"| {row['name']} | {mode} | " + " | ".join(f"{v:.2f}" for v in steps) + " |")
    return lines


def training_command(run_dir) -> str:
    """The `training.train` command that reproduces a run: its preset and the settings its
    configuration holds beyond that preset's (for its decoder)."""
    from .. import presets

    # A setting the run's configuration lacks did not exist when it was trained: it ran with the default.
    config = {**presets.DEFAULTS, **read_config(run_dir)}
    preset = config.get("preset")
    base = presets.resolve(preset, {"decoder": config["decoder"]})
    flags = [] if preset is None else ["--preset", preset]
    for key, value in sorted(config.items()):
        if key in presets.DEFAULTS and key not in ("decoder", "data") and base.get(key) != value:
            flag = "--" + key.replace("_", "-")
            flags += [flag] if value is True else [f"--no-{key.replace('_', '-')}"] if value is False else [flag, str(value)]
    return " ".join(["python -m training.train", *flags, "--decoder", config["decoder"],
                     "--data", relative_path(str(config["data"])), "--run-dir", relative_path(run_dir)])


def calibration_lines(judge) -> list[str]:
    from ..evaluation.path_metrics import formatted

    lines = ["| reference LM on the validation split | value |", "|---|---:|"]
    for key, value in judge.calibration.items():
        text = f"{value:.3f}" if isinstance(value, float) else formatted("fluent", value)
        lines.append(f"| {key} | {text} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.benchmarks.interpolation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", help="NAME=RUN_DIR of runs trained before")
    parser.add_argument("--train", nargs="+", help='NAME="FLAGS": runs to train first (default: none)')
    parser.add_argument("--preset", default="tatoeba-cpu", help="preset of the runs to train (default: tatoeba-cpu)")
    parser.add_argument("--decoder", default="odernn", help="decoder of the runs to train (default: odernn)")
    parser.add_argument("--budget", type=float, default=1800, help="training seconds per run (default: 1800)")
    parser.add_argument("--data", default=DEFAULT_DATA, help=f"data of the runs to train (default: {DEFAULT_DATA})")
    parser.add_argument("--pairs", type=int, default=200, help="seeded sentence pairs (default: 200)")
    parser.add_argument("--points", type=int, default=9, help="points per path, ends included (default: 9)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pairs (default: 0)")
    parser.add_argument("--searches", nargs="*", default=["placement", "line", "path"],
                        help="path searches measured beside the straight paths: names of tfode.paths.SEARCHES, or "
                             "NAME=JSON, a PathSearch's settings as JSON (default: placement line path)")
    parser.add_argument("--grid", type=int, default=129,
                        help="points of the fine grid each straight path is also decoded on, 0 = none (default: 129)")
    parser.add_argument("--beam-width", type=int, default=1,
                        help="beam search width of every decode, 1 = greedy (default: 1)")
    parser.add_argument("--cache-dir", help="reference LM cache (default: $TFODE_CACHE or ~/.cache/tfode)")
    parser.add_argument("--out-dir", default=os.path.join("runs", "interpolation"),
                        help="where runs are trained (default: runs/interpolation)")
    parser.add_argument("--results", default=os.path.join("docs", "interpolation.md"),
                        help="the Markdown file written (default: docs/interpolation.md)")
    args = parser.parse_args(argv)
    try:
        runs, to_train = named(args.runs, "--runs"), named(args.train, "--train")
        if not runs and not to_train:
            raise ValueError("Name at least one run: --runs NAME=RUN_DIR or --train NAME=FLAGS.")
        if args.pairs < 1 or args.points < 3 or args.beam_width < 1:
            raise ValueError("--pairs and --beam-width must be at least 1 and --points at least 3.")
        if args.grid < 0 or args.grid == 1:
            raise ValueError("--grid must be 0 or at least 2.")
        from tfode.paths import MAX_POINTS

        searches = named_searches(args.searches)
        if args.searches and args.points > MAX_POINTS:
            raise ValueError(f"A searched path has at most {MAX_POINTS} points; lower --points.")
        for _, run_dir in runs:
            if not os.path.exists(rundir.path(run_dir, rundir.CONFIG_FILE)):
                raise ValueError(f"{run_dir} is not a training run: config.json is missing.")
            if args.beam_width > 1 and read_config(run_dir).get("decoder") == "trajectory":
                raise ValueError(f"{run_dir} has the non-autoregressive trajectory decoder: it has no beam "
                                 "search; leave --beam-width at 1.")
        if args.beam_width > 1 and to_train and args.decoder == "trajectory":
            raise ValueError("The trajectory decoder has no beam search; leave --beam-width at 1.")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from .. import evaluate

    runs += [(name, train_run(name, flags, args)) for name, flags in to_train]
    judge = evaluate.fluency_judge(runs[0][1], cache_dir=args.cache_dir)
    rows = []
    for name, run_dir in runs:
        metrics = evaluate.evaluate(run_dir, beam_width=args.beam_width, interpolation_pairs=args.pairs,
                                    interpolation_steps=args.points, seed=args.seed, judge=judge,
                                    report_dir=os.path.join(run_dir, "report-interpolation"),
                                    grid_points=args.grid, searches=searches)
        rows.append({"name": name, "run_dir": run_dir, **metrics})
    modes = list(rows[0]["interpolation"])
    lines = table(rows, modes)
    grid = table(rows, modes, GRID_FIGURES, grid_only=True) if args.grid else []
    steps = step_table(rows, modes)
    print("\n".join(calibration_lines(judge)))
    print()
    print("\n".join(lines))
    print()
    print("\n".join(grid))
    print()
    print("\n".join(steps))
    command = relative_command("python -m training.benchmarks.interpolation",
                               argv if argv is not None else sys.argv[1:])
    grid_lines = ["", GRID_CAPTION.format(grid=args.grid), "", *grid] if grid else []
    write_results(args.results, rows, judge, lines + grid_lines + ["", STEPS_CAPTION, "", *steps], command,
                  args.beam_width)
    print(f"written to {args.results}")
    return 0


def write_results(path, rows, judge, lines, command, beam_width=1):
    first = rows[0]
    search = "greedy" if beam_width == 1 else f"by beam search of width {beam_width}"
    text = [
        "# Latent paths between sentences", "", measured_on(), "", f"    {command}", "",
        f"Data: {relative_path(first['data'])}, test split ({first['sentences']} sentences). "
        f"{first['interpolation'][next(iter(first['interpolation']))]['paths']} seeded pairs per run, "
        f"the same for every run; sentences, paths, token accuracy and exact match are decoded {search}, "
        "free-running. "
        "`training/evaluation/path_metrics.py` defines each figure; the runs' reports "
        "(`report-interpolation/report.md`) give the 95 % intervals.", "",
        METHODS_CAPTION, "", *calibration_lines(judge), "", *lines, "", "The runs were trained by:", "",
        *[f"- `{row['name']}`: `{training_command(row['run_dir'])}`" for row in rows], "",
    ]
    for row in rows:
        examples = row.get("_path_examples", {})
        for method, paths in examples.items():
            text += [f"Paths of `{row['name']}`, {method}:", ""]
            for sentences in paths:
                text += [*("    " + sentence for sentence in sentences), ""]
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w") as handle:
        handle.write("\n".join(text) + "\n")


if __name__ == "__main__":
    sys.exit(main())
