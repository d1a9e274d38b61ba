"""Does regularising the flow keep the adaptive solver's cost bounded? Same budget, one run.

    python -m training.benchmarks.regularization [--data ../shared/data/fra-eng-dev.zip] [--budget 600] \\
        [--settings none both] [--kinetic-energy 0.05] [--jacobian-norm 0.05] [--limit 1000] \\
        [--batch-size 128] [--out-dir runs/regularization] [--results docs/regularization.md]

Trains the trajectory decoder with the adaptive `dopri5` solver from the `tatoeba-cpu` preset
once per setting — `none`, `kinetic` (kinetic energy only), `jacobian` (Jacobian norm only),
`both` (Finlay et al. 2020) — for `--budget` seconds each, then evaluates it free-running on
the test split. Prints one table (the solver's NFE per training step early and late in the run,
from the run's nfe.csv; step time; accuracy; NFE per decoded sentence) and writes it to
`--results`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys

from .common import DEFAULT_DATA, data_missing, measured_on, relative_command, settings_line
from .. import rundir

SETTINGS = ("none", "kinetic", "jacobian", "both")


def weights(setting, args):
    kinetic = args.kinetic_energy if setting in ("kinetic", "both") else 0.0
    jacobian = args.jacobian_norm if setting in ("jacobian", "both") else 0.0
    return kinetic, jacobian


def run_config(setting, args) -> dict:
    """The training configuration of one setting: `tatoeba-cpu`'s trajectory decoder with
    `dopri5`, at the batch size asked for and without the preset's midpoint term (which needs a
    fixed-grid solver)."""
    from .. import presets

    kinetic, jacobian = weights(setting, args)
    config = presets.resolve("tatoeba-cpu", {
        "data": args.data, "decoder": "trajectory", "solver": "dopri5", "time_budget": args.budget,
        "epochs": args.epochs, "kinetic_energy": kinetic, "jacobian_norm": jacobian,
        "midpoint_weight": 0.0, "batch_size": args.batch_size,
    })
    config["preset"] = "tatoeba-cpu"
    return config


def run_one(setting, args):
    from .. import callbacks, evaluate, train

    run_dir = os.path.join(args.out_dir, setting)
    config = run_config(setting, args)
    if os.path.exists(run_dir):
        shutil.rmtree(run_dir)
    train.prepare_run_dir(run_dir, config, overwrite=False)
    summary = train.train(config, run_dir, verbose=2)
    nfe = [value for _, value in callbacks.read_nfe_log(rundir.path(run_dir, rundir.NFE_FILE))]
    quarter = max(1, len(nfe) // 4)
    metrics = evaluate.evaluate_in_subprocess(run_dir, limit=args.limit, beam_width=1)
    return {
        "setting": setting, "kinetic": config["kinetic_energy"], "jacobian": config["jacobian_norm"],
        "config": config, "train": summary,
        "nfe_early": statistics.median(nfe[:quarter]) if nfe else float("nan"),
        "nfe_late": statistics.median(nfe[-quarter:]) if nfe else float("nan"),
        "nfe_max": max(nfe) if nfe else float("nan"),
        "metrics": metrics,
    }


def table(results) -> list[str]:
    lines = [
        "| setting | λ kinetic | λ Jacobian | steps | wall ms / step | training NFE / step, first quarter "
        "| last quarter | max | token acc | exact | BLEU | NFE / sentence |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        metrics = result["metrics"]
        lines.append(
            f"| {result['setting']} | {result['kinetic']:g} | {result['jacobian']:g} "
            f"| {result['train']['steps']} | {result['train']['step_ms']:.0f} "
            f"| {result['nfe_early']:.0f} | {result['nfe_late']:.0f} | {result['nfe_max']:.0f} "
            f"| {100 * metrics['token_accuracy']:.1f} % | {100 * metrics['exact_match']:.1f} % "
            f"| {metrics['bleu']:.1f} | {metrics['nfe_per_sentence']:.0f} |"
        )
    return lines


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog="python -m training.benchmarks.regularization", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--data", default=DEFAULT_DATA, help="the Tatoeba zip (or any data source) (default: %(default)s)")
    result.add_argument("--budget", type=float, default=600, help="training seconds per setting (default: %(default)s)")
    result.add_argument("--epochs", type=int, default=1000, help="epoch cap (the budget normally ends training) (default: %(default)s)")
    result.add_argument("--settings", nargs="+", default=["none", "both"], choices=SETTINGS,
                        help="regularisers to compare (default: %(default)s)")
    result.add_argument("--kinetic-energy", type=float, default=0.05, help="λ of the kinetic energy (default: %(default)s)")
    result.add_argument("--jacobian-norm", type=float, default=0.05, help="λ of the Jacobian norm (default: %(default)s)")
    result.add_argument("--limit", type=int, default=1000, help="test sentences to evaluate (default: %(default)s)")
    result.add_argument("--batch-size", type=int, default=128,
                        help="sentences per batch (docs/regularization.md was measured at 128) (default: %(default)s)")
    result.add_argument("--out-dir", default=os.path.join("runs", "regularization"), help="where runs are trained (default: %(default)s)")
    result.add_argument("--results", default=os.path.join("docs", "regularization.md"), help="the Markdown file written (default: %(default)s)")
    return result


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if data_missing(args.data):
        return 2
    results = [run_one(setting, args) for setting in args.settings]
    lines = table(results)
    print("\n".join(lines))
    command = relative_command("python -m training.benchmarks.regularization", argv if argv is not None else sys.argv[1:])
    text = [
        "# Regularising the flow: NFE of the adaptive solver",
        "",
        measured_on(),
        "",
        f"    {command.strip()}",
        "",
        f"The trajectory decoder (preset `tatoeba-cpu`: {settings_line(results[0]['config'])}) "
        "trained with `dopri5` (rtol "
        f"{results[0]['config']['rtol']:g}, atol {results[0]['config']['atol']:g}) for {args.budget:.0f} s "
        "per setting, one after the other. Training NFE per step is the solver's count in single "
        "steps, sampled every 25 steps (the run's nfe.csv); token accuracy, exact match, BLEU and "
        f"NFE per sentence are free-running greedy decoding of {results[0]['metrics']['sentences']} "
        "test sentences with dopri5. The regularisers (Finlay et al. 2020) integrate "
        "∫||f||²/units dt and ∫||εᵀ∂f/∂h||²/units dt alongside the state (`tfode/regularization.py`).",
        "",
        *lines,
        "",
    ]
    os.makedirs(os.path.dirname(args.results) or ".", exist_ok=True)
    with open(args.results, "w") as handle:
        handle.write("\n".join(text) + "\n")
    print(f"written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
