"""The product's path between two sentences (`tfode.paths`, `Seq2SeqODE.path`)."""

import numpy as np
import pytest
import tensorflow as tf
from rapidfuzz.distance import Levenshtein

from tests.helpers import small_model
import tfode
from tfode import paths
from tfode.tokens import EOS_ID


def words(ids):
    """Token lists of `[n, steps]` ids, up to `<eos>`."""
    rows = []
    for row in np.asarray(ids):
        row = list(row)
        row = row[: row.index(EOS_ID)] if EOS_ID in row else row
        rows.append(tuple(int(t) for t in row if t))
    return rows


def test_word_distances_are_levenshtein_over_tokens(rng):
    ids = rng.integers(0, 6, size=(3, 7, 6)).astype("int32")  # 0 is padding, dropped
    ids[:, :, 4:] = 0
    got = paths.word_distances(tf.constant(ids)).numpy()
    for b in range(3):
        rows = [[t for t in row if t] for row in ids[b]]
        expected = [[Levenshtein.distance(x, y) for y in rows] for x in rows]
        np.testing.assert_array_equal(got[b], expected)


def test_dynamic_programming_spreads_the_points_and_never_goes_back():
    # Nodes 0 (A′) and 1 (B′) 8 words apart; nodes 2… on the way at 1…7 words from A′, and a
    # detour node (3 from A′, 7 from B′) that keeps neither distance moving.
    at = [0, 8, 1, 2, 3, 4, 5, 6, 7]
    width = len(at) + 1
    distances = np.zeros([1, width, width], "float32")
    for i, x in enumerate(at):
        for j, y in enumerate(at):
            distances[0, i, j] = abs(x - y)
    detour = width - 1
    distances[0, detour, :-1] = distances[0, :-1, detour] = [3, 7, 4, 5, 6, 7, 8, 9, 10]
    allowed = tf.ones([1, width], tf.bool)
    search = paths.PathSearch(detour_weight=1.0, confidence_weight=0.0)
    chosen = search._choose(tf.constant(distances), allowed, tf.zeros([1, width]), tf.constant([5])).numpy()[0]
    # Five points over 8 words: steps of 2, the evenly spaced nodes at 2, 4 and 6 words.
    assert list(chosen) == [0, 3, 5, 7, 1]
    chosen = search._choose(tf.constant(distances), allowed, tf.zeros([1, width]), tf.constant([9])).numpy()[0]
    assert list(chosen) == [0, 2, 3, 4, 5, 6, 7, 8, 1]


def test_dynamic_programming_repeats_a_point_only_when_it_must():
    distances = tf.constant([[[0.0, 2.0, 1.0], [2.0, 0.0, 1.0], [1.0, 1.0, 0.0]]])
    search = paths.PathSearch(confidence_weight=0.0)
    chosen = search._choose(distances, tf.ones([1, 3], tf.bool), tf.zeros([1, 3]), tf.constant([5])).numpy()[0]
    # One node lies between the ends: the other two interior places repeat a point.
    assert sorted(set(chosen)) == [0, 1, 2] and chosen[0] == 0 and chosen[-1] == 1
    assert sum(a == b for a, b in zip(chosen, chosen[1:])) == 2


def test_splices_walk_the_word_line_from_one_sentence_to_the_other():
    first = tf.constant([[5, 6, 7, 0, 0], [1, 2, 0, 0, 0]])
    second = tf.constant([[8, 9, 0, 0, 0], [3, 4, 5, 6, 0]])
    spliced = paths.splices(first, second).numpy()
    assert spliced.shape == (2, 12, 5)
    as_words = [[tuple(t for t in row if t) for row in rows] for rows in spliced]
    # second's first i words, then first's from the matching place; then the other way round.
    assert as_words[0][:3] == [(5, 6, 7), (8, 7), (8, 9)] and as_words[0][6:9] == [(8, 9), (5, 9), (5, 6, 9)]
    assert as_words[1][:5] == [(1, 2), (3, 1, 2), (3, 4, 2), (3, 4, 5), (3, 4, 5, 6)]
    for rows, a, b in zip(as_words, ([5, 6, 7], [1, 2]), ([8, 9], [3, 4, 5, 6])):
        for sentence in rows:  # every splice lies on a shortest word path from first to second
            assert Levenshtein.distance(sentence, a) + Levenshtein.distance(sentence, b) <= Levenshtein.distance(a, b) + 1


@pytest.mark.parametrize("search", [paths.PathSearch(fixed_points=True),
                                    paths.PathSearch(mode="linear", directions=0, splices=False),
                                    paths.PathSearch(directions=0)])
def test_every_point_is_the_decode_of_its_code_and_moves_toward_b(trained, tiny_text, tiny_tokens, search):
    a, b = tiny_tokens[:4], tiny_tokens[4:]
    found = trained.path(a, b, points=7, search=search)
    assert found.ids.shape[:2] == (4, 7) and found.codes.shape == (4, 7, 32)
    starts = trained.decode(trained.encode(a)[0]).ids
    ends = trained.decode(trained.encode(b)[0]).ids
    for row in range(4):
        sentences = words(found.ids[row])
        assert sentences[0] == words(starts)[row] and sentences[-1] == words(ends)[row]
        # Each point's sentence is the model's decode of the code returned for it.
        assert words(trained.decode(found.codes[row]).ids) == sentences
        to_a = [Levenshtein.distance(s, sentences[0]) for s in sentences]
        to_b = [Levenshtein.distance(s, sentences[-1]) for s in sentences]
        assert all(y >= x for x, y in zip(to_a, to_a[1:])) and all(y <= x for x, y in zip(to_b, to_b[1:]))
        new = [s for s in sentences[1:-1] if s not in (sentences[0], sentences[-1])]
        runs = [s for k, s in enumerate(new) if k == 0 or new[k - 1] != s]
        assert len(set(runs)) == len(runs)  # a point may repeat (too few candidates), never come back later
        if search.fixed_points:  # every new point is a fixed point of decode ∘ encode, without <unk>
            for sentence in set(new):
                ids = np.array([list(sentence) + [0] * (8 - len(sentence))], "int32")
                assert words(trained.reconstruct(ids).ids)[0] == sentence
                assert 3 not in sentence


def test_a_row_answers_the_same_alone_and_among_others(trained, tiny_tokens):
    a, b = tiny_tokens[[0, 1, 2, 5]], tiny_tokens[[3, 6, 7, 4]]
    together = trained.path(a, b, points=tf.constant([9, 3, 6, 2]))
    assert together.ids.shape[1] == 9
    np.testing.assert_array_equal(together.points.numpy(), [9, 3, 6, 2])
    for row, points in enumerate([9, 3, 6, 2]):
        alone = trained.path(a[row : row + 1], b[row : row + 1], points=points)
        assert words(alone.ids[0]) == words(together.ids[row, :points])
        np.testing.assert_allclose(alone.codes[0].numpy(), together.codes[row, :points].numpy(), atol=1e-5)
        # Past a row's last point: nothing.
        assert not together.ids[row, points:].numpy().any() and not together.lengths[row, points:].numpy().any()


def test_points_out_of_range_are_refused(trained, tiny_tokens):
    for points in (1, paths.MAX_POINTS + 1):
        with pytest.raises(tf.errors.InvalidArgumentError, match="points must be between 2"):
            trained.path(tiny_tokens[:1], tiny_tokens[1:2], points=points)


@pytest.mark.parametrize("arguments, match", [
    (dict(mode="cubic"), "mode"), (dict(grid=1), "grid"), (dict(directions=-1), "directions"),
    (dict(radii=(0.1, 0.0)), "radii"), (dict(radii=()), "radii"), (dict(detour_weight=-1), "detour_weight"),
    (dict(confidence_weight=float("nan")), "confidence_weight"), (dict(step_exponent=0.5), "step_exponent"),
    (dict(length_weight=-1), "length_weight"),
])
def test_path_search_refuses_bad_arguments(arguments, match):
    with pytest.raises(ValueError, match=match):
        paths.PathSearch(**arguments)


def test_path_search_round_trips_and_counts_its_candidates():
    search = paths.PathSearch(mode="linear", grid=8, directions=3, radii=(0.2,), seed=4)
    again = paths.PathSearch.from_config(search.get_config())
    assert again.get_config() == search.get_config()
    assert search.candidates_per_row == 7 * (1 + 3)
    codes = search.candidate_codes(tf.zeros([2, 5]), tf.ones([2, 5]))
    assert codes.shape == (2, search.candidates_per_row, 5)
    # The points off the line are orthogonal to it, at the radius asked.
    line = codes.numpy()[0, 0]
    moved = codes.numpy()[0, 1:4] - line
    np.testing.assert_allclose(moved @ np.ones(5), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), 0.2 * np.sqrt(5), rtol=1e-5)
    with pytest.raises(TypeError, match="PathSearch"):
        small_model(20).path(np.ones([1, 3], "int32"), np.ones([1, 3], "int32"), search="lattice")


@pytest.fixture(scope="module")
def language_model(tiny_text, tiny_tokens):
    import keras

    from tfode.tokens import append_eos

    keras.utils.set_random_seed(1)
    lm = tfode.LanguageModel(tiny_text.vocabulary_size, units=16, embedding_dim=8)
    lm.compile(keras.optimizers.Adam(1e-2), loss=tfode.MaskedCrossEntropy())
    lm.fit(tiny_tokens, append_eos(tiny_tokens).numpy(), epochs=30, batch_size=8, verbose=0)
    lm.calibrate(tiny_tokens, quantile=0.25)
    return lm


def test_the_language_model_scores_tokens_and_calibrates_its_threshold(language_model, tiny_tokens, tmp_path):
    import keras

    from tfode.tokens import append_eos

    ids = tiny_tokens[:3]
    logits = language_model(ids).numpy()
    targets = append_eos(ids).numpy()
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    expected = [np.mean([log_probs[r, k, t] for k, t in enumerate(targets[r]) if t]) for r in range(3)]
    np.testing.assert_allclose(language_model.log_likelihood(ids).numpy(), expected, rtol=1e-4)
    scores = np.sort(language_model.log_likelihood(tiny_tokens).numpy())
    assert float(language_model.threshold.numpy()) == pytest.approx(scores[int(0.25 * (len(scores) - 1))])
    assert language_model.fluent(tiny_tokens).numpy().mean() >= 0.75
    language_model.save(tmp_path / "lm.keras")
    again = keras.models.load_model(tmp_path / "lm.keras")
    assert float(again.threshold.numpy()) == pytest.approx(float(language_model.threshold.numpy()))
    np.testing.assert_allclose(again.log_likelihood(ids).numpy(), language_model.log_likelihood(ids).numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="quantile"):
        language_model.calibrate(tiny_tokens, quantile=1.0)
    with pytest.raises(ValueError, match="vocab_size"):
        tfode.LanguageModel(3)


def test_with_a_language_model_every_new_point_is_fluent(trained, language_model, tiny_tokens):
    a, b = tiny_tokens[:4], tiny_tokens[4:]
    found = trained.path(a, b, points=6, language_model=language_model)
    for row in range(4):
        sentences = words(found.ids[row])
        new = [s for s in sentences[1:-1] if s not in (sentences[0], sentences[-1])]
        if new:
            ids = np.array([list(s) + [0] * (8 - len(s)) for s in new], "int32")
            assert language_model.fluent(ids).numpy().all()
    before = float(language_model.threshold.numpy())
    language_model.threshold.assign(1.0)  # no sentence is that likely: every interior point repeats an end
    try:
        found = trained.path(a, b, points=6, language_model=language_model)
    finally:
        language_model.threshold.assign(before)
    for row in range(4):
        sentences = words(found.ids[row])
        assert set(sentences) <= {sentences[0], sentences[-1]}
    with pytest.raises(ValueError, match="vocabulary"):
        trained.path(a, b, points=6, language_model=tfode.LanguageModel(language_model.vocab_size + 1, units=4))


@pytest.mark.slow
def test_the_exported_path_asks_the_language_model_it_carries(trained, language_model, tiny_text, tmp_path):
    import json
    import os

    from tfode import export
    from training.serving_export import export_for_serving

    a = ["the cat sat on the mat .", "i like your style ."]
    b = ["the pain was unbearable .", "he has a red car ."]
    width = max(len(s.split()) for s in a + b)
    ids_a, ids_b = (tiny_text.encode(x).ids[:, :width] for x in (a, b))
    # Without the fixed-point rule: the tiny model's decodes are rarely fixed points.
    search = paths.PathSearch(fixed_points=False)
    before = float(language_model.threshold.numpy())
    served = {}
    try:
        # Thresholds that pass every sentence and none: the served paths follow the one exported.
        for threshold in (-1e9, 1.0):
            language_model.threshold.assign(threshold)
            folder = export_for_serving(trained, tiny_text, str(tmp_path), "m", path_search=search,
                                               language_model=language_model)
            metadata = json.load(open(os.path.join(folder, "assets.extra", export.METADATA_FILE)))
            assert metadata["language_model"]["threshold"] == pytest.approx(threshold)
            served[threshold] = tf.saved_model.load(folder).signatures["path"](
                sentence_a=tf.constant(a), sentence_b=tf.constant(b), points=tf.constant([7, 7]))["sentences"].numpy()
            library = trained.path(ids_a, ids_b, 7, search=search, language_model=language_model)
            expected = tiny_text.decode(tf.reshape(library.ids, [14, -1])).numpy().reshape(2, 7)
            np.testing.assert_array_equal(served[threshold], expected)
    finally:
        language_model.threshold.assign(before)
    assert any(len(set(row)) > 2 for row in served[-1e9])
    assert all(set(row) == {row[0], row[-1]} for row in served[1.0])
    # A language model of another vocabulary is refused before anything is written.
    before = sorted(os.listdir(tmp_path / "m"))
    with pytest.raises(export.ExportError, match="vocabulary"):
        export_for_serving(trained, tiny_text, str(tmp_path), "m",
                                  language_model=tfode.LanguageModel(tiny_text.vocabulary_size + 1, units=4))
    assert sorted(os.listdir(tmp_path / "m")) == before
