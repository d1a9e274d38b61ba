"""End to end against `python -m serving.server` in a subprocess, over gRPC and REST."""

import json
import os
import re
import shutil
import sys
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from serving.client import ServingClientError, TFServingClient
from support import MODEL_NAME, ServerProcess, wait_for

# Every test here talks to a server subprocess.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["grpc", "rest"])
def client(request, server):
    if request.param == "grpc":
        return TFServingClient(server.grpc, MODEL_NAME)
    return TFServingClient(server.rest, MODEL_NAME, rest=True)


@pytest.fixture(scope="module")
def in_process(export_base):
    return tf.saved_model.load(str(export_base / MODEL_NAME / "1"))


def test_every_signature_matches_in_process_results(client, in_process, sentences):
    expected = in_process.signatures["decode"](sentences=tf.constant(sentences.astype(str)))
    decoded = client.decode(list(sentences))
    assert decoded["sentences"].tolist() == expected["sentences"].numpy().tolist()
    np.testing.assert_array_equal(decoded["token_ids"], expected["token_ids"].numpy())
    np.testing.assert_allclose(decoded["scores"], expected["scores"].numpy(), atol=1e-5)
    assert decoded["sentences"][0] == b"the cat sat on the mat ."  # the model learned it

    encoded = client.encode(list(sentences))
    expected = in_process.signatures["encode"](sentences=tf.constant(sentences.astype(str)))
    np.testing.assert_allclose(encoded["latent"], expected["latent"].numpy(), atol=1e-5)

    path = client.interpolate(["i like your style ."], ["the pain was unbearable ."], steps=5, mode="slerp")
    expected = in_process.signatures["interpolate"](
        sentence_a=tf.constant(["i like your style ."] * 5), sentence_b=tf.constant(["the pain was unbearable ."] * 5),
        alpha=tf.constant(np.linspace(0, 1, 5, dtype=np.float32)), mode=tf.constant(["slerp"] * 5))
    assert path["sentences"].shape == (1, 5)
    assert path["sentences"][0].tolist() == expected["sentence"].numpy().tolist()
    assert path["sentences"][0, 0] == b"i like your style ."
    assert path["sentences"][0, -1] == b"the pain was unbearable ."

    found = client.path(["i like your style .", "he has a red car ."], ["the pain was unbearable .", "i like it ."], 6)
    expected = in_process.signatures["path"](
        sentence_a=tf.constant(["i like your style .", "he has a red car ."]),
        sentence_b=tf.constant(["the pain was unbearable .", "i like it ."]), points=tf.constant([6, 6]))
    assert found["sentences"] == [[s.decode() for s in row] for row in expected["sentences"].numpy()]
    np.testing.assert_allclose(found["codes"], expected["codes"].numpy(), atol=1e-5)
    assert found["sentences"][0][0] == "i like your style ." and found["sentences"][0][-1] == "the pain was unbearable ."

    trajectory = client.trajectory(["he has a red car ."], [0.5, 1.0, 3.25])
    expected = in_process.signatures["trajectory"](sentences=tf.constant(["he has a red car ."] * 3),
                                                   time=tf.constant([0.5, 1.0, 3.25]))
    np.testing.assert_allclose(trajectory["state"][0], expected["state"].numpy(), atol=1e-5)
    assert trajectory["top_k_tokens"][0, 1, 0] == b"he"


def test_status_and_metadata(client):
    assert client.status() == [{"version": "1", "state": "AVAILABLE", "status": client.status()[0]["status"]}]
    metadata = client.metadata()
    assert {"decode", "encode", "interpolate", "path", "trajectory", "serving_default"} <= set(metadata)
    assert metadata["interpolate"]["inputs"]["alpha"] == ("DT_FLOAT", [-1])
    assert metadata["path"]["inputs"]["points"] == ("DT_INT32", [-1])
    assert metadata["trajectory"]["inputs"]["time"] == ("DT_FLOAT", [-1])


BAD_REQUESTS = [
    # gRPC checks the tensor's dtype against the signature's, as a session's feed does; REST
    # reads JSON numbers where strings belong.
    ("decode", {"sentences": np.array([1.5, 2.5], np.float32)}, "INVALID_ARGUMENT",
     "to be string but float is provided|must be strings"),
    ("decode", {"sentences": np.array([["a ."]], dtype=object)}, "INVALID_ARGUMENT", "shape"),
    ("decode", {"text": np.array(["a ."], dtype=object)}, "INVALID_ARGUMENT", "takes inputs"),
    ("decode", {"sentences": np.array(["a ."], dtype=object), "extra": np.array([1])}, "INVALID_ARGUMENT", "unexpected"),
    ("decode", {"sentences": np.array([], dtype=object)}, "INVALID_ARGUMENT", "batch is empty"),
    ("decode", {"sentences": np.array(["a ."] * 17, dtype=object)}, "INVALID_ARGUMENT", "max_request_rows"),
    ("decode", {"sentences": np.array(["   "], dtype=object)}, "INVALID_ARGUMENT", "sentence is empty"),
    # FAILED_PRECONDITION, which REST answers 400 (read as INVALID_ARGUMENT), as the stock server.
    ("nonexistent", {"sentences": np.array(["a ."], dtype=object)},
     {"grpc": "FAILED_PRECONDITION", "rest": "INVALID_ARGUMENT"}, 'Serving signature name: "nonexistent" not found'),
    ("interpolate", {"sentence_a": np.array(["a ."], dtype=object), "sentence_b": np.array(["b ."], dtype=object),
                     "alpha": np.float32([2.0]), "mode": np.array(["linear"], dtype=object)},
     "INVALID_ARGUMENT", "between 0 and 1"),
    ("interpolate", {"sentence_a": np.array(["a ."], dtype=object), "sentence_b": np.array(["b ."], dtype=object),
                     "alpha": np.float32(0.5), "mode": np.array("linear", dtype=object)}, "INVALID_ARGUMENT", "shape"),
    ("trajectory", {"sentences": np.array(["a ."], dtype=object), "time": np.array([np.inf], np.float32)},
     "INVALID_ARGUMENT", "finite"),
]


@pytest.mark.parametrize("signature, inputs, code, message", BAD_REQUESTS)
def test_malformed_requests_get_the_right_status_and_the_server_keeps_answering(client, signature, inputs, code, message):
    with pytest.raises(ServingClientError) as caught:
        client.predict(signature, inputs)
    if isinstance(code, dict):
        code = code["rest" if client.rest else "grpc"]
    assert caught.value.code == code
    assert re.search(message, caught.value.message), caught.value.message
    assert client.decode(["he has a red car ."])["sentences"][0] == b"he has a red car ."


def test_unknown_model_and_version_are_not_found(server):
    for client in (TFServingClient(server.grpc, "other"), TFServingClient(server.rest, "other", rest=True),
                   TFServingClient(server.grpc, MODEL_NAME, version=9),
                   TFServingClient(server.rest, MODEL_NAME, rest=True, version=9)):
        with pytest.raises(ServingClientError) as caught:
            client.decode(["a ."])
        assert caught.value.code == "NOT_FOUND"


def test_rest_rejects_malformed_json_and_oversized_bodies(server):
    def post(body: bytes):
        request = urllib.request.Request(f"http://{server.rest}/v1/models/{MODEL_NAME}:predict", data=body)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    assert post(b"{not json")[0] == 400
    assert post(b'{"instances": ["a ."], "inputs": {}}')[0] == 400
    assert post(b'{"instances": [[1, 2], [3]]}')[0] == 400
    status, answer = post(b'{"instances": ["he has a red car ."]}')
    assert status == 200 and answer["predictions"][0]["sentences"] == "he has a red car ."
    # Over 4 MiB is read and answered (the sentence is over-long), as the stock server reads it;
    # over this server's --max_request_bytes (8 MiB here) is refused unread.
    status, answer = post(b'{"instances": ["' + b"x" * (5 << 20) + b'"]}')
    assert status == 400 and "longer than" in answer["error"]
    assert post(b'{"instances": ["' + b"x" * (9 << 20) + b'"]}')[0] == 413


def test_versions_appear_fail_and_disappear_while_serving(export_base, trained, tiny_text, tmp_path):
    from training.serving_export import export_for_serving

    base = tmp_path / "exports"
    shutil.copytree(export_base / MODEL_NAME / "1", base / MODEL_NAME / "1")
    server = ServerProcess(base, "--max_versions", "2", "--enable_model_warmup", "false",
                           "--max_num_load_retries", "1", "--load_retry_interval_micros", "100000")
    try:
        client = TFServingClient(server.grpc, MODEL_NAME)
        assert client.status()[0]["version"] == "1"

        export_for_serving(trained, tiny_text, str(base), MODEL_NAME, version=2)
        assert wait_for(lambda: client.status()[0] == {"version": "2", "state": "AVAILABLE",
                                                      "status": {"error_code": "OK", "error_message": ""}})
        assert TFServingClient(server.grpc, MODEL_NAME, version=1).decode(["a ."])["lengths"].shape == (1,)

        broken = base / MODEL_NAME / "3"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
        assert wait_for(lambda: any(s["version"] == "3" and s["state"] == "END" for s in client.status()))
        assert "failed to load (retrying)" in server.read_log()  # --max_num_load_retries 1
        rest = TFServingClient(server.rest, MODEL_NAME, rest=True)
        failed = [[s for s in c.status() if s["version"] == "3"][0]["status"] for c in (client, rest)]
        assert failed[0] == failed[1] and failed[0]["error_code"] != "OK"  # one code on both APIs
        assert rest.decode(["he has a red car ."])["sentences"][0] == b"he has a red car ."

        shutil.rmtree(base / MODEL_NAME / "2")
        assert wait_for(lambda: [s["version"] for s in client.status() if s["state"] == "AVAILABLE"] == ["1"])
        assert client.decode(["he has a red car ."])["sentences"][0] == b"he has a red car ."
    finally:
        assert server.stop() == 0  # SIGTERM: drained and exited cleanly
