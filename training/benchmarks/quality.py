"""Quality on real text: the ODE decoders against the discrete GRU, same budget, one run.

    python -m training.benchmarks.quality [--data ../shared/data/fra-eng-dev.zip] [--budget 1800] \\
        [--decoders trajectory odernn gru] [--out-dir runs/quality] [--results docs/results.md]

Each decoder trains from the `tatoeba-cpu` preset (same encoder, same width) for `--budget`
seconds of wall-clock time, one after the other on this machine, then is evaluated free-running
(greedy; beam search too for the autoregressive decoders) on the test split, which no model
trains on. Prints one table and writes it, with the command line, date, machine and the plots
of the best ODE run, to `--results`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import NamedTuple

from .common import (
    DEFAULT_DATA, data_missing, measured_on, relative_command, relative_path, settings_line,
)
from .. import rundir

def run_one(decoder, args):
    from .. import evaluate, presets, train

    run_dir = os.path.join(args.out_dir, decoder)
    config = presets.resolve("tatoeba-cpu", {
        "data": args.data, "decoder": decoder, "time_budget": args.budget, "epochs": args.epochs,
    })
    config["preset"] = "tatoeba-cpu"
    summary_path = os.path.join(run_dir, "train_summary.json")
    if args.reuse and os.path.exists(summary_path):
        with open(summary_path) as handle:
            summary = json.load(handle)  # trained by an earlier run with the same settings
    else:
        if os.path.exists(run_dir):
            shutil.rmtree(run_dir)
        train.prepare_run_dir(run_dir, config, overwrite=False)
        summary = train.train(config, run_dir, verbose=2)
    greedy = evaluate.evaluate_in_subprocess(run_dir, limit=args.limit, beam_width=1)
    beam = None
    if decoder != "trajectory" and args.beam_width > 1:
        beam = evaluate.evaluate_in_subprocess(run_dir, limit=args.limit, beam_width=args.beam_width,
                                               report_dir=os.path.join(run_dir, "report-beam"))
    return {"decoder": decoder, "config": config, "train": summary, "greedy": greedy, "beam": beam}


def decoder_settings(config) -> str:
    """How a run's decoder was set up, e.g. "gated field, rk4 1/token": its ODE, and the
    midpoint term, the context input, scheduled sampling and label smoothing where it had them."""
    from tfode.solvers import SOLVERS

    parts = []
    if config["decoder"] != "gru":
        takes_steps = "steps_per_unit" in SOLVERS[config["solver"]].options
        steps = f" {config['steps_per_unit']:g}/token" if takes_steps else ""
        parts.append(f"{config['field_type']} field, {config['solver']}{steps}")
        if config["kinetic_energy"] or config["jacobian_norm"]:
            parts.append(f"λ kinetic {config['kinetic_energy']:g}, λ Jacobian {config['jacobian_norm']:g}")
    if config.get("midpoint_weight"):
        parts.append(f"midpoint term λ {config['midpoint_weight']:g}")
    if config.get("scheduled_sampling"):
        parts.append(f"scheduled sampling 0 → {config['scheduled_sampling']:g}")
    if config.get("label_smoothing"):
        parts.append(f"label smoothing {config['label_smoothing']:g}")
    return ", ".join(parts) or "–"


def table(results) -> list[str]:
    lines = [
        "| decoder | decoder settings | search | parameters | token acc | exact | BLEU | perplexity "
        "| teacher-forced acc | midpoint consistency | NFE / sentence | wall ms / step | steps |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for search, metrics in (("greedy", result["greedy"]), (f"beam", result["beam"])):
            if metrics is None:
                continue
            midpoint = metrics.get("midpoint_consistency")
            lines.append(
                f"| {result['decoder']} | {decoder_settings(result['config'])} | {metrics['search']} "
                f"| {result['train']['parameters']:,} "
                f"| {100 * metrics['token_accuracy']:.1f} % | {100 * metrics['exact_match']:.1f} % "
                f"| {metrics['bleu']:.1f} | {metrics['perplexity']:.2f} "
                f"| {100 * metrics['teacher_forced_token_accuracy']:.1f} % "
                f"| {'' if midpoint is None else f'{100 * midpoint:.1f} %'} "
                f"| {metrics['nfe_per_sentence']:.0f} | {result['train']['step_ms']:.0f} "
                f"| {result['train']['steps']} |"
            )
    return lines


class Check(NamedTuple):
    name: str
    value: float
    goal: float

    @property
    def met(self) -> bool:
        return self.value >= self.goal

    def line(self) -> str:
        verdict = "met" if self.met else f"missed by {100 * (self.goal - self.value):.2f} points"
        return f"- {self.name}: {100 * self.value:.2f} % against {100 * self.goal:.2f} % — {verdict}"


def target_checks(results) -> tuple[list[Check], list[Check]]:
    """The quality targets against these results, free-running: `(greedy checks, beam checks)`.
    Greedy: the best ODE decoder ≥ 95 % token accuracy and ≥ the GRU's, the ODE-RNN ≥ the GRU on
    token accuracy and exact match, every ODE decoder's midpoint consistency ≥ 90 %. Beam: the
    best ODE decoder's beam search ≥ 95 %."""
    by_decoder = {result["decoder"]: result["greedy"] for result in results}
    checks = []
    ode = {name: m for name, m in by_decoder.items() if name != "gru"}
    if ode:
        best_name = max(ode, key=lambda name: ode[name]["token_accuracy"])
        best = ode[best_name]["token_accuracy"]
        checks.append(Check(f"best ODE decoder ({best_name}) token accuracy ≥ 95 %", best, 0.95))
        if "gru" in by_decoder:
            checks.append(Check(f"best ODE decoder ({best_name}) token accuracy ≥ the GRU's", best,
                                by_decoder["gru"]["token_accuracy"]))
    if "odernn" in by_decoder and "gru" in by_decoder:
        for key, label in (("token_accuracy", "token accuracy"), ("exact_match", "exact match")):
            checks.append(Check(f"ODE-RNN {label} ≥ the GRU's", by_decoder["odernn"][key], by_decoder["gru"][key]))
    for name, metrics in ode.items():
        checks.append(Check(f"{name} midpoint consistency ≥ 90 %", metrics["midpoint_consistency"], 0.90))
    beam_checks = []
    beams = [(r["decoder"], r["beam"]) for r in results if r["decoder"] != "gru" and r["beam"]]
    if beams:
        name, beam = max(beams, key=lambda pair: pair[1]["token_accuracy"])
        beam_checks.append(Check(f"best ODE decoder ({name}), {beam['search']}, token accuracy ≥ 95 %",
                                 beam["token_accuracy"], 0.95))
    return checks, beam_checks


def target_lines(results) -> list[str]:
    checks, beam_checks = target_checks(results)
    lines = ["Targets, greedy decoding:", "", *(check.line() for check in checks)]
    if beam_checks:
        lines += ["", "Beam search is free-running too; the greedy lines above are the strict reading:",
                  "", *(check.line() for check in beam_checks)]
    return lines


def write_results(path, results, command, lines):
    directory = os.path.dirname(path) or "."
    pictures_dir = os.path.join(directory, "results")
    os.makedirs(pictures_dir, exist_ok=True)
    ode = [r for r in results if r["decoder"] != "gru"]
    best = max(ode, key=lambda r: r["greedy"]["token_accuracy"]) if ode else None
    pictures = []
    if best:
        report_dir = rundir.path(best["greedy"]["run_dir"], rundir.REPORT)
        for name in sorted(os.listdir(report_dir)):
            if name.endswith(".png"):
                shutil.copy(os.path.join(report_dir, name), os.path.join(pictures_dir, name))
                pictures.append(name)
    first = results[0]
    text = [
        "# Quality on real text",
        "",
        measured_on(),
        "",
        f"    {command}",
        "",
        f"Data: {relative_path(first['greedy']['data'])}, English column, deduplicated, "
        f"{first['config']['min_words']}–{first['config']['max_words']} words, hash split; test split "
        f"{first['greedy']['sentences']} sentences, never trained on. Each model trained for "
        f"{first['config']['time_budget']:.0f} s of wall-clock time (preset `tatoeba-cpu`: "
        f"{settings_line(first['config'])}), one after the other. Token accuracy, exact match, "
        "BLEU and NFE are free-running (no teacher forcing); "
        "perplexity and teacher-forced accuracy are teacher-forced, labelled so. Wall ms per step "
        "includes validation."
        + (" With `--reuse`, runs already trained in the output folder by an earlier invocation "
           "of the same settings were evaluated, not trained again." if "--reuse" in command else ""),
        "",
        *lines,
        "",
        *target_lines(results),
        "",
    ]
    if best:
        text += [f"## Pictures of the best ODE run ({best['decoder']})", ""]
        text += [f"![{name}](results/{name})" for name in pictures]
        text += [""]
        example = best["greedy"].get("_interpolation_example")
        if example:
            text += ["Latent interpolation (slerp) between two test sentences:", "", "| α | decoded |", "|---:|---|"]
            text += [f"| {alpha:.2f} | {sentence} |" for alpha, sentence in example]
            text += [""]
        text += ["Reconstructions (test split, greedy):", "", "| input | output |", "|---|---|"]
        text += [f"| {source} | {output} |" for source, output in best["greedy"]["_reconstructions"][:8]]
    with open(path, "w") as handle:
        handle.write("\n".join(text) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.benchmarks.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="the Tatoeba zip (or any data source) (default: %(default)s)")
    parser.add_argument("--budget", type=float, default=1800, help="training seconds per model (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=1000, help="epoch cap (the budget normally ends training) (default: %(default)s)")
    parser.add_argument("--decoders", nargs="+", default=["trajectory", "odernn", "gru"],
                        choices=["trajectory", "odernn", "gru"], help="decoders to train and compare (default: %(default)s)")
    parser.add_argument("--beam-width", type=int, default=4, help="beam width of the beam-search columns (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="evaluate on at most this many test sentences")
    parser.add_argument("--out-dir", default=os.path.join("runs", "quality"), help="where runs are trained (default: %(default)s)")
    parser.add_argument("--reuse", action="store_true",
                        help="evaluate runs already trained in --out-dir instead of training them again")
    parser.add_argument("--results", default=os.path.join("docs", "results.md"), help="the Markdown file written (default: %(default)s)")
    args = parser.parse_args(argv)
    if data_missing(args.data):
        return 2
    results = [run_one(decoder, args) for decoder in args.decoders]
    lines = table(results)
    print("\n".join(lines))
    command = relative_command("python -m training.benchmarks.quality", argv if argv is not None else sys.argv[1:])
    write_results(args.results, results, command.strip(), lines)
    print(f"written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
