"""The product's path between two sentences: K sentences from A′ to B′, each the model's decode
of a latent point, each new, a few words from its neighbours and closer to B′ than the last.

A straight latent line decodes to runs of repeated sentences broken by jumps, and some of its
points fall in holes (codes no sentence encodes to). `PathSearch` leaves the line:

1. **Candidates.** `grid - 1` interior points of the linear or slerp line between the codes a
   and b, each also moved off the line in `directions` fixed directions orthogonal to it, at
   each of `radii` (a fraction of ‖b − a‖); and, with `splices`, the encoder's codes of the
   sentences on the word line from A′ to B′ (B′'s first i words then the rest of A′ from the
   matching place, and A′'s first i words then the rest of B′), whose decodes lie a few words
   apart where the latent line jumps. Every candidate is decoded greedily; duplicates and
   sentences equal to A′ or B′ are dropped.
2. **On the manifold.** A candidate sentence s is re-encoded and decoded again; with
   `fixed_points`, only sentences that come back unchanged (dec(enc(s)) = s, so s is where the
   autoencoder's codes of real sentences live, not a hole) may be chosen, and no sentence with
   `<unk>`. Such a point's code is enc(s), which decodes to s.
3. **Fluent** (given a `tfode.LanguageModel`): with `fluent_only`, only sentences the language
   model scores at least at its `threshold` (as likely per token as most real sentences) may be
   chosen.
4. **Dynamic programming** over the candidates picks K − 2 interior points in order: each step
   must keep the word distance to A′ from falling and to B′ from rising, and change at least one
   of them (so no point repeats); the cost is the sum of the word edit distances of the steps,
   each to the power `step_exponent` (squared by default) plus `length_weight` times it, plus, for each point, `detour_weight` · (d(A′, s) + d(s, B′) − d(A′, B′)),
   `confidence_weight` · (the decoder's mean negative log-probability of s) and
   `fluency_weight` · (the language model's). A row with too few candidates repeats a point (at
   a cost of `REPEAT_COST` a repeat) rather than break a rule.

Everything runs in the TensorFlow graph (the serving `path` signature calls it); the
perturbations are one fixed set of directions for every row, so a row's path depends only on its
own inputs, never on its batchmates. `PathSearch(directions=0, splices=False)` is the baseline:
the best placement of K points on a fine grid of the line.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf

from tfode import interpolation
from tfode.inversion import CodeRefinement
from tfode.tokens import EOS_ID, PAD_ID, UNK_ID

MAX_POINTS = 33  # the most points one path may ask for (serving refuses more)
REPEAT_COST = 1e7  # a repeated point costs more than any path of distinct points (32 steps of 20 words, ^4)
_UNREACHABLE = 1e12


class SentencePath(NamedTuple):
    """Paths between rows of two batches.

    ids: `[batch, P, steps]` int32, each point's sentence (up to `<eos>`, then 0); P is the
      batch's largest number of points, and a row asking for fewer has all-zero points after
      its last.
    lengths: `[batch, P]` int32, tokens before `<eos>` (0 past a row's last point).
    codes: `[batch, P, units]` float32, the latent code each sentence is the decode of.
    points: `[batch]` int32, the number of points of each row.
    """

    ids: tf.Tensor
    lengths: tf.Tensor
    codes: tf.Tensor
    points: tf.Tensor


@keras.saving.register_keras_serializable(package="tfode")
class PathSearch:
    """How `Seq2SeqODE.path` finds a path (see the module docstring).

    Args:
      mode: the line the candidates lie around, "linear" or "slerp".
      grid: the line is cut into `grid` equal parts (`grid - 1` interior points, >= 2).
      directions: fixed random directions orthogonal to the line per interior point (>= 0).
      radii: distances off the line, each a fraction of ‖b − a‖ (each > 0).
      fixed_points: only sentences that decode back to themselves after re-encoding (and have
        no `<unk>`) may be interior points.
      detour_weight: the cost of a point's detour in words (>= 0).
      confidence_weight: the cost of the decoder's mean negative log-probability of a point's
        sentence (>= 0).
      fluency_weight: the cost of a language model's mean negative log-probability of a point's
        sentence (>= 0), when the call is given one.
      fluent_only: with a language model, only sentences it finds fluent may be interior points.
      step_exponent: a step of d words costs d ** step_exponent (1 … 4): 2 spreads the change,
        higher values charge the largest step more.
      length_weight: each step also costs `length_weight` · d (>= 0), so that the path's length,
        and with it its detours (Σ d − d(A′, B′)), is charged.
      seed: the seed of the directions (the same for every row and every call).
      refinement: a `CodeRefinement` (or its config), or None: the two ends' codes are refined
        from the encoder's so that they decode to the inputs (the path runs between them), which
        needs a decoder without an adaptive solver.
      refined_line: the candidates lie around the line between the refined codes (True) or
        between the encoder's codes (False), the ends being the refined codes either way.
      splices: also the encoder's codes of the sentences on the word line from A′ to B′ — B′'s
        first i words then A′'s from the matching place, and A′'s first i words then B′'s, for
        every i — are candidates (their decodes, like every candidate's, are the points).
    """

    def __init__(self, mode: str = "slerp", grid: int = 24, directions: int = 6,
                 radii=(0.1, 0.2, 0.35), fixed_points: bool = False, detour_weight: float = 1.0,
                 confidence_weight: float = 1.0, fluency_weight: float = 1.0, fluent_only: bool = True,
                 step_exponent: float = 2.0, length_weight: float = 0.0, seed: int = 0,
                 refinement=None, refined_line: bool = False, splices: bool = True):
        if mode not in interpolation.MODES:
            raise ValueError(f"mode must be one of {interpolation.MODES}, got {mode!r}.")
        if int(grid) < 2:
            raise ValueError(f"grid must be >= 2, got {grid}.")
        if int(directions) < 0:
            raise ValueError(f"directions must be >= 0, got {directions}.")
        radii = tuple(float(r) for r in radii)
        if int(directions) and (not radii or any(not r > 0 for r in radii)):
            raise ValueError(f"radii must be positive fractions of the line's length, got {radii}.")
        for name, value in (("detour_weight", detour_weight), ("confidence_weight", confidence_weight),
                            ("fluency_weight", fluency_weight), ("length_weight", length_weight)):
            if not float(value) >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}.")
        self.mode = mode
        self.grid = int(grid)
        self.directions = int(directions)
        self.radii = radii if self.directions else ()
        self.fixed_points = bool(fixed_points)
        self.detour_weight = float(detour_weight)
        self.confidence_weight = float(confidence_weight)
        self.fluency_weight = float(fluency_weight)
        self.fluent_only = bool(fluent_only)
        if not 1.0 <= float(step_exponent) <= 4.0:
            raise ValueError(f"step_exponent must be in [1, 4], got {step_exponent}.")
        self.step_exponent = float(step_exponent)
        self.length_weight = float(length_weight)
        self.seed = int(seed)
        if isinstance(refinement, dict):
            refinement = CodeRefinement.from_config(refinement)
        if refinement is not None and not isinstance(refinement, CodeRefinement):
            raise TypeError(f"refinement must be a CodeRefinement or None, got {type(refinement).__name__}.")
        self.refinement = refinement
        self.refined_line = bool(refined_line)
        self.splices = bool(splices)

    @property
    def candidates_per_row(self) -> int:
        """Points around the line decoded per path, its two ends left out (with `splices`,
        2 · (steps + 1) codes of spliced sentences come on top)."""
        return (self.grid - 1) * (1 + self.directions * len(self.radii))

    def get_config(self) -> dict:
        return {"mode": self.mode, "grid": self.grid, "directions": self.directions,
                "radii": list(self.radii), "fixed_points": self.fixed_points,
                "detour_weight": self.detour_weight, "confidence_weight": self.confidence_weight,
                "fluency_weight": self.fluency_weight, "fluent_only": self.fluent_only,
                "step_exponent": self.step_exponent, "length_weight": self.length_weight, "seed": self.seed,
                "refinement": self.refinement.get_config() if self.refinement is not None else None,
                "refined_line": self.refined_line, "splices": self.splices}

    @classmethod
    def from_config(cls, config) -> "PathSearch":
        return cls(**config)

    def __repr__(self):
        return f"PathSearch({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"

    # -- candidates ----------------------------------------------------------------------

    def candidate_codes(self, start: tf.Tensor, end: tf.Tensor) -> tf.Tensor:
        """`start`, `end` `[batch, units]` → `[batch, candidates_per_row, units]`: the line's
        interior grid points, each followed by its points off the line."""
        alphas = tf.range(1, self.grid, dtype=start.dtype) / float(self.grid)
        line = interpolation.interpolate(start, end, alphas, self.mode)  # [batch, G-1, units]
        if not self.directions:
            return line
        units = start.shape[-1] or tf.shape(start)[-1]
        noise = tf.random.stateless_normal([self.directions, units], seed=[self.seed, 7], dtype=start.dtype)
        along = tf.math.l2_normalize(end - start, axis=-1)  # [batch, units]
        # Orthogonal to the line (per row), unit length: [batch, D, units].
        across = noise[None] - tf.reduce_sum(noise[None] * along[:, None], -1, keepdims=True) * along[:, None]
        across = tf.math.l2_normalize(across, axis=-1)
        length = tf.norm(end - start, axis=-1)[:, None, None, None]  # [batch, 1, 1, 1]
        radii = tf.constant(self.radii, start.dtype)[None, None, :, None]
        offsets = tf.reshape(across[:, :, None, :] * radii * length,
                             [tf.shape(start)[0], 1, -1, units])  # [batch, 1, D·R, units]
        moved = line[:, :, None, :] + offsets  # [batch, G-1, D·R, units]
        points = tf.concat([line[:, :, None, :], moved], axis=2)
        return tf.reshape(points, [tf.shape(start)[0], -1, units])

    # -- the search ----------------------------------------------------------------------

    def __call__(self, model, tokens_a, tokens_b, points, beam_width: int = 1,
                 language_model=None) -> SentencePath:
        """Paths from rows of `tokens_a` to rows of `tokens_b` (`[batch, L]` 0-padded ids) of
        `points` `[batch]` int32 (or one int for every row) points each, 2 … `MAX_POINTS`; the
        ends are decoded with `beam_width`, the candidates greedily; `language_model` (a
        `tfode.LanguageModel` of the model's vocabulary, optional) judges the candidates."""
        tokens_a = tf.convert_to_tensor(tokens_a, tf.int32)
        tokens_b = tf.convert_to_tensor(tokens_b, tf.int32)
        batch = tf.shape(tokens_a)[0]
        points = tf.broadcast_to(tf.cast(points, tf.int32), [batch])
        in_range = tf.reduce_all((points >= 2) & (points <= MAX_POINTS))
        check = tf.debugging.Assert(in_range, [f"points must be between 2 and {MAX_POINTS}, got", points])
        with tf.control_dependencies([check]):
            points = tf.identity(points)
        start, end = model.encode(tokens_a)[0], model.encode(tokens_b)[0]
        line_start, line_end = start, end
        if self.refinement is not None:
            width = tf.maximum(tf.shape(tokens_a)[1], tf.shape(tokens_b)[1])
            both = tf.concat([_fit(tokens_a, width), _fit(tokens_b, width)], 0)
            refined = self.refinement(model, both, tf.concat([start, end], 0))
            start, end = refined[:batch], refined[batch:]
            if self.refined_line:
                line_start, line_end = start, end
        ends = model.decode(tf.concat([start, end], 0), beam_width=beam_width)
        steps = tf.shape(ends.ids)[1]
        end_ids = tf.stack([ends.ids[:batch], ends.ids[batch:]], axis=1)  # [batch, 2, steps]

        codes = self.candidate_codes(line_start, line_end)  # [batch, N, units]
        if self.splices:
            spliced = splices(_without_eos(end_ids[:, 0]), _without_eos(end_ids[:, 1]))  # [batch, M, steps]
            count = tf.shape(spliced)[1]
            spliced_codes = model.encode(tf.reshape(spliced, [batch * count, steps]))[0]
            codes = tf.concat([codes, tf.reshape(spliced_codes, [batch, count, -1])], axis=1)
        ids, confidence = self._decoded(model, codes, steps)
        path_ids, path_codes = self._best_path(model, end_ids, start, end, ids, codes, confidence, points,
                                               language_model)
        lengths = tf.reduce_sum(tf.cast((path_ids != PAD_ID) & (path_ids != EOS_ID), tf.int32), -1)
        return SentencePath(ids=path_ids, lengths=lengths, codes=path_codes, points=points)

    def _decoded(self, model, codes, steps):
        """Greedy decodes of `codes` `[batch, N, units]`: ids `[batch, N, steps]` and the mean
        log-probability per token `[batch, N]`."""
        batch, count = tf.shape(codes)[0], tf.shape(codes)[1]
        decoded = model.decode(tf.reshape(codes, [batch * count, -1]))
        ids = tf.reshape(_fit(decoded.ids, steps), [batch, count, steps])
        return ids, tf.reshape(_mean_score(decoded), [batch, count])

    def _best_path(self, model, end_ids, start, end, ids, codes, confidence, points, language_model):
        """The best path through the ends (`end_ids` `[batch, 2, steps]`, codes `start`, `end`)
        and the decoded candidates (`ids` `[batch, N, steps]`, `codes`, `confidence`):
        `(ids [batch, P, steps], codes [batch, P, units])`, zeros past a row's last point."""
        batch, steps = tf.shape(ids)[0], tf.shape(ids)[2]

        # Nodes: 0 = A′, 1 = B′, then the candidates; a node is kept when no earlier node has its sentence.
        node_ids = tf.concat([end_ids, ids], axis=1)  # [batch, 2 + N, steps]
        node_codes = tf.concat([start[:, None], end[:, None], codes], axis=1)
        node_confidence = tf.concat([tf.zeros([batch, 2]), confidence], axis=1)
        # One string per sentence, so that equality is [batch, n, n], not [batch, n, n, steps].
        printed = tf.strings.reduce_join(tf.strings.as_string(node_ids), axis=-1, separator=" ")
        same = tf.equal(printed[:, :, None], printed[:, None])  # [batch, n, n]
        nodes = tf.shape(node_ids)[1]
        earlier = tf.linalg.band_part(tf.ones([nodes, nodes], tf.bool), 0, -1) & ~tf.eye(nodes, dtype=tf.bool)
        repeated = tf.reduce_any(same & earlier[None], axis=1)
        keep = ~repeated | (tf.range(nodes) < 2)[None]
        # Compact each row's kept nodes to the front, in their order; pad to the batch's most.
        order = tf.argsort(tf.where(keep, 0, 1) * nodes + tf.range(nodes)[None], axis=1, stable=True)
        width = tf.reduce_max(tf.reduce_sum(tf.cast(keep, tf.int32), axis=1))
        order = order[:, :width]
        real = tf.gather(keep, order, batch_dims=1)
        node_ids = tf.gather(node_ids, order, batch_dims=1)
        node_codes = tf.gather(node_codes, order, batch_dims=1)
        node_confidence = tf.gather(node_confidence, order, batch_dims=1)

        allowed = real & ~tf.reduce_any(tf.equal(node_ids, UNK_ID), axis=-1)
        allowed = allowed | (tf.range(width) < 2)[None]
        words = _without_eos(node_ids)  # [batch, W, steps], as the encoder and the language model read them
        flat_words = tf.reshape(words, [batch * width, steps])
        if self.fixed_points:
            again_codes = model.encode(flat_words)[0]
            again = _fit(model.decode(again_codes).ids, steps)
            fixed = tf.reshape(tf.reduce_all(tf.equal(again, tf.reshape(node_ids, [-1, steps])), -1), [batch, width])
            allowed = allowed & (fixed | (tf.range(width) < 2)[None])
            interior = (tf.range(width) >= 2)[None, :, None]
            node_codes = tf.where(interior & fixed[..., None], tf.reshape(again_codes, [batch, width, -1]),
                                  node_codes)

        node_cost = -self.confidence_weight * node_confidence
        if language_model is not None:
            scores = tf.reshape(language_model.log_likelihood(flat_words), [batch, width])
            node_cost -= self.fluency_weight * scores
            if self.fluent_only:
                allowed = allowed & ((scores >= language_model.threshold) | (tf.range(width) < 2)[None])
        distances = word_distances(words)  # [batch, W, W]
        chosen = self._choose(distances, allowed, node_cost, points)  # [batch, P]
        valid = chosen >= 0
        safe = tf.maximum(chosen, 0)
        path_ids = tf.where(valid[..., None], tf.gather(node_ids, safe, batch_dims=1), 0)
        path_codes = tf.where(valid[..., None], tf.gather(node_codes, safe, batch_dims=1), 0.0)
        return path_ids, path_codes

    def _choose(self, distances, allowed, cost_of_node, points):
        """Dynamic programming over the nodes of each row (0 = A′, 1 = B′) given their word
        `distances` `[batch, W, W]`, which may be points (`allowed` `[batch, W]`) and what each
        costs beside its detour (`cost_of_node` `[batch, W]`): `[batch, P]` node indices of each
        row's path, -1 past its last point."""
        batch, width = tf.shape(distances)[0], tf.shape(distances)[1]
        to_start, to_end = distances[:, 0], distances[:, :, 1]  # [batch, W]
        span = to_start[:, 1:2]
        node_cost = self.detour_weight * (to_start + to_end - span) + cost_of_node
        node_cost = tf.where(tf.range(width)[None] < 2, 0.0, node_cost)
        a_i, a_j = to_start[:, :, None], to_start[:, None, :]
        b_i, b_j = to_end[:, :, None], to_end[:, None, :]
        onward = (a_j >= a_i) & (b_j <= b_i) & ((a_j > a_i) | (b_j < b_i))
        onward = onward & allowed[:, :, None] & allowed[:, None, :]
        moves = tf.pow(distances, self.step_exponent) + self.length_weight * distances
        step_cost = tf.where(onward, moves + node_cost[:, None, :], _UNREACHABLE)
        stay = tf.eye(width, batch_shape=[batch], dtype=tf.bool) & allowed[:, :, None]
        step_cost = tf.where(stay, REPEAT_COST, step_cost)

        most = tf.reduce_max(points)
        cost = tf.where(tf.range(width)[None] == 0, tf.zeros([batch, width]), _UNREACHABLE)  # at step 0, only A′
        parents = tf.TensorArray(tf.int32, size=most)
        parents = parents.write(0, tf.zeros([batch, width], tf.int32))

        def forward(k, cost, parents):
            total = cost[:, :, None] + step_cost  # [batch, from, to]
            parents = parents.write(k, tf.argmin(total, axis=1, output_type=tf.int32))
            cost = tf.ensure_shape(tf.minimum(tf.reduce_min(total, axis=1), _UNREACHABLE), [None, None])
            return k + 1, cost, parents

        _, _, parents = tf.while_loop(lambda k, *_: k < most, forward, (tf.constant(1), cost, parents))
        parents = parents.stack()  # [P, batch, W]

        last = points - 1
        chosen = tf.TensorArray(tf.int32, size=most)

        def backward(k, node, chosen):
            inside = k <= last
            chosen = chosen.write(k, tf.where(inside, node, -1))
            previous = tf.gather(parents[k], node, batch_dims=1)
            return k - 1, tf.where(inside, previous, node), chosen

        _, _, chosen = tf.while_loop(lambda k, *_: k >= 0, backward,
                                     (most - 1, tf.ones([batch], tf.int32), chosen))
        return tf.transpose(chosen.stack())


# The searches a benchmark or a user names: the product's path and the baselines it is measured
# against (placement on a fine grid of the line; the same keeping only fluent sentences).
REFINED = {"refinement": CodeRefinement().get_config()}  # the ends the product's searches refine
SEARCHES = {
    "placement": dict(grid=64, directions=0, splices=False, fluency_weight=0.0, fluent_only=False, **REFINED),
    "line": dict(grid=64, directions=0, splices=False, **REFINED),
    "path": dict(**REFINED),
}


def search_from_name(name: str) -> PathSearch:
    """The `PathSearch` that `SEARCHES` names."""
    if name not in SEARCHES:
        raise ValueError(f"Unknown path search {name!r}; expected one of {sorted(SEARCHES)}.")
    return PathSearch(**SEARCHES[name])


def word_distances(ids: tf.Tensor) -> tf.Tensor:
    """`[batch, n, steps]` 0-padded ids → `[batch, n, n]` float32 word edit distances
    (Levenshtein over tokens) between every two sentences of a row. One row at a time: the
    pairs of a row are n² sentences, and those of a whole batch would not fit in memory."""

    def one_row(row):
        n = tf.shape(row)[0]
        first = tf.sparse.from_dense(tf.tile(row[:, None], [1, n, 1]))
        second = tf.sparse.from_dense(tf.tile(row[None], [n, 1, 1]))
        return tf.edit_distance(first, second, normalize=False)

    return tf.map_fn(one_row, ids, fn_output_signature=tf.TensorSpec([None, None], tf.float32))


def splices(first, second):
    """Sentences between two rows of 0-padded ids `first`, `second` `[batch, steps]` (no `<eos>`)
    on the word line: for i = 0 … steps, second's first i tokens then first's tokens from the
    proportional place round(i · |first| / |second|), and first's first i tokens then second's
    from its proportional place. `[batch, 2 · (steps + 1), steps]` int32, 0-padded (cut at
    `steps`); i = 0 and i ≥ the length give the two sentences themselves."""
    return tf.concat([_prefix_then_rest(second, first), _prefix_then_rest(first, second)], axis=1)


def _prefix_then_rest(head, tail):
    """For i = 0 … steps: head[:i] + tail[j:], j = round(i · |tail| / |head|) (i capped at |head|)."""
    steps = tf.shape(head)[1]
    head_length = tf.reduce_sum(tf.cast(head != PAD_ID, tf.int32), axis=1)[:, None, None]  # [batch, 1, 1]
    tail_length = tf.reduce_sum(tf.cast(tail != PAD_ID, tf.int32), axis=1)[:, None, None]
    taken = tf.minimum(tf.range(steps + 1)[None, :, None], head_length)  # [batch, I, 1]
    share = tf.cast(taken, tf.float32) / tf.cast(tf.maximum(head_length, 1), tf.float32)
    resume = tf.cast(tf.round(share * tf.cast(tail_length, tf.float32)), tf.int32)
    position = tf.range(steps)[None, None, :]  # [1, 1, steps]
    from_tail = resume + position - taken  # where a position past the prefix reads the tail
    shape = tf.shape(taken + position + resume)  # [batch, I, steps]
    head_tokens = tf.gather(head, tf.broadcast_to(tf.minimum(position, steps - 1), shape), batch_dims=1)
    tail_tokens = tf.gather(tail, tf.clip_by_value(from_tail, 0, steps - 1), batch_dims=1)
    return tf.where(position < taken, head_tokens, tf.where(from_tail < tail_length, tail_tokens, PAD_ID))


def _without_eos(ids):
    return tf.where(tf.equal(ids, EOS_ID), tf.zeros_like(ids), ids)


def _fit(ids, steps):
    """`ids` `[n, s]` cut or 0-padded to `steps` columns."""
    ids = ids[:, :steps]
    return tf.pad(ids, [[0, 0], [0, steps - tf.shape(ids)[1]]])


def _mean_score(decoded):
    """`[n]` mean log-probability per emitted token (`<eos>` included) of a `Decoded`."""
    emitted = tf.cast(decoded.lengths + 1, tf.float32)
    emitted = tf.minimum(emitted, tf.cast(tf.shape(decoded.ids)[1], tf.float32))
    return tf.reduce_sum(decoded.scores, axis=-1) / emitted
