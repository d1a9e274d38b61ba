"""Evaluate a trained run: free-running reconstruction, hidden dynamics, latent interpolation.

    python -m training.evaluate --run-dir DIR [--data SOURCE] [--split test|validation|all]

Writes DIR/report/ (report.md, metrics.json, PNGs) and prints the metrics, a few
reconstructions and one interpolation. `--split all` evaluates every sentence of `--data`
(deduplicated, no length filter): an outside held-out set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import training  # noqa: F401  (sets the Keras backend before Keras loads)
from training.data import DataError
from training.rundir import RunError

FRACTIONS = [0.0, 0.25, 0.5, 0.75, 1.0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run-dir", required=True, help="a directory written by training.train")
    parser.add_argument("--data", help="data source (default: the run's own)")
    parser.add_argument("--split", choices=["test", "validation", "all"], default="test",
                        help="which sentences to evaluate (default test)")
    parser.add_argument("--limit", type=int, help="evaluate at most this many sentences")
    parser.add_argument("--beam-width", type=int, default=1,
                        help="beam search width for the autoregressive decoders (1 = greedy)")
    parser.add_argument("--batch-size", type=int, default=256, help="sentences per batch")
    parser.add_argument("--interpolation-pairs", type=int, default=50,
                        help="sentence pairs for the latent interpolation metrics")
    parser.add_argument("--interpolation-steps", type=int, default=7, help="points along each path")
    parser.add_argument("--report-dir", help="where to write the report (default RUN_DIR/report)")
    parser.add_argument("--metrics-out", help="also write every metric, examples included, to this JSON file")
    return parser


def evaluation_sentences(config, data, split):
    from training import data as loaders
    from training import pipeline

    loaded = loaders.load_sentences(data or config["data"], config["synthetic_size"], config["seed"])
    if split == "all":
        unique = list(dict.fromkeys(loaded.sentences))
        return unique, loaded.source
    splits = pipeline.prepare(loaded.sentences, config["min_words"], config["max_words"])
    return getattr(splits, split), loaded.source


def batches(ids, lengths, batch_size):
    for start in range(0, len(ids), batch_size):
        width = max(1, int(lengths[start : start + batch_size].max()))
        yield ids[start : start + batch_size, :width]


def evaluate(run_dir, data=None, split="test", limit=None, beam_width=1, batch_size=256,
             interpolation_pairs=50, interpolation_steps=7, report_dir=None) -> dict:
    import numpy as np
    import tensorflow as tf

    from training import grammar, report
    from training import metrics as scores
    from training.rundir import load_run
    from tfode.tokens import append_eos

    config, text, model = load_run(run_dir)
    # Compiled once per shape family: eager while-loops (beam search, ODE-RNN) are very slow.
    tokens_spec = tf.TensorSpec([None, None], tf.int32)
    teacher_forced = tf.function(lambda tokens: model(tokens), input_signature=[tokens_spec])
    reconstruct = tf.function(lambda tokens: model.reconstruct(tokens, beam_width=beam_width),
                              input_signature=[tokens_spec])
    trajectory = tf.function(lambda tokens, times: model.trajectory(tokens, times),
                             input_signature=[tokens_spec, tf.TensorSpec([None], tf.float32)])
    interpolate = tf.function(
        lambda start, end, alphas, mode: model.interpolate(start, end, alphas, mode=mode),
        input_signature=[tokens_spec, tokens_spec, tf.TensorSpec([None], tf.float32),
                         tf.TensorSpec([], tf.string)])
    sentences, source = evaluation_sentences(config, data, split)
    sentences = sentences[:limit] if limit else sentences
    if not sentences:
        raise DataError(f"No sentences to evaluate in the {split} split of {source}.")
    encoded = text.encode(sentences)
    ids, lengths = encoded.ids.numpy(), encoded.lengths.numpy()
    search = "greedy" if beam_width == 1 else f"beam {beam_width}"

    correct = total = exact = tf_correct = 0
    cross_entropy, nfe_sum, nfe_batches = 0.0, 0, 0
    hypotheses, references = [], []
    bands = scores.rank_bands(text.vocabulary_size)
    band_counts = np.zeros([len(bands), 2], np.int64)
    error_counts = np.zeros([len(scores.ERROR_KINDS), 2], np.int64)
    for tokens in batches(ids, lengths, batch_size):
        targets = append_eos(tokens).numpy()
        logits = teacher_forced(tokens)
        mask = targets != 0
        log_probs = tf.nn.log_softmax(logits).numpy()
        picked = np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
        cross_entropy -= float(picked[mask].sum())
        tf_correct += int(((log_probs.argmax(-1) == targets) & mask).sum())
        decoded = reconstruct(tokens)
        hits, count, matches = scores.token_matches(decoded.ids.numpy(), targets)
        correct, total, exact = correct + hits, total + count, exact + matches
        band_counts += np.array(scores.matches_by_band(decoded.ids.numpy(), targets, bands))
        error_counts += np.array(list(scores.error_kinds(decoded.ids.numpy(), targets).values()))
        nfe_sum, nfe_batches = nfe_sum + int(decoded.nfe), nfe_batches + 1
        hypotheses += [s.decode("utf-8") for s in text.decode(decoded.ids).numpy()]
        references += [s.decode("utf-8") for s in text.decode(tokens).numpy()]

    metrics = {
        "run_dir": run_dir, "data": source, "split": split, "sentences": len(sentences),
        "decoder": config["decoder"], "search": search,
        "truncated_sentences": int(encoded.truncated.numpy().sum()),
        "token_accuracy": correct / total,
        "exact_match": exact / len(sentences),
        "bleu": scores.bleu(hypotheses, references),
        "perplexity": float(np.exp(cross_entropy / total)),
        "teacher_forced_token_accuracy": tf_correct / total,
        # Sentences in a batch are solved together: each sees every evaluation of its batch.
        "nfe_per_sentence": nfe_sum / nfe_batches if model.is_ode else 0.0,
        # Free-running token accuracy by how frequent the target word is in the training text.
        "accuracy_by_frequency": [
            {"band": label, "tokens": int(count), "accuracy": float(hits / count) if count else None}
            for (label, _, _), (hits, count) in zip(bands, band_counts)
        ],
        # Sentences by how their free-running decode went wrong, and the target tokens each kind missed.
        "errors_by_kind": [
            {"kind": kind, "sentences": int(sentences), "tokens_missed": int(missed)}
            for kind, (sentences, missed) in zip(scores.ERROR_KINDS, error_counts)
        ],
    }

    report_dir = report_dir or os.path.join(run_dir, "report")
    os.makedirs(report_dir, exist_ok=True)
    pictures = []
    sample = ids[: min(256, len(ids))]
    sample = sample[:, : max(1, int(lengths[: len(sample)].max()))]
    sample_targets = append_eos(sample).numpy()
    span = model.decoder.time_span
    steps = sample_targets.shape[1]
    if model.is_ode:
        midpoint_times = (np.arange(1, steps, dtype="float32") + 0.5) * span
        _, midpoint_probabilities = trajectory(sample, midpoint_times)
        hits, count = scores.midpoint_hits(midpoint_probabilities.numpy(), sample_targets)
        metrics["midpoint_consistency"] = hits / max(count, 1)
        grid = (np.arange(1, steps, dtype="float32")[:, None] + np.array(FRACTIONS, "float32")) * span
        _, grid_probabilities = trajectory(sample, grid.reshape(-1))
        grid_probabilities = grid_probabilities.numpy().reshape(len(sample), steps - 1, len(FRACTIONS), -1)
        metrics["mass_transfer"] = scores.mass_transfer(grid_probabilities, sample_targets, FRACTIONS)

    # Pictures of the hidden dynamics (every decoder; the GRU's is a step function).
    fine_times = np.linspace(0.0, steps * span, 20 * steps + 1, dtype="float32")
    shown = sample[:4]
    states, probabilities = trajectory(shown, fine_times)
    token_times = np.arange(1, steps + 1) * span
    words = [[w.decode() for w in row] for row in text.tokens(append_eos(shown)).numpy()]
    labels = [[w for w in row if w != "<pad>"] for row in words]
    report.plot_trajectories(os.path.join(report_dir, "trajectories.png"), states.numpy(), fine_times,
                             token_times, labels, references[:4])
    first = labels[0]
    first_ids = [int(i) for i in append_eos(shown[:1]).numpy()[0] if i]
    report.plot_probability_heatmap(
        os.path.join(report_dir, "token_probabilities.png"),
        probabilities.numpy()[0][:, first_ids], fine_times, first, references[0])
    pictures += ["trajectories.png", "token_probabilities.png"]

    # Latent interpolation between pairs of sentences.
    pairs = min(interpolation_pairs, len(ids) // 2)
    metrics["interpolation"] = {}
    examples = {}
    if pairs:
        alphas = np.linspace(0.0, 1.0, interpolation_steps, dtype="float32")
        starts, ends = ids[:pairs], ids[pairs : 2 * pairs]
        width = max(1, int(max(lengths[: 2 * pairs].max(), 1)))
        for mode in ("linear", "slerp"):
            path = interpolate(starts[:, :width], ends[:, :width], alphas, tf.constant(mode))
            flat = path.ids.numpy().reshape(pairs * len(alphas), -1)
            decoded = np.array([s.decode() for s in text.decode(flat).numpy()]).reshape(pairs, len(alphas))
            start_text = [s.decode() for s in text.decode(starts).numpy()]
            end_text = [s.decode() for s in text.decode(ends).numpy()]
            endpoints = np.mean([(row[0] == a) + (row[-1] == b) for row, a, b in zip(decoded, start_text, end_text)]) / 2
            distinct = np.mean([len(set(row)) / len(alphas) for row in decoded])
            summary = {"pairs": pairs, "steps": len(alphas), "endpoint_exactness": float(endpoints),
                       "distinct_share": float(distinct)}
            if config["data"] == "synthetic" and not data:
                summary["grammatical_share"] = float(np.mean([grammar.accepts(s) for s in decoded[:, 1:-1].ravel()]))
            metrics["interpolation"][mode] = summary
            examples[mode] = list(zip(alphas.tolist(), decoded[0].tolist()))
            name = f"interpolation_{mode}.png"
            report.plot_interpolation_table(os.path.join(report_dir, name), alphas.tolist(),
                                            [list(row) for row in decoded[:3]], f"{mode} interpolation in latent space")
            pictures.append(name)

    reconstructions = list(zip(references[:8], hypotheses[:8]))
    report.write_report(report_dir, metrics, reconstructions, examples, pictures)
    metrics["_reconstructions"] = reconstructions
    metrics["_interpolation_example"] = examples.get("slerp") or examples.get("linear")
    return metrics


def print_metrics(metrics, report_dir) -> None:
    """A short summary: the headline metrics, three reconstructions, one interpolation, and
    where the report is (every metric is in its metrics.json)."""
    line = (f"{metrics['sentences']} {metrics['split']} sentences, {metrics['search']}: token accuracy "
            f"{100 * metrics['token_accuracy']:.1f} %, exact match {100 * metrics['exact_match']:.1f} %, "
            f"BLEU {metrics['bleu']:.1f}")
    if metrics.get("midpoint_consistency") is not None:
        line += f", midpoint consistency {100 * metrics['midpoint_consistency']:.1f} %"
    print(line)
    grammatical = metrics.get("interpolation", {}).get("slerp", {}).get("grammatical_share")
    if grammatical is not None:
        print(f"interpolants accepted by the grammar (slerp): {100 * grammatical:.1f} %")
    print("reconstructions (input → output):")
    for source, output in metrics["_reconstructions"][:3]:
        print(f"  {source} → {output}")
    if metrics.get("_interpolation_example"):
        print("interpolation (slerp) between two test sentences:")
        for alpha, sentence in metrics["_interpolation_example"]:
            print(f"  α={alpha:.2f}  {sentence}")
    print(f"report, pictures and every metric: {os.path.join(report_dir, 'report.md')}, metrics.json")


def evaluate_in_subprocess(run_dir, limit=None, beam_width=1, report_dir=None) -> dict:
    """`evaluate` in a fresh Python process, for benchmarks that train first: the evaluation
    sees only what the run directory holds, nothing left over from training in this process."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "metrics.json")
        command = [sys.executable, "-m", "training.evaluate", "--run-dir", run_dir,
                   "--beam-width", str(beam_width), "--metrics-out", out]
        if limit:
            command += ["--limit", str(limit)]
        if report_dir:
            command += ["--report-dir", report_dir]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        subprocess.run(command, check=True, cwd=root, stdout=subprocess.DEVNULL)
        with open(out) as handle:
            return json.load(handle)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.beam_width < 1 or args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        print("error: --beam-width, --batch-size and --limit must be positive", file=sys.stderr)
        return 2
    try:
        metrics = evaluate(args.run_dir, args.data, args.split, args.limit, args.beam_width, args.batch_size,
                           args.interpolation_pairs, args.interpolation_steps, args.report_dir)
    except (DataError, RunError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.metrics_out:
        with open(args.metrics_out, "w") as handle:
            json.dump(metrics, handle, default=lambda value: value.item())  # NumPy scalars
    print_metrics(metrics, args.report_dir or os.path.join(args.run_dir, "report"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
