"""Pictures and the Markdown summary of an evaluation (matplotlib, PNG, no display needed)."""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def principal_projection(points):
    """The projection `[..., units]` → `[..., 2]` on the two first principal components of
    `points` `[n, units]`."""
    mean = points.mean(0)
    _, _, components = np.linalg.svd(points - mean, full_matrices=False)
    return lambda values: (values - mean) @ components[:2].T


def save_pca_figure(figure, axis, title, path):
    """Labels a principal-component plot, writes it to `path` and closes it."""
    axis.set_xlabel("PC 1")
    axis.set_ylabel("PC 2")
    axis.set_title(title)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_trajectories(path, states, times, token_times, labels, titles):
    """h(t) of a few sentences projected on their two first principal components.

    states: `[sentences, T, units]` at `times` `[T]`; token_times `[n]`; labels[i] the n tokens."""
    projected = principal_projection(states.reshape(-1, states.shape[-1]))(states)
    figure, axis = plt.subplots(figsize=(7, 6))
    for index, (curve, words, title) in enumerate(zip(projected, labels, titles)):
        line, = axis.plot(curve[:, 0], curve[:, 1], lw=1.5, label=title[:40])
        marks = [int(np.argmin(np.abs(times - t))) for t in token_times[: len(words)]]
        axis.scatter(curve[marks, 0], curve[marks, 1], color=line.get_color(), s=18, zorder=3)
        for mark, word in zip(marks, words):
            axis.annotate(word, curve[mark], fontsize=7, xytext=(3, 3), textcoords="offset points")
        axis.scatter(*curve[0], marker="s", color=line.get_color(), s=30)
    save_pca_figure(figure, axis, "Hidden trajectories h(t), PCA (■ h(0), ● token times)", path)


def plot_probability_heatmap(path, probabilities, times, token_names, sentence):
    """Token probabilities over continuous time for one sentence: rows = tokens, columns = t."""
    figure, axis = plt.subplots(figsize=(9, 0.35 * len(token_names) + 1.5))
    image = axis.imshow(
        probabilities.T, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1,
        extent=[times[0], times[-1], -0.5, len(token_names) - 0.5],
    )
    axis.set_yticks(range(len(token_names)))
    axis.set_yticklabels(token_names, fontsize=8)
    axis.set_xlabel("time t (token k at t = k·Δt)")
    axis.set_title(f"p(token | h(t)) for {sentence[:60]!r}", fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.03)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(directory, metrics, reconstructions, interpolations, pictures):
    """Writes `metrics.json` and `report.md` (embedding the PNGs named in `pictures`)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "metrics.json"), "w") as handle:
        json.dump(metrics, handle, indent=2)
    lines = [f"# Evaluation of `{metrics['run_dir']}`", "",
             f"{metrics['sentences']} sentences ({metrics['split']} split of {metrics['data']}), "
             f"decoder `{metrics['decoder']}`, free-running {metrics['search']} decoding.", "",
             "| metric | value |", "|---|---:|"]
    for key in ("token_accuracy", "exact_match", "bleu", "perplexity", "teacher_forced_token_accuracy",
                "midpoint_consistency", "nfe_per_sentence"):
        if metrics.get(key) is not None:
            lines.append(f"| {key} | {metrics[key]:.4g} |")
    if metrics.get("accuracy_by_frequency"):
        lines += ["", "## Token accuracy by how frequent the word is in training", "",
                  "| target | tokens | free-running accuracy |", "|---|---:|---:|"]
        lines += [f"| {band['band']} | {band['tokens']} | "
                  + (f"{band['accuracy']:.3f}" if band["accuracy"] is not None else "–") + " |"
                  for band in metrics["accuracy_by_frequency"]]
    if metrics.get("errors_by_kind"):
        lines += ["", "## How the sentences went wrong", "",
                  "| kind | sentences | target tokens missed |", "|---|---:|---:|"]
        lines += [f"| {row['kind']} | {row['sentences']} | {row['tokens_missed']} |"
                  for row in metrics["errors_by_kind"]]
    lines += ["", "## Reconstructions", "", "| input | output |", "|---|---|"]
    lines += [f"| {source} | {output} |" for source, output in reconstructions]
    if metrics.get("mass_transfer"):
        transfer = metrics["mass_transfer"]
        lines += ["", "## Probability mass between token k and k+1", "",
                  "| t − t_k (in Δt) | " + " | ".join(f"{f:.2f}" for f in transfer["fractions"]) + " |",
                  "|---|" + "---:|" * len(transfer["fractions"]),
                  "| p(token k) | " + " | ".join(f"{v:.3f}" for v in transfer["token_k"]) + " |",
                  "| p(token k+1) | " + " | ".join(f"{v:.3f}" for v in transfer["token_k_plus_1"]) + " |"]
    interpolation = metrics.get("interpolation", {})
    if interpolation:
        from .path_metrics import ORDER, formatted

        modes = list(interpolation)
        first = interpolation[modes[0]]
        lines += ["", "## Latent paths between sentences", "",
                  f"{first['paths']} seeded pairs of sentences, {first['points']} points per path; "
                  "95 % intervals in brackets (training/evaluation/path_metrics.py says what each figure means).", "",
                  "| figure | " + " | ".join(modes) + " |", "|---|" + "---:|" * len(modes)]
        for name in ORDER:
            if any(name in interpolation[m] for m in modes):
                lines.append(f"| {name} | " + " | ".join(
                    formatted(name, interpolation[m][name]) if name in interpolation[m] else "–" for m in modes) + " |")
        if "steps" in first:
            lines.append("| word edits of each step | "
                         + " | ".join(", ".join(f"{v:.2f}" for v in interpolation[m]["steps"]) for m in modes) + " |")
        for mode in modes:
            example = interpolations.get(mode)
            if example:
                lines += ["", f"A {mode} path:", "", "| α | sentence |", "|---:|---|"]
                lines += [f"| {alpha:.3f} | {sentence} |" for alpha, sentence in example]
    lines += [""] + [f"![{name}]({name})" for name in pictures]
    with open(os.path.join(directory, "report.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
