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

from .data import DataError
from .rundir import RunError
from . import rundir
from .run_data import run_sentences

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
                        help="beam search width of the autoregressive decoders' reconstructions and latent paths, "
                             "1 = greedy (default: 1)")
    parser.add_argument("--batch-size", type=int, default=256, help="sentences per batch (default: 256)")
    parser.add_argument("--interpolation-pairs", type=int, default=200,
                        help="seeded sentence pairs for the latent path metrics (default: 200)")
    parser.add_argument("--interpolation-steps", type=int, default=9,
                        help="points along each path, both ends included (default: 9)")
    parser.add_argument("--grid", type=int, default=129,
                        help="points of the fine grid each straight path is also decoded on, 0 = none (default: 129)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sentence pairs and samples (default: 0)")
    parser.add_argument("--judge", action="store_true",
                        help="also judge the interpolants' fluency with a reference language model "
                             "trained on the run's training split (trained once, then cached)")
    parser.add_argument("--cache-dir", help="where the reference language model is cached "
                                            "(default: $TFODE_CACHE or ~/.cache/tfode)")
    parser.add_argument("--report-dir", help="where to write the report (default RUN_DIR/report)")
    parser.add_argument("--metrics-out", help="also write every metric, examples included, to this JSON file")
    return parser


def batches(ids, lengths, batch_size):
    for start in range(0, len(ids), batch_size):
        width = max(1, int(lengths[start : start + batch_size].max()))
        yield ids[start : start + batch_size, :width]


def evaluate(run_dir, data=None, split="test", limit=None, beam_width=1, batch_size=256,
             interpolation_pairs=200, interpolation_steps=9, report_dir=None, seed=0, judge=None,
             grid_points=129, searches=None) -> dict:
    """Evaluates the run on `split`; `judge` (a `reference_lm.FluencyJudge`, optional) adds the
    share of fluent interpolants. Between two sentences it measures the linear and slerp paths
    (also on a `grid_points`-point line) and the model's `path` with each `name: tfode.PathSearch` of
    `searches` (default: `{"path": search_from_name("path")}`, the product's search), asking the run's language model when it has
    one (`training.fit_language_model`)."""
    import numpy as np
    import tensorflow as tf

    from . import grammar
    from .evaluation import report
    from .evaluation import scores
    from .rundir import load_language_model, load_run
    from tfode.tokens import append_eos

    config, text, model = load_run(run_dir)
    language_model = load_language_model(run_dir)
    # Compiled once per shape family: eager while-loops (beam search, ODE-RNN) are very slow.
    tokens_spec = tf.TensorSpec([None, None], tf.int32)
    teacher_forced = tf.function(lambda tokens: model(tokens), input_signature=[tokens_spec])
    reconstruct = tf.function(lambda tokens: model.reconstruct(tokens, beam_width=beam_width),
                              input_signature=[tokens_spec])
    trajectory = tf.function(lambda tokens, times: model.trajectory(tokens, times),
                             input_signature=[tokens_spec, tf.TensorSpec([None], tf.float32)])
    sentences, source, all_sentences, _ = run_sentences(config, data, split)
    if limit and limit < len(sentences):  # a seeded sample: files often list sentences shortest first
        keep = np.sort(np.random.default_rng(seed).permutation(len(sentences))[:limit])
        sentences = [sentences[i] for i in keep]
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

    report_dir = report_dir or rundir.path(run_dir, rundir.REPORT)
    os.makedirs(report_dir, exist_ok=True)
    pictures = []
    span = model.decoder.time_span
    if model.is_ode:
        # Every sentence, in batches: between tokens k and k+1 for k = 1 … n.
        hits = count = 0
        transfer = []
        for tokens in batches(ids, lengths, batch_size):
            targets = append_eos(tokens).numpy()
            steps = targets.shape[1]
            midpoint_times = (np.arange(1, steps, dtype="float32") + 0.5) * span
            _, midpoint_probabilities = trajectory(tokens, midpoint_times)
            batch_hits, batch_count = scores.midpoint_hits(midpoint_probabilities.numpy(), targets)
            hits, count = hits + batch_hits, count + batch_count
        metrics["midpoint_consistency"] = hits / max(count, 1)
        metrics["midpoints"] = count
        # The mass moving from token k to k+1, on a seeded sample of 256 sentences.
        sample = ids[np.random.default_rng(seed).permutation(len(ids))[:256]]
        sample = sample[:, : max(1, int((sample != 0).sum(1).max()))]
        sample_targets = append_eos(sample).numpy()
        steps = sample_targets.shape[1]
        grid = (np.arange(1, steps, dtype="float32")[:, None] + np.array(FRACTIONS, "float32")) * span
        _, grid_probabilities = trajectory(sample, grid.reshape(-1))
        grid_probabilities = grid_probabilities.numpy().reshape(len(sample), steps - 1, len(FRACTIONS), -1)
        metrics["mass_transfer"] = scores.mass_transfer(grid_probabilities, sample_targets, FRACTIONS)

    # Pictures of the hidden dynamics (every decoder; the GRU's is a step function), four
    # sentences drawn with the seed.
    shown_index = np.random.default_rng(seed).permutation(len(ids))[:4]
    shown = ids[shown_index]
    shown = shown[:, : max(1, int((shown != 0).sum(1).max()))]
    steps = shown.shape[1] + 1
    fine_times = np.linspace(0.0, steps * span, 20 * steps + 1, dtype="float32")
    states, probabilities = trajectory(shown, fine_times)
    token_times = np.arange(1, steps + 1) * span
    words = [[w.decode() for w in row] for row in text.tokens(append_eos(shown)).numpy()]
    labels = [[w for w in row if w != "<pad>"] for row in words]
    titles = [references[i] for i in shown_index]
    report.plot_trajectories(os.path.join(report_dir, "trajectories.png"), states.numpy(), fine_times,
                             token_times, labels, titles)
    first_ids = [int(i) for i in append_eos(shown[:1]).numpy()[0] if i]
    report.plot_probability_heatmap(
        os.path.join(report_dir, "token_probabilities.png"),
        probabilities.numpy()[0][:, first_ids], fine_times, labels[0], titles[0])
    pictures += ["trajectories.png", "token_probabilities.png"]

    # Latent paths between seeded pairs of sentences.
    from .evaluation import latent_paths

    examples = {}
    accepts = grammar.accepts if config["data"] == "synthetic" and not data else None
    corpus = {s.decode("utf-8") for s in text.decode(text.encode(all_sentences).ids).numpy()}
    from tfode.paths import search_from_name

    searches = {"path": search_from_name("path")} if searches is None else searches
    measured = latent_paths.measure(model, text, sentences, corpus, interpolation_pairs, interpolation_steps,
                                    seed, fluent=judge, accepts=accepts, beam_width=beam_width, grid=grid_points,
                                    searches=searches, language_model=language_model)
    metrics["language_model"] = language_model is not None
    paths = measured.pop("_paths")
    codes = measured.pop("_codes")
    metrics["interpolation"] = measured
    for mode, entry in paths.items():
        examples[mode] = list(zip(entry["alphas"], entry["paths"][0])) if entry["paths"] else []
        name = f"interpolation_{mode}.png"
        latent_paths.plot_paths(os.path.join(report_dir, name), entry["paths"], entry["alphas"],
                                f"{mode} paths between test sentences (changed words in red)")
        pictures.append(name)
    if paths and paths[next(iter(paths))]["paths"]:
        latent_paths.plot_latent_projection(os.path.join(report_dir, "latent_paths.png"), codes, paths)
        first = paths[next(iter(paths))]["codes"][0]
        latent_paths.plot_alpha_family(os.path.join(report_dir, "interpolant_dynamics.png"), model, text,
                                       first[0], first[-1], [0.0, 0.25, 0.5, 0.75, 1.0])
        pictures += ["latent_paths.png", "interpolant_dynamics.png"]

    reconstructions = list(zip(references[:8], hypotheses[:8]))
    report.write_report(report_dir, metrics, reconstructions, examples, pictures)
    metrics["_reconstructions"] = reconstructions
    metrics["_interpolation_example"] = examples.get("slerp") or examples.get("linear")
    metrics["_path_examples"] = {name: entry["paths"][:3] for name, entry in paths.items()}
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
    from .evaluation.path_metrics import summary_line

    for mode, figures in metrics.get("interpolation", {}).items():
        print(f"latent paths ({mode}, {figures['paths']} pairs, {figures['points']} points): {summary_line(figures)}")
    path = metrics.get("_path_examples", {}).get("path")
    if path:
        print("the model's path between two test sentences:")
        for sentence in path[0]:
            print(f"  {sentence}")
    print("reconstructions (input → output):")
    for source, output in metrics["_reconstructions"][:3]:
        print(f"  {source} → {output}")
    if metrics.get("_interpolation_example"):
        print("interpolation (slerp) between two test sentences:")
        for alpha, sentence in metrics["_interpolation_example"]:
            print(f"  α={alpha:.2f}  {sentence}")
    print(f"report, pictures and every metric: {os.path.join(report_dir, 'report.md')}, metrics.json")


def fluency_judge(run_dir, data=None, cache_dir=None):
    """The reference language model of the run's training split, and the fluency threshold from
    its validation split (`training.evaluation.reference_lm`)."""
    from .evaluation import reference_lm
    from .rundir import read_config

    config = read_config(run_dir)
    train_split = run_sentences(config, data, "train")
    validation = run_sentences(config, data, "validation").sentences
    lm = reference_lm.ReferenceLM.fit_or_load(train_split.sentences, cache_dir or reference_lm.default_cache_dir())
    printed = [s.decode("utf-8") for s in lm.text.decode(lm.text.encode(validation).ids).numpy()]
    return reference_lm.FluencyJudge(lm, printed)


def evaluate_in_subprocess(run_dir, limit=None, beam_width=1, report_dir=None) -> dict:
    """`evaluate` in a fresh Python process, for benchmarks that train first: the evaluation
    sees only what the run directory holds, nothing left over from training in this process."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "metrics.json")
        command = [sys.executable, "-m", f"{__package__}.evaluate", "--run-dir", run_dir,
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
    if (args.beam_width < 1 or args.batch_size < 1 or (args.limit is not None and args.limit < 1)
            or args.interpolation_pairs < 0 or args.interpolation_steps < 3 or args.grid < 0 or args.grid == 1):
        print("error: --beam-width, --batch-size and --limit must be positive, --interpolation-pairs "
              "at least 0, --interpolation-steps at least 3 and --grid 0 or at least 2", file=sys.stderr)
        return 2
    try:
        judge = fluency_judge(args.run_dir, args.data, args.cache_dir) if args.judge else None
        metrics = evaluate(args.run_dir, args.data, args.split, args.limit, args.beam_width, args.batch_size,
                           args.interpolation_pairs, args.interpolation_steps, args.report_dir,
                           args.seed, judge, args.grid)
    except (DataError, RunError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.metrics_out:
        with open(args.metrics_out, "w") as handle:
            json.dump(metrics, handle, default=lambda value: value.item())  # NumPy scalars
    print_metrics(metrics, args.report_dir or rundir.path(args.run_dir, rundir.REPORT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
