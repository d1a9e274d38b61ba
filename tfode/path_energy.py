"""A penalty on how unevenly the decoded words change along a latent path between two sentences.

Between the codes of two sentences A and B, a plain autoencoder's decoder holds A for the first
third of the way, rewrites most of the sentence in one or two short steps, and holds B for the
last third: the path's edit distance is covered by jumps. Karras et al. 2020 (StyleGAN2, "path
length regularization") make a generator change its output by the same amount for every step of
the same length in latent space. The analogue here: take two points α and α + Δα on the line
between two codes of the batch, and measure how far the decoder's word distributions move
between them,

    c = Σ_k JS(p_k(h_α) ‖ p_k(h_{α+Δα}))      (Jensen-Shannon, nats, over the token positions k)

and penalise E[c²]. The whole path's change is fixed by its ends (both sentences are
reconstructed), and Σ over a path's steps of c² is smallest when every step changes as much:
a square also charges a step in which many positions change at once more than the same
changes spread over several steps, so the words are pushed to turn over one after another.
Jensen-Shannon is bounded (log 2 per position), so one confident flip cannot dominate the batch.

A temperature τ < 1 scores the distributions softmax(logits / τ) instead: the change then counts
positions whose most likely word turns over within the step (close to log 2 each) rather than
positions whose probabilities drift. At τ = 1 every position can soften its flip over the whole
path and so lower the energy without staggering where the decoded (arg-max) words turn over;
sharpened, only the turnovers count, so a step where several words turn over at once costs
the square of their number, and a detour through a third word costs a turnover more.

A second, optional term asks every position of the first point to hold the word one of the two
sentences has there, −log(p_k(a_k) + p_k(b_k)) (the trajectory decoder's midpoint term, along α
instead of t): a word of neither sentence is a detour of the path.

For the trajectory decoder, p_k depends on h(0) alone. For the autoregressive decoders p_k is
teacher-forced on the first sentence's own words, so c measures how the next-word distributions
given that prefix move.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfode.checks import check_non_negative, derive_seed


@keras.saving.register_keras_serializable(package="tfode")
class PathEnergy(keras.layers.Layer):
    """Pairs rows of a batch of codes and scores two nearby points of each pair's path.

        energy = PathEnergy(weight=0.05)
        near, far = energy.points(h0)                     # [rows, units] each
        logits = decoder(tf.concat([near, far], 0), ...)  # [2 * rows, n, vocab]
        change = energy.change(logits[:rows], logits[rows:], energy.mask(target_mask))
        loss = energy.penalty(change) + energy.words_loss(logits[:rows], targets)

    Args:
      weight: >= 0, the weight of mean(change²) in the loss.
      words_weight: >= 0, the weight of the words term (`words_loss`); one of the two weights
        must be > 0.
      step: Δα, in (0, 1): how far apart the two points of a path are (the path from a code to
        another runs over α ∈ [0, 1]); the first point is drawn uniformly from [0, 1 − Δα].
      rows: how many rows of a batch take part (the first `rows`; fewer when the batch is
        smaller), each paired with the next of them (the last with the first). The cost is one
        decoder pass over 2 × `rows` rows.
      seed: seed of the draws; None draws one from Keras' global seed.
      temperature: > 0, the logits are divided by it before the change is measured (1: the
        decoder's own distributions; below 1, sharper ones). The words term is not affected.
    """

    def __init__(self, weight: float, step: float = 0.125, rows: int = 16, seed: int | None = None,
                 words_weight: float = 0.0, temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.words_weight = check_non_negative("words_weight", words_weight)
        if not float(weight) >= 0:
            raise ValueError(f"weight must be >= 0, got {weight}.")
        if not (float(weight) > 0 or self.words_weight > 0):
            raise ValueError(f"weight or words_weight must be > 0, got {weight} and {words_weight}.")
        if not 0.0 < float(step) < 1.0:
            raise ValueError(f"step must be in (0, 1), got {step}.")
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.temperature = float(temperature)
        if int(rows) < 2:
            raise ValueError(f"rows must be >= 2 (a row is paired with another), got {rows}.")
        self.weight, self.step, self.rows, self.seed = float(weight), float(step), int(rows), seed
        self.seed_generator = keras.random.SeedGenerator(derive_seed(seed, "path_energy/pairs"), name="path_seed")

    def points(self, codes):
        """`codes` `[batch, units]` → `(near, far)`, each `[rows, units]`: row i of `near` is
        (1 − α_i)·c_i + α_i·c_{i+1} and of `far` the same at α_i + Δα, for the first `rows` codes
        (indices mod `rows`). A batch of one row pairs it with itself (a path of no length)."""
        codes = codes[: self.rows]
        partners = tf.roll(codes, shift=-1, axis=0)
        alpha = keras.random.uniform([tf.shape(codes)[0], 1], maxval=1.0 - self.step,
                                     seed=self.seed_generator, dtype=codes.dtype)
        near = codes + alpha * (partners - codes)
        return near, near + self.step * (partners - codes)

    def mask(self, target_mask):
        """`[batch, n]` bool (a target token at each position) → `[rows, n]` float32: positions
        where a row or its partner has a token."""
        own = target_mask[: self.rows]
        return tf.cast(tf.logical_or(own, tf.roll(own, shift=-1, axis=0)), tf.float32)

    def change(self, near_logits, far_logits, mask):
        """Σ over the masked positions of JS(p(near) ‖ p(far)), `[rows]` float32 nats, with
        p = softmax(logits / temperature).

        Args:
          near_logits, far_logits: `[rows, n, vocab]`.
          mask: `[rows, n]`, 1 where a position counts.
        """
        near = tf.nn.log_softmax(tf.cast(near_logits, tf.float32) / self.temperature)
        far = tf.nn.log_softmax(tf.cast(far_logits, tf.float32) / self.temperature)
        middle = tf.reduce_logsumexp(tf.stack([near, far]), axis=0) - tf.math.log(2.0)
        divergence = 0.5 * tf.reduce_sum(tf.exp(near) * (near - middle) + tf.exp(far) * (far - middle), axis=-1)
        return tf.reduce_sum(divergence * mask, axis=-1)

    def penalty(self, change):
        """`change` `[rows]` → `weight · mean(change²)`, a float32 scalar (0 at weight 0)."""
        return self.weight * tf.reduce_mean(tf.square(change))

    def words_loss(self, near_logits, targets):
        """`words_weight` × the mean over the counted positions of −log(p_k(a_k) + p_k(b_k)).

        Args:
          near_logits: `[rows, n, vocab]`, the first point of each pair's path.
          targets: `[batch, n]` ids of the batch's sentences followed by `<eos>`, 0-padded; row i's
            pair is (row i, row i + 1 mod rows). A word both sentences have there counts once, and
            a position only one of them reaches asks for that one's word.
        """
        log_probs = tf.nn.log_softmax(tf.cast(near_logits, tf.float32))
        own = targets[: self.rows]
        partner = tf.roll(own, shift=-1, axis=0)
        probs = tf.exp(log_probs)
        mass = (tf.where(own > 0, tf.gather(probs, own, batch_dims=2), 0.0)
                + tf.where((partner > 0) & (partner != own), tf.gather(probs, partner, batch_dims=2), 0.0))
        mask = self.mask(targets != 0)
        nll = -tf.math.log(tf.maximum(mass, 1e-9)) * mask
        return self.words_weight * tf.reduce_sum(nll) / tf.maximum(tf.reduce_sum(mask), 1.0)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "step": self.step, "rows": self.rows,
                "seed": self.seed, "words_weight": self.words_weight, "temperature": self.temperature}
