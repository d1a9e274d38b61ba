"""The SavedModel: signatures over raw strings, the TF Serving contract, atomic writing."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_CORPUS
from tests.helpers import small_model
from tfode import export, paths
from training import serving_export
from training.serving_export import export_for_serving

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROBE = os.path.join(ROOT, "tests", "serving", "tf1_probe.py")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_text):
    import keras

    import tfode

    keras.utils.set_random_seed(0)
    model = small_model(tiny_text.vocabulary_size, "trajectory", max_length=tiny_text.max_length,
                        solver=tfode.RK4(steps_per_unit=1), encoder=dict(variational=True, bidirectional=True),
                        tied_embeddings=True)  # as tatoeba-cpu: shared weights
    base = tmp_path_factory.mktemp("export")
    path = export_for_serving(model, tiny_text, str(base), "m", version=3, landmarks=TINY_CORPUS)
    return model, base, path


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported[2])


def test_layout_assets_and_warmup(exported):
    _, base, path = exported
    assert path == os.path.join(str(base), "m", "3")
    assert sorted(os.listdir(os.path.join(str(base), "m"))) == ["3"]  # no temporary left
    assert os.path.exists(os.path.join(path, "assets", "vocab.txt"))
    metadata = json.load(open(os.path.join(path, "assets.extra", "tfode.json")))
    decoder = metadata["model"]["config"]["decoder"]
    assert decoder["class_name"] == "TrajectoryDecoder" and decoder["config"]["solver"]["name"] == "rk4"
    records = list(tf.data.TFRecordDataset(os.path.join(path, "assets.extra", serving_export.WARMUP_FILE)))
    assert len(records) == len(export.SIGNATURES + export.MAP_SIGNATURES)  # every name its own
    assert metadata["landmarks"] == len(TINY_CORPUS)
    assert metadata["path_search"] == paths.PathSearch().get_config()
    assert metadata["limits"]["max_path_points"] == paths.MAX_POINTS


def test_signatures_match_the_model_in_process(exported, loaded, tiny_text):
    model = exported[0]
    assert set(export.SIGNATURES) <= set(loaded.signatures)
    sentences = tf.constant(["The cat sat on the mat.", "i like your style ."])
    ids = tiny_text.encode(sentences).ids
    decoded = loaded.signatures["decode"](sentences=sentences)
    expected = model.reconstruct(ids[:, :7])
    np.testing.assert_array_equal(decoded["token_ids"].numpy(), expected.ids.numpy())
    encoded = loaded.signatures["encode"](sentences=sentences)
    np.testing.assert_allclose(encoded["latent"].numpy(), model.encode(ids[:, :7])[0].numpy(), atol=1e-5)
    # One point per row: a path of 4 points between two pairs is 8 rows, in any order.
    alphas = np.array([0, 1 / 3, 2 / 3, 1], np.float32)
    order = np.array([5, 0, 7, 2, 1, 6, 3, 4])
    pair, point = order // 4, order % 4
    modes = np.where(point % 2 == 0, "slerp", "linear")
    path_out = loaded.signatures["interpolate"](
        sentence_a=tf.gather(sentences, pair), sentence_b=tf.gather(sentences[::-1], pair),
        alpha=tf.constant(alphas[point]), mode=tf.constant(modes))
    assert path_out["sentence"].shape == (8,)
    # The served path is the library's, sentence for sentence, mode for mode.
    for mode in ("slerp", "linear"):
        library = model.interpolate(ids, ids[::-1], alphas, mode=mode)
        expected = tiny_text.decode(tf.reshape(library.ids, [8, -1])).numpy().reshape(2, 4)
        rows = modes == mode
        np.testing.assert_array_equal(path_out["sentence"].numpy()[rows], expected[pair[rows], point[rows]])
    times = np.array([0.5, 1.0, 2.5], np.float32)
    trajectory = loaded.signatures["trajectory"](sentences=tf.repeat(sentences, 3), time=tf.constant(np.tile(times, 2)))
    assert trajectory["state"].shape == (6, 32)
    assert trajectory["top_k_tokens"].shape == (6, export.TOP_K)
    states, _ = model.trajectory(ids[:, :7], times)
    np.testing.assert_allclose(trajectory["state"].numpy(), states.numpy().reshape(6, 32), atol=1e-4)


def test_every_signature_is_batchable_along_dimension_zero(loaded):
    """TF Serving's batching concatenates requests' rows and splits the answer: two requests
    joined give the rows of the two separate answers, for every signature."""
    first = {
        "decode": {"sentences": ["i like your style ."]},
        "encode": {"sentences": ["the cat sat on the mat .", "i like it ."]},
        "interpolate": {"sentence_a": ["i like it ."] * 2, "sentence_b": ["the cat sat ."] * 2,
                        "alpha": np.float32([0.25, 1.0]), "mode": ["slerp", "linear"]},
        "trajectory": {"sentences": ["i like it ."], "time": np.float32([0.75])},
        "decode_latent": {"latent": np.float32(np.linspace(-1, 1, 64).reshape(2, 32))},
        "trajectory_latent": {"latent": np.float32(np.linspace(-1, 1, 32).reshape(1, 32)), "time": np.float32([1.5])},
        "landmarks": {"count": np.int32([2])},
        "locate": {"codes": np.float32(np.linspace(-1, 1, 64).reshape(2, 32))},
    }
    second = {
        "decode": {"sentences": ["the cat sat on the mat .", "a b c d e f g h ."]},
        "encode": {"sentences": ["you ."]},
        "interpolate": {"sentence_a": ["you ."], "sentence_b": ["i like your style ."],
                        "alpha": np.float32([0.5]), "mode": ["linear"]},
        "trajectory": {"sentences": ["the cat sat .", "i like it ."], "time": np.float32([2.0, 0.25])},
        "decode_latent": {"latent": np.float32(np.linspace(1, -1, 32).reshape(1, 32))},
        "trajectory_latent": {"latent": np.float32(np.linspace(0, 1, 64).reshape(2, 32)), "time": np.float32([0.5, 3.0])},
        "landmarks": {"count": np.int32([4, 1])},
        "locate": {"codes": np.float32(np.linspace(1, 0, 32).reshape(1, 32))},
    }
    for name in ("serving_default", "decode", "encode", "interpolate", "trajectory", "decode_latent", "trajectory_latent",
                 "landmarks", "locate"):
        key = "decode" if name == "serving_default" else name
        signature = loaded.signatures[name]
        separate = [signature(**{k: tf.constant(v) for k, v in request[key].items()}) for request in (first, second)]
        joined = signature(**{k: tf.concat([tf.constant(first[key][k]), tf.constant(second[key][k])], 0)
                              for k in first[key]})
        for output, value in joined.items():
            if output == "nfe":  # the batch's count by definition, the same on every row of a run
                assert len(set(value.numpy().tolist())) == 1
                continue
            rows = [part[output].numpy() for part in separate]
            assert value.shape[0] == sum(len(r) for r in rows), (name, output)
            width = value.shape[1] if value.ndim > 1 else None
            for got, want in zip(np.split(value.numpy(), [len(rows[0])]), rows):
                if width is not None and want.shape[1] != width:  # rows padded to the longest
                    want = np.pad(want, [(0, 0), (0, width - want.shape[1])] + [(0, 0)] * (want.ndim - 2),
                                  constant_values=b"" if want.dtype.kind == "O" else 0)
                if want.dtype.kind == "f":
                    np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"{name}/{output}")
                else:
                    np.testing.assert_array_equal(got, want, err_msg=f"{name}/{output}")


def test_the_served_path_is_the_librarys_and_pads_shorter_rows(exported, loaded, tiny_text):
    model = exported[0]
    a = ["the cat sat on the mat .", "i like your style .", "he has a red car ."]
    b = ["the pain was unbearable .", "we walk to school every day .", "a dog ran in the park ."]
    points = np.int32([5, 9, 2])
    served = loaded.signatures["path"](sentence_a=tf.constant(a), sentence_b=tf.constant(b), points=tf.constant(points))
    assert served["sentences"].shape == (3, 9) and served["codes"].shape == (3, 9, 32)
    width = max(len(s.split()) for s in a + b)
    ids_a, ids_b = (tiny_text.encode(x).ids[:, :width] for x in (a, b))
    library = model.path(ids_a, ids_b, points)
    expected = tiny_text.decode(tf.reshape(library.ids, [27, -1])).numpy().reshape(3, 9)
    np.testing.assert_array_equal(served["sentences"].numpy(), expected)
    np.testing.assert_allclose(served["codes"].numpy(), library.codes.numpy(), atol=1e-4)
    for row, count in enumerate(points):
        assert all(served["sentences"].numpy()[row, count:] == b"")
    # The ends are the model's decodes of the two sentences (the export's search leaves them unrefined).
    decoded = loaded.signatures["decode"](sentences=tf.constant(a + b))["sentences"].numpy()
    np.testing.assert_array_equal(served["sentences"].numpy()[:, 0], decoded[:3])
    np.testing.assert_array_equal(served["sentences"].numpy()[[0, 1, 2], points - 1], decoded[3:])


@pytest.mark.parametrize("signature, inputs, message", [
    ("path", {"sentence_a": tf.constant(["a ."]), "sentence_b": tf.constant(["b ."]),
              "points": tf.constant([1])}, "points must be between 2"),
    ("path", {"sentence_a": tf.constant(["a ."]), "sentence_b": tf.constant(["b ."]),
              "points": tf.constant([paths.MAX_POINTS + 1])}, "points must be between 2"),
    ("path", {"sentence_a": tf.constant(["a .", "b ."]), "sentence_b": tf.constant(["b .", "c ."]),
              "points": tf.constant([3])}, "one row each"),
    ("path", {"sentence_a": tf.constant(["a ."]), "sentence_b": tf.constant(["   "]),
              "points": tf.constant([3])}, "sentence_b: a sentence is empty"),
    ("decode", {"sentences": tf.constant([], tf.string)}, "batch is empty"),
    ("decode", {"sentences": tf.constant(["  ", "ok ."])}, "sentence is empty"),
    ("decode", {"sentences": tf.constant(["x" * 2000])}, "longer than"),
    ("interpolate", {"sentence_a": tf.constant(["a ."]), "sentence_b": tf.constant(["b ."]),
                     "alpha": tf.constant([1.5]), "mode": tf.constant(["linear"])}, "between 0 and 1"),
    ("interpolate", {"sentence_a": tf.constant(["a ."]), "sentence_b": tf.constant(["b ."]),
                     "alpha": tf.constant([np.nan], tf.float32), "mode": tf.constant(["linear"])}, "between 0 and 1"),
    ("interpolate", {"sentence_a": tf.constant(["a ."]), "sentence_b": tf.constant(["b .", "c ."]),
                     "alpha": tf.constant([0.5]), "mode": tf.constant(["linear"])}, "one row each"),
    ("interpolate", {"sentence_a": tf.constant(["a .", "b ."]), "sentence_b": tf.constant(["b .", "c ."]),
                     "alpha": tf.constant([0.5, 0.5]), "mode": tf.constant(["linear", "cubic"])}, "mode must be"),
    ("trajectory", {"sentences": tf.constant(["a ."]), "time": tf.constant([np.nan])}, "finite"),
    ("trajectory", {"sentences": tf.constant(["a ."]), "time": tf.constant([-1.0])}, ">= 0"),
    ("trajectory", {"sentences": tf.constant(["a .", "b ."]), "time": tf.constant([1.0])}, "one row each"),
])
def test_bad_input_is_a_clear_invalid_argument(loaded, signature, inputs, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures[signature](**inputs)


@pytest.mark.slow
def test_existing_version_is_refused_and_overwrite_is_atomic(exported, tiny_text, tmp_path):
    _, base, path = exported
    # With scheduled sampling, whose rate and seed variables the export carries unused.
    model = small_model(tiny_text.vocabulary_size, "gru", units=8, embedding_dim=4,
                        max_length=tiny_text.max_length, scheduled_sampling=0.3)
    before = os.path.getmtime(os.path.join(path, "saved_model.pb"))
    with pytest.raises(export.ExportError, match="exists"):
        export_for_serving(model, tiny_text, str(base), "m", version=3)
    assert os.path.getmtime(os.path.join(path, "saved_model.pb")) == before
    with pytest.raises(export.ExportError):
        export_for_serving(model, tiny_text, str(base), "../escape", version=1)
    assert export_for_serving(model, tiny_text, str(base), "m").endswith(os.path.join("m", "4"))
    export_for_serving(model, tiny_text, str(base), "m", version=4, overwrite=True)
    assert sorted(os.listdir(os.path.join(str(base), "m"))) == ["3", "4"]


@pytest.mark.slow
def test_tf1_session_loader_in_a_fresh_process_and_only_core_or_text_ops(exported, tiny_text):
    model, _, path = exported
    result = subprocess.run([sys.executable, PROBE, path, "i like your style .", "he has a red car ."],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["imported_project"]
    assert report["unknown_ops"] == []
    assert report["unbatchable"] == []
    assert not {"PyFunc", "EagerPyFunc", "PyFuncStateless"} & set(report["core_ops"])
    assert {"CaseFoldUTF8", "NormalizeUTF8"} <= set(report["text_ops"])
    ids = tiny_text.encode(["i like your style .", "he has a red car ."]).ids[:, :6]
    np.testing.assert_array_equal(np.array(report["token_ids"]), model.reconstruct(ids).ids.numpy())


@pytest.mark.slow
def test_saved_model_cli_lists_the_signatures(exported):
    result = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--all", "--dir", exported[2]],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in export.SIGNATURES + export.MAP_SIGNATURES:
        assert f"signature_def['{name}']" in result.stdout
    assert result.stdout.count("Method name is: tensorflow/serving/predict") == len(export.SIGNATURES + export.MAP_SIGNATURES)
    for snippet in ("inputs['alpha'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1)",
                    "inputs['time'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1)",
                    "inputs['sentences'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)"):
        assert snippet in result.stdout


def test_the_latent_signatures_invert_encode_and_follow_any_code(exported, loaded):
    model = exported[0]
    sentences = tf.constant(["the cat sat on the mat .", "i like your style ."])
    latent = loaded.signatures["encode"](sentences=sentences)["latent"]
    from_code = loaded.signatures["decode_latent"](latent=latent)
    np.testing.assert_array_equal(from_code["sentences"].numpy(),
                                  loaded.signatures["decode"](sentences=sentences)["sentences"].numpy())
    # Any code, not only an encoder's: the midpoint of the two.
    middle = (latent[:1] + latent[1:]) / 2
    decoded = model.decode(middle)
    np.testing.assert_array_equal(loaded.signatures["decode_latent"](latent=middle)["token_ids"].numpy(),
                                  decoded.ids.numpy())
    times = tf.constant([0.5, 2.25])
    along = loaded.signatures["trajectory_latent"](latent=latent, time=times)
    expected = loaded.signatures["trajectory"](sentences=sentences, time=times)  # a trajectory decoder reads no words
    np.testing.assert_allclose(along["state"].numpy(), expected["state"].numpy(), atol=1e-5)
    np.testing.assert_array_equal(along["top_k_ids"].numpy(), expected["top_k_ids"].numpy())
    for inputs, message in (({"latent": tf.fill([1, latent.shape[1]], np.nan)}, "finite"),
                            ({"latent": tf.zeros([0, latent.shape[1]])}, "batch is empty")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            loaded.signatures["decode_latent"](**inputs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one row each"):
        loaded.signatures["trajectory_latent"](latent=latent, time=tf.constant([1.0]))


def test_the_latent_map_places_codes_and_names_their_nearest_sentences(exported, loaded, tiny_text):
    from tfode.latent_map import NEIGHBOURS

    model = exported[0]
    every = loaded.signatures["landmarks"](count=tf.constant([100, 2]))
    sentences = [s.decode() for s in every["sentences"][0].numpy()]
    assert sentences == list(dict.fromkeys(TINY_CORPUS))  # all of them, once, in order
    assert [s.decode() for s in every["sentences"][1].numpy()] == sentences[:2] + [""] * (len(sentences) - 2)
    np.testing.assert_array_equal(every["points"][1, 2:].numpy(), 0.0)
    codes = model.encode(tiny_text.encode(sentences).ids)[0].numpy()
    # The plane is the codes' two principal directions: the first spreads them most, and the
    # points are the centred codes on it.
    points = every["points"][0].numpy()
    assert points[:, 0].var() >= points[:, 1].var() > 0
    np.testing.assert_allclose(points.mean(axis=0), 0.0, atol=1e-4)
    located = loaded.signatures["locate"](codes=tf.constant(codes))
    np.testing.assert_allclose(located["points"].numpy(), points, atol=1e-4)
    assert located["neighbours"].shape == (len(sentences), NEIGHBOURS)
    assert [row[0].decode() for row in located["neighbours"].numpy()] == sentences  # each its own nearest
    np.testing.assert_allclose(located["distances"][:, 0].numpy(), 0.0, atol=1e-2)
    assert np.all(np.diff(located["distances"].numpy(), axis=1) >= 0)  # nearest first
    for signature, inputs, message in (("landmarks", {"count": tf.constant([3, 0])}, "at least 1"),
                                       ("locate", {"codes": tf.fill([1, codes.shape[1]], np.inf)}, "finite")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            loaded.signatures[signature](**inputs)


def test_an_interpolated_point_gives_its_code_and_decodes_give_token_times(exported, loaded, tiny_text):
    model = exported[0]
    a, b = tf.constant(["the cat sat on the mat ."]), tf.constant(["i like your style ."])
    point = loaded.signatures["interpolate"](sentence_a=a, sentence_b=b, alpha=tf.constant([0.4]),
                                            mode=tf.constant(["slerp"]))
    expected = model.latent_point(tiny_text.encode(a).ids, tiny_text.encode(b).ids, tf.constant([0.4]), tf.constant(["slerp"]))
    np.testing.assert_allclose(point["code"].numpy(), expected.numpy(), atol=1e-5)
    np.testing.assert_array_equal(loaded.signatures["decode_latent"](latent=point["code"])["sentences"].numpy(),
                                  point["sentence"].numpy())
    decoded = loaded.signatures["decode"](sentences=a)
    steps = decoded["token_ids"].shape[1]
    np.testing.assert_allclose(decoded["token_times"][0].numpy(), model.decoder.time_span * np.arange(1, steps + 1))


def test_a_latent_map_needs_three_finite_codes():
    from tfode.latent_map import LatentMap

    with pytest.raises(ValueError, match="at least 3"):
        LatentMap(["a", "b"], np.zeros([2, 4]))
    with pytest.raises(ValueError, match="one row per sentence"):
        LatentMap(["a", "b", "c"], np.zeros([2, 4]))
    with pytest.raises(ValueError, match="finite"):
        LatentMap(["a", "b", "c"], np.full([3, 4], np.nan))
