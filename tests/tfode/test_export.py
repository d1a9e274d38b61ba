"""The SavedModel: signatures over raw strings, the TF Serving contract, atomic writing."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import small_model
from tfode import export

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
    path = export.export_saved_model(model, tiny_text, str(base), "m", version=3)
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
    records = list(tf.data.TFRecordDataset(os.path.join(path, "assets.extra", export.WARMUP_FILE)))
    assert len(records) == 4


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
    path_out = loaded.signatures["interpolate"](sentence_a=sentences, sentence_b=sentences[::-1],
                                                num_steps=tf.constant(4), mode=tf.constant("slerp"))
    assert path_out["sentences"].shape == (2, 4)
    np.testing.assert_allclose(path_out["alphas"].numpy(), [0, 1 / 3, 2 / 3, 1], atol=1e-6)
    # The served path is the library's, sentence for sentence.
    library = model.interpolate(ids, ids[::-1], path_out["alphas"], mode="slerp")
    expected = tiny_text.decode(tf.reshape(library.ids, [8, -1])).numpy().reshape(2, 4)
    np.testing.assert_array_equal(path_out["sentences"].numpy(), expected)
    trajectory = loaded.signatures["trajectory"](sentences=sentences, times=tf.constant([0.5, 1.0, 2.5]))
    assert trajectory["states"].shape == (2, 3, 32)
    assert trajectory["top_k_tokens"].shape == (2, 3, export.TOP_K)
    states, _ = model.trajectory(ids[:, :7], [0.5, 1.0, 2.5])
    np.testing.assert_allclose(trajectory["states"].numpy(), states.numpy(), atol=1e-4)


@pytest.mark.parametrize("signature, inputs, message", [
    ("decode", {"sentences": tf.constant([], tf.string)}, "batch is empty"),
    ("decode", {"sentences": tf.constant(["  ", "ok ."])}, "sentence is empty"),
    ("decode", {"sentences": tf.constant(["x" * 2000])}, "longer than"),
    ("interpolate", {"sentence_a": tf.constant(["a ."]), "sentence_b": tf.constant(["b ."]),
                     "num_steps": tf.constant(1), "mode": tf.constant("linear")}, "at least 2"),
    ("interpolate", {"sentence_a": tf.constant(["a ."]), "sentence_b": tf.constant(["b .", "c ."]),
                     "num_steps": tf.constant(3), "mode": tf.constant("linear")}, "same batch size"),
    ("interpolate", {"sentence_a": tf.constant(["a ."]), "sentence_b": tf.constant(["b ."]),
                     "num_steps": tf.constant(3), "mode": tf.constant("cubic")}, "mode must be"),
    ("trajectory", {"sentences": tf.constant(["a ."]), "times": tf.constant([np.nan])}, "finite"),
    ("trajectory", {"sentences": tf.constant(["a ."]), "times": tf.constant([], tf.float32)}, "times is empty"),
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
        export.export_saved_model(model, tiny_text, str(base), "m", version=3)
    assert os.path.getmtime(os.path.join(path, "saved_model.pb")) == before
    with pytest.raises(export.ExportError):
        export.export_saved_model(model, tiny_text, str(base), "../escape", version=1)
    assert export.export_saved_model(model, tiny_text, str(base), "m").endswith(os.path.join("m", "4"))
    export.export_saved_model(model, tiny_text, str(base), "m", version=4, overwrite=True)
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
    for name in export.SIGNATURES:
        assert f"signature_def['{name}']" in result.stdout
    assert result.stdout.count("Method name is: tensorflow/serving/predict") == len(export.SIGNATURES)
    for snippet in ("inputs['num_steps'] tensor_info:\n        dtype: DT_INT32\n        shape: ()",
                    "inputs['times'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1)",
                    "inputs['sentences'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)"):
        assert snippet in result.stdout
