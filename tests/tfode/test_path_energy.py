"""`PathEnergy`: the points it draws, the change it measures, and its place in a model's loss."""

import numpy as np
import pytest
import tensorflow as tf

import tfode
from tests.helpers import small_model
from tfode.tokens import append_eos


def jensen_shannon(first_logits, second_logits):
    """Reference: per-position JS in nats, float64 NumPy."""
    def softmax(logits):
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        return shifted / shifted.sum(-1, keepdims=True)

    p, q = softmax(first_logits.astype(np.float64)), softmax(second_logits.astype(np.float64))
    m = (p + q) / 2
    return 0.5 * (p * np.log(p / m)).sum(-1) + 0.5 * (q * np.log(q / m)).sum(-1)


def test_points_lie_on_the_line_to_the_next_row_one_step_apart():
    energy = tfode.PathEnergy(1.0, step=0.25, rows=4, seed=3)
    codes = tf.random.stateless_normal([6, 5], seed=[1, 2])
    near, far = energy.points(codes)
    assert near.shape == far.shape == (4, 5)  # the first `rows` rows only
    used = codes[:4].numpy()
    partners = np.roll(used, -1, axis=0)
    direction = partners - used
    np.testing.assert_allclose(far - near, 0.25 * direction, atol=1e-5)
    alphas = ((near.numpy() - used) * direction).sum(1) / (direction * direction).sum(1)
    np.testing.assert_allclose(near, used + alphas[:, None] * direction, atol=1e-5)
    assert ((alphas >= -1e-6) & (alphas <= 0.75 + 1e-6)).all()
    assert len(set(np.round(alphas, 4))) > 1  # one α per row


def test_change_is_the_masked_sum_of_jensen_shannon_divergences():
    rng = np.random.default_rng(0)
    near = rng.normal(size=(3, 4, 7)).astype("float32") * 3
    far = rng.normal(size=(3, 4, 7)).astype("float32") * 3
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], "float32")
    energy = tfode.PathEnergy(2.0)
    change = energy.change(near, far, mask).numpy()
    np.testing.assert_allclose(change, (jensen_shannon(near, far) * mask).sum(1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(energy.change(far, near, mask), change, rtol=1e-5)  # symmetric
    np.testing.assert_allclose(energy.change(near, near, mask), 0.0, atol=1e-6)
    # Bounded: at most log 2 per counted position, reached by two certain, different words.
    certain = np.full((1, 2, 7), -30.0, "float32")
    other = certain.copy()
    certain[..., 0], other[..., 1] = 30.0, 30.0
    np.testing.assert_allclose(energy.change(certain, other, np.ones((1, 2), "float32")), 2 * np.log(2), rtol=1e-4)
    np.testing.assert_allclose(energy.penalty(tf.constant(change)), 2.0 * np.mean(change ** 2), rtol=1e-5)


def test_mask_counts_the_positions_of_a_row_or_of_its_partner():
    energy = tfode.PathEnergy(1.0, rows=3)
    targets = np.array([[5, 6, 2, 0], [5, 2, 0, 0], [5, 6, 7, 2], [5, 2, 0, 0]])
    mask = energy.mask(tf.constant(targets != 0)).numpy()
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]])


def test_the_penalty_prefers_words_that_change_one_step_after_another():
    """Two positions flip from word 0 to word 1 over a path of four steps: all at once in one
    step, or one in each of two steps. The total change is the same; the squared sum over the
    path's steps is smaller when the flips are spread."""
    energy = tfode.PathEnergy(1.0)

    def sentence(words):
        logits = np.full((1, 2, 3), -20.0, "float32")
        for position, word in enumerate(words):
            logits[0, position, word] = 20.0
        return logits

    def path_energy(path):
        changes = [float(energy.change(a, b, np.ones((1, 2), "float32"))[0]) for a, b in zip(path, path[1:])]
        return sum(changes), sum(c * c for c in changes)

    together = [sentence([0, 0]), sentence([0, 0]), sentence([1, 1]), sentence([1, 1]), sentence([1, 1])]
    spread = [sentence([0, 0]), sentence([1, 0]), sentence([1, 1]), sentence([1, 1]), sentence([1, 1])]
    total_together, energy_together = path_energy(together)
    total_spread, energy_spread = path_energy(spread)
    assert total_together == pytest.approx(total_spread, rel=1e-4)
    assert energy_spread == pytest.approx(energy_together / 2, rel=1e-3)


def test_a_temperature_below_one_counts_turnovers_not_drift():
    """Two points whose word distributions drift without their most likely word changing, and
    two whose most likely word turns over by the same logit distance: sharpening shrinks the
    first change and grows the second towards log 2."""
    def logits(first, second):
        return np.array([[[first, second, -5.0]]], "float32")

    mask = np.ones((1, 1), "float32")
    plain, sharp = tfode.PathEnergy(1.0), tfode.PathEnergy(1.0, temperature=0.2)
    drift = logits(2.0, 0.0), logits(1.0, 0.0)      # word 0 stays the most likely
    turnover = logits(0.5, 0.0), logits(-0.5, 0.0)  # word 0 → word 1
    assert float(sharp.change(*drift, mask)[0]) < float(plain.change(*drift, mask)[0])
    assert float(sharp.change(*turnover, mask)[0]) > 3 * float(plain.change(*turnover, mask)[0])
    assert float(sharp.change(*turnover, mask)[0]) > float(sharp.change(*drift, mask)[0])
    scaled = tfode.PathEnergy(1.0, temperature=0.5).change(drift[0], drift[1], mask)
    np.testing.assert_allclose(scaled, plain.change(2 * drift[0], 2 * drift[1], mask), rtol=1e-5)
    np.testing.assert_allclose(sharp.words_loss(turnover[0], tf.constant([[1]])),
                               plain.words_loss(turnover[0], tf.constant([[1]])), rtol=1e-6)
    restored = tfode.PathEnergy.from_config(sharp.get_config())
    assert restored.temperature == 0.2
    legacy = {key: value for key, value in plain.get_config().items() if key != "temperature"}
    assert tfode.PathEnergy.from_config(legacy).temperature == 1.0


@pytest.mark.parametrize("decoder", ["trajectory", "odernn"])
def test_a_model_adds_the_penalty_in_training_only_and_it_reaches_encoder_and_decoder(tiny_text, tiny_tokens, decoder):
    energy = tfode.PathEnergy(1.0, rows=4, seed=0)
    model = small_model(tiny_text.vocabulary_size, decoder, path_energy=energy, seed=0)
    plain = small_model(tiny_text.vocabulary_size, decoder, seed=0)
    tokens = tiny_tokens[:6]
    with tf.GradientTape(persistent=True) as tape:
        model(tokens, training=True)
        losses = list(model.losses)
    plain(tokens, training=True)
    assert len(losses) == len(plain.losses) + 1
    penalty = losses[-1]
    assert float(penalty) > 0
    for part in (model.encoder, model.decoder):
        gradients = tape.gradient(penalty, part.trainable_weights)
        assert any(g is not None and float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(g)))) > 0
                   for g in gradients), part.name
    model(tokens, training=False)
    assert len(model.losses) == len(plain.losses) == 0


def test_the_penalty_is_the_weighted_mean_square_of_the_change_the_model_logs(tiny_text, tiny_tokens):
    energy = tfode.PathEnergy(3.0, rows=4, seed=0)
    model = small_model(tiny_text.vocabulary_size, "trajectory", path_energy=energy, seed=0)
    tokens = tiny_tokens[:4]
    model(tokens, training=True)
    penalty = float(model.losses[-1])
    mean_change = float(model.path_change_tracker.result())
    assert mean_change > 0
    # One batch: the logged mean and the penalty come from the same changes, so
    # penalty / weight >= mean² (the mean square is at least the squared mean).
    assert penalty / 3.0 >= mean_change ** 2 - 1e-6
    mask = energy.mask(append_eos(tokens) != 0)
    assert mask.shape == (4, tokens.shape[1] + 1)


def test_the_words_term_asks_each_position_for_one_of_the_two_sentences_words():
    energy = tfode.PathEnergy(0.0, rows=3, words_weight=2.0)
    targets = np.array([[5, 6, 2, 0], [5, 7, 8, 2], [4, 2, 0, 0], [9, 9, 9, 2]])  # the 4th row takes no part
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 4, 10)).astype("float32")
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    partners = np.roll(targets[:3], -1, axis=0)
    terms = []
    for row in range(3):
        for position in range(4):
            words = {int(w) for w in (targets[row, position], partners[row, position]) if w}
            if words:
                terms.append(-np.log(sum(probs[row, position, w] for w in words)))
    expected = 2.0 * np.mean(terms)
    np.testing.assert_allclose(energy.words_loss(logits, tf.constant(targets)), expected, rtol=1e-5)
    # Certain of a word of either sentence at every position: nothing to pay.
    certain = np.full((3, 4, 10), -30.0, "float32")
    for row in range(3):
        for position in range(4):
            first, second = (partners, targets) if (row + position) % 2 else (targets, partners)
            certain[row, position, first[row, position] or second[row, position]] = 30.0  # both 0: not counted
    assert float(energy.words_loss(certain, tf.constant(targets))) < 1e-6
    with pytest.raises(ValueError, match="weight or words_weight"):
        tfode.PathEnergy(0.0)
