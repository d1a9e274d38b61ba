"""The masked cross-entropy, with and without label smoothing."""

import keras
import numpy as np
import pytest

from tfode.losses import MaskedCrossEntropy


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 11)).astype("float32")
    targets = rng.integers(1, 11, size=(3, 5))
    targets[0, 3:] = 0
    targets[2, 1:] = 0
    return targets, logits


def test_without_smoothing_it_is_keras_masked_sparse_cross_entropy(batch):
    targets, logits = batch
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    weights = np.array([[0.2], [1.0], [3.0]], "float32")
    np.testing.assert_allclose(MaskedCrossEntropy()(targets, logits), reference(targets, logits), rtol=1e-6)
    np.testing.assert_allclose(
        MaskedCrossEntropy()(targets, logits, sample_weight=weights),
        reference(targets, logits, sample_weight=weights), rtol=1e-6,
    )


def test_smoothing_mixes_the_target_with_the_uniform_distribution_over_real_tokens_only(batch):
    targets, logits = batch
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    per_token = -0.8 * picked - 0.2 * log_probs.mean(-1)
    expected = per_token[targets != 0].mean()
    np.testing.assert_allclose(MaskedCrossEntropy(0.2)(targets, logits), expected, rtol=1e-5)
    padded_logits = logits.copy()
    padded_logits[targets == 0] = 50.0  # what padding positions hold does not count
    np.testing.assert_allclose(MaskedCrossEntropy(0.2)(targets, padded_logits), expected, rtol=1e-5)


def test_config_round_trip_and_bad_smoothing():
    loss = keras.losses.deserialize(keras.losses.serialize(MaskedCrossEntropy(label_smoothing=0.1)))
    assert isinstance(loss, MaskedCrossEntropy) and loss.label_smoothing == 0.1
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="label_smoothing must be in"):
            MaskedCrossEntropy(label_smoothing=bad)


def test_the_metrics_honour_sample_weight():
    import tensorflow as tf

    from tfode.metrics import ExactMatch, MaskedTokenAccuracy

    targets = tf.constant([[5, 6, 0], [7, 8, 9]])
    guessed = tf.one_hot([[5, 6, 1], [7, 1, 9]], 10)  # the first sentence right, the second one token off
    accuracy, exact = MaskedTokenAccuracy(), ExactMatch()
    accuracy.update_state(targets, guessed, sample_weight=tf.constant([3.0, 1.0]))
    exact.update_state(targets, guessed, sample_weight=tf.constant([3.0, 1.0]))
    np.testing.assert_allclose(accuracy.result().numpy(), (3 * 2 + 2) / (3 * 2 + 3))
    np.testing.assert_allclose(exact.result().numpy(), 3 / 4)
    per_token = MaskedTokenAccuracy()
    per_token.update_state(targets, guessed, sample_weight=tf.constant([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]]))
    assert per_token.result().numpy() == 1.0  # the wrong token weighs nothing
    with pytest.raises(ValueError, match="one weight a sentence"):
        ExactMatch().update_state(targets, guessed, sample_weight=tf.ones([2, 3]))
