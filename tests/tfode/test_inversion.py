"""`CodeRefinement`: codes refined toward the sentence they should decode to."""

import numpy as np
import pytest
import tensorflow as tf

import tfode
from tfode.inversion import CodeRefinement
from tfode.tokens import append_eos, prepend_bos


def negative_log_likelihood(model, tokens, codes):
    logits = model.decoder(codes, prepend_bos(tokens), training=False).logits
    targets = append_eos(tokens)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
    return tf.reduce_sum(loss * tf.cast(targets != 0, tf.float32), 1).numpy()


def exact(model, tokens, codes):
    decoded = model.decode(codes).ids.numpy()
    targets = append_eos(tokens).numpy()
    width = targets.shape[1]
    decoded = np.pad(decoded, [[0, 0], [0, max(0, width - decoded.shape[1])]])[:, :width]
    return (decoded * (targets != 0) == targets).all(1)


def test_refinement_moves_displaced_codes_back_to_their_sentences(trained, tiny_tokens):
    tokens = tf.constant(tiny_tokens)
    codes = trained.encode(tokens)[0]
    displaced = codes + tf.random.stateless_normal(codes.shape, seed=[1, 2]) * 2.0 * tf.reduce_mean(tf.abs(codes))
    before = negative_log_likelihood(trained, tokens, displaced)
    refined = CodeRefinement(steps=20, learning_rate=0.1)(trained, tokens, displaced)
    after = negative_log_likelihood(trained, tokens, refined)
    assert (after <= before).all() and (after < before).sum() >= len(before) - 1  # never worse; almost all better
    assert exact(trained, tokens, refined).sum() > exact(trained, tokens, displaced).sum()


def test_no_steps_is_the_encoders_code_and_rows_are_refined_alone(trained, tiny_tokens):
    tokens = tf.constant(tiny_tokens)
    np.testing.assert_array_equal(CodeRefinement(steps=0)(trained, tokens).numpy(),
                                  trained.encode(tokens)[0].numpy())
    refinement = CodeRefinement(steps=3)
    together = refinement(trained, tokens).numpy()
    for row in (0, 5):
        alone = refinement(trained, tokens[row : row + 1]).numpy()
        np.testing.assert_allclose(alone[0], together[row], atol=1e-5)


def test_a_refined_path_starts_and_ends_at_the_refined_codes(trained, tiny_tokens):
    a, b = tiny_tokens[:3], tiny_tokens[3:6]
    refinement = CodeRefinement(steps=3)
    found = trained.path(a, b, points=5, search=tfode.PathSearch(refinement=refinement))
    np.testing.assert_allclose(found.codes[:, 0].numpy(), refinement(trained, a).numpy(), atol=1e-5)
    np.testing.assert_allclose(found.codes[:, -1].numpy(), refinement(trained, b).numpy(), atol=1e-5)


@pytest.mark.parametrize("arguments, match", [
    (dict(steps=-1), "steps"), (dict(steps=CodeRefinement.MAX_STEPS + 1), "steps"),
    (dict(learning_rate=0.0), "learning_rate"), (dict(learning_rate=float("nan")), "learning_rate"),
])
def test_refinement_refuses_bad_arguments(arguments, match):
    with pytest.raises(ValueError, match=match):
        CodeRefinement(**arguments)


def test_a_search_keeps_its_refinement_in_its_config():
    search = tfode.PathSearch(refinement=CodeRefinement(steps=2, learning_rate=0.05))
    again = tfode.PathSearch.from_config(search.get_config())
    assert again.refinement.get_config() == {"steps": 2, "learning_rate": 0.05}
    with pytest.raises(TypeError, match="CodeRefinement"):
        tfode.PathSearch(refinement=3)
