"""Walking the latent space between sentences: seeded pairs, decoded paths, their metrics and
pictures. Shared by `training.evaluate` and `training.benchmarks.interpolation`."""

from __future__ import annotations

import numpy as np

from . import path_metrics


def sample_pairs(count: int, pairs: int, seed: int) -> list[tuple[int, int]]:
    """`pairs` disjoint index pairs drawn from `range(count)` with `seed` (fewer when there are
    not enough sentences)."""
    order = np.random.default_rng(seed).permutation(count)
    pairs = min(pairs, count // 2)
    return [(int(order[2 * i]), int(order[2 * i + 1])) for i in range(pairs)]


class PathDecoder:
    """Decodes latent paths of a model with one compiled function per shape family: greedy, or
    beam search with `beam_width > 1` (autoregressive decoders only), as `model.decode` does."""

    def __init__(self, model, text, batch_size: int = 512, beam_width: int = 1):
        import tensorflow as tf

        self.model, self.text, self.batch_size, self.beam_width = model, text, batch_size, beam_width
        tokens = tf.TensorSpec([None, None], tf.int32)
        self._encode = tf.function(lambda ids: model.encode(ids)[0], input_signature=[tokens])
        self._decode = tf.function(lambda h0: model.decode(h0, beam_width=beam_width).ids,
                                   input_signature=[tf.TensorSpec([None, model.encoder.units], tf.float32)])

    def encode(self, ids: np.ndarray) -> np.ndarray:
        width = max(1, int((ids != 0).sum(1).max()))
        return np.concatenate([self._encode(ids[start : start + self.batch_size, :width]).numpy()
                               for start in range(0, len(ids), self.batch_size)])

    def decode(self, codes: np.ndarray) -> list[str]:
        sentences = []
        for start in range(0, len(codes), self.batch_size):
            ids = self._decode(codes[start : start + self.batch_size].astype("float32"))
            sentences += [s.decode("utf-8") for s in self.text.decode(ids).numpy()]
        return sentences

    def paths(self, starts: np.ndarray, ends: np.ndarray, alphas, mode: str) -> tuple[np.ndarray, list[list[str]]]:
        """`(codes [pairs, K, units], sentences [pairs][K])` along `mode` paths."""
        from tfode import interpolation

        codes = interpolation.interpolate(starts, ends, np.asarray(alphas, "float32"), mode).numpy()
        flat = self.decode(codes.reshape(-1, codes.shape[-1]))
        points = len(alphas)
        return codes, [flat[i * points : (i + 1) * points] for i in range(len(starts))]

    def searched_paths(self, ids_a: np.ndarray, ids_b: np.ndarray, points: int, search,
                       pairs_per_call: int = 25, language_model=None) -> tuple[np.ndarray, list[list[str]], float]:
        """`(codes [pairs, K, units], sentences [pairs][K], seconds per path)` of
        `model.path` with `search` (a `tfode.PathSearch`) and `language_model` (optional),
        `pairs_per_call` pairs a call; the time leaves out the first call's tracing."""
        import time

        import tensorflow as tf

        tokens = tf.TensorSpec([None, None], tf.int32)
        found = tf.function(lambda a, b, k: self.model.path(a, b, k, search=search, beam_width=self.beam_width,
                                                            language_model=language_model),
                            input_signature=[tokens, tokens, tf.TensorSpec([None], tf.int32)])
        width = max(1, int((ids_a != 0).sum(1).max()), int((ids_b != 0).sum(1).max()))
        found(ids_a[:1, :width], ids_b[:1, :width], tf.constant([points]))  # traced outside the timing
        codes, sentences, seconds = [], [], 0.0
        for start in range(0, len(ids_a), pairs_per_call):
            a, b = ids_a[start : start + pairs_per_call, :width], ids_b[start : start + pairs_per_call, :width]
            began = time.perf_counter()
            path = found(a, b, tf.fill([len(a)], points))
            seconds += time.perf_counter() - began
            shape = path.ids.shape
            printed = self.text.decode(tf.reshape(path.ids, [-1, shape[2]])).numpy()
            sentences += [[s.decode("utf-8") for s in printed[i * points : (i + 1) * points]] for i in range(len(a))]
            codes.append(path.codes.numpy())
        return np.concatenate(codes), sentences, seconds / max(len(ids_a), 1)


def measure(model, text, sentences, corpus, pairs=200, points=9, seed=0, modes=("linear", "slerp"),
            fluent=None, accepts=None, beam_width=1, grid=129, searches=None, language_model=None) -> dict:
    """Path metrics (`training.evaluation.path_metrics`) on `pairs` seeded pairs of `sentences`, `points`
    points per path decoded greedily or with `beam_width`: for each straight `mode`, beside the
    figures of its `grid`-point line decoded greedily (none with `grid` 0), and for each
    `name: tfode.PathSearch` of `searches` (the model's `path` asking `language_model`, if any,
    with its seconds per path).
    `accepts` (optional) tells whether a sentence is grammatical. Returns `{name: metrics}` and,
    under "_paths", the decoded paths and codes."""
    decoder = PathDecoder(model, text, beam_width=beam_width)
    ids = text.encode(list(sentences)).ids.numpy()
    printed = [s.decode("utf-8") for s in text.decode(ids).numpy()]
    chosen = sample_pairs(len(sentences), pairs, seed)
    codes = decoder.encode(ids)
    starts = codes[[a for a, _ in chosen]]
    ends = codes[[b for _, b in chosen]]
    inputs = [(printed[a], printed[b]) for a, b in chosen]
    alphas = np.linspace(0.0, 1.0, points)
    results = {"_paths": {}}

    def figures(paths):
        metrics = path_metrics.path_metrics(paths, inputs, corpus, fluent)
        if accepts is not None:
            flags = [accepts(s) for path in paths for s in path[1:-1]]
            metrics["grammatical_interior"] = path_metrics.share(flags)
            metrics["grammatical"] = path_metrics.share(
                flag for flag, new in zip(flags, path_metrics.new_flags(paths)) if new)
        return metrics

    greedy = PathDecoder(model, text) if beam_width != 1 else decoder
    for mode in modes:
        path_codes, paths = decoder.paths(starts, ends, alphas, mode)
        results[mode] = figures(paths)
        if grid:
            _, grid_paths = greedy.paths(starts, ends, np.linspace(0.0, 1.0, grid), mode)
            results[mode].update(path_metrics.grid_metrics(grid_paths, fluent))
        results["_paths"][mode] = {"alphas": alphas.tolist(), "paths": paths, "inputs": inputs,
                                   "codes": path_codes}
    for name, search in (searches or {}).items():
        path_codes, paths, seconds = decoder.searched_paths(
            ids[[a for a, _ in chosen]], ids[[b for _, b in chosen]], points, search,
            language_model=language_model)
        results[name] = {**figures(paths), "seconds_per_path": seconds, "search": search.get_config()}
        results["_paths"][name] = {"alphas": alphas.tolist(), "paths": paths, "inputs": inputs,
                                   "codes": path_codes}
    results["_codes"] = codes
    return results


def plot_paths(path, paths, alphas, title, rows=4):
    """One path per block, one sentence per α; the words that the previous α's sentence does not
    have at that place (by the edit alignment) in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = paths[:rows]
    lines = sum(len(p) + 1 for p in shown)
    figure, axis = plt.subplots(figsize=(10, 0.22 * lines + 0.6))
    axis.axis("off")
    y = 1.0
    step = 1.0 / (lines + 1)
    for number, sentences in enumerate(shown):
        axis.text(0.0, y, f"path {number + 1}", fontsize=8, weight="bold", family="monospace",
                  transform=axis.transAxes, va="top")
        y -= step
        previous = None
        for alpha, sentence in zip(alphas, sentences):
            x = 0.0
            axis.text(x, y, f"{alpha:.2f}", fontsize=7, family="monospace", transform=axis.transAxes, va="top")
            x = 0.07
            words = sentence.split()
            changed = path_metrics.changed_words(previous, sentence) if previous is not None else set()
            for index, word in enumerate(words):
                axis.text(x, y, word, fontsize=7, family="monospace", transform=axis.transAxes,
                          va="top", color="crimson" if index in changed else "black")
                x += 0.0085 * (len(word) + 1)
            previous = sentence
            y -= step
    axis.set_title(title, fontsize=9)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def plot_latent_projection(path, codes, paths_by_mode, count=4):
    """Sentences' codes h(0) projected on their two first principal components (grey), with a
    few linear and slerp paths drawn between pairs of them."""
    import matplotlib.pyplot as plt

    from .report import principal_projection, save_pca_figure

    project = principal_projection(codes)
    figure, axis = plt.subplots(figsize=(7, 6))
    cloud = project(codes)
    axis.scatter(cloud[:, 0], cloud[:, 1], s=3, color="0.8", label="sentences' h(0)")
    styles = {"linear": "-", "slerp": "--"}
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for mode, entry in paths_by_mode.items():
        for number, path_codes in enumerate(entry["codes"][:count]):
            points = project(path_codes)
            axis.plot(points[:, 0], points[:, 1], styles.get(mode, "-"), marker="o", markersize=3,
                      color=colours[number % len(colours)], label=f"{mode} path {number + 1}")
    save_pca_figure(figure, axis, "Latent codes and paths between sentences (PCA)", path)


def plot_alpha_family(path, model, text, start, end, alphas, mode="slerp", resolution=12):
    """The continuous family h_α(t) between two codes `start`, `end` `[units]`: for each α, the
    probability over time t of every word decoded anywhere along the path (rows), the decoder
    flowing from h_α(0) and folding in its own greedy words. One panel per α."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow as tf

    from tfode import interpolation
    from tfode.tokens import EOS_ID, prepend_bos

    codes = interpolation.interpolate(start[None], end[None], np.asarray(alphas, "float32"), mode)[0]
    decoded = model.decode(codes).ids.numpy()
    words = decoded * (decoded != EOS_ID)  # the sentence without <eos>, as `trajectory` reads it
    steps = int((decoded != 0).sum(1).max())
    times = np.linspace(0.0, steps * model.decoder.time_span, resolution * steps + 1, dtype="float32")
    _, logits = model.decoder.states_at(codes, times, prepend_bos(tf.constant(words[:, :steps])))
    probabilities = tf.nn.softmax(logits).numpy()  # [A, T, vocab]
    vocabulary = list(dict.fromkeys(int(i) for row in decoded for i in row if i))
    names = [t.decode() for t in text.tokens(np.array(vocabulary)).numpy()]
    figure, axes = plt.subplots(len(alphas), 1, figsize=(8, 1.1 + 0.16 * len(names) * len(alphas)), sharex=True)
    for axis, alpha, rows, sentence in zip(np.atleast_1d(axes), alphas, probabilities,
                                           text.decode(decoded).numpy()):
        axis.imshow(rows[:, vocabulary].T, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1,
                    extent=[times[0], times[-1], -0.5, len(names) - 0.5])
        axis.set_yticks(range(len(names)))
        axis.set_yticklabels(names, fontsize=5)
        axis.set_title(f"α = {alpha:.2f}: {sentence.decode()}", fontsize=7, loc="left")
    np.atleast_1d(axes)[-1].set_xlabel("time t (token k at t = k·Δt)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
