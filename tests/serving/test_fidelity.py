"""Where a client can tell, the server behaves as tensorflow_model_server: the model config file
(several models, version policies, labels, reload), REST paths and signature names, polling,
the default version policy, warm-up limits and deadlines."""

import os
import shutil
import sys
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (classification_pb2, model_management_pb2, model_service_pb2_grpc,
                                     prediction_log_pb2)

from serving.client import ServingClientError, TFServingClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import MODEL_NAME, ServerProcess, http, wait_for  # noqa: E402

pytestmark = pytest.mark.slow


def config_text(models):
    """A ModelServerConfig: `models` is [(name, base_path, policy text, {label: version})]."""
    entries = []
    for name, base, policy, labels in models:
        label_text = " ".join(f'version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items())
        entries.append(f'config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" '
                       f"model_version_policy {{ {policy} }} {label_text} }}")
    return "model_config_list { " + " ".join(entries) + " }\n"


def available(client):
    return sorted(int(s["version"]) for s in client.status() if s["state"] == "AVAILABLE")


def test_model_config_file_policies_labels_and_reload(export_base, tmp_path):
    version = export_base / MODEL_NAME / "1"
    for model, versions in (("alpha", (1, 2, 3)), ("beta", (1, 2))):
        for number in versions:
            shutil.copytree(version, tmp_path / model / str(number))
    config = tmp_path / "models.config"
    config.write_text(config_text([
        ("alpha", tmp_path / "alpha", "specific { versions: 1 versions: 2 }", {"stable": 1, "canary": 2}),
        ("beta", tmp_path / "beta", "all {}", {}),
    ]))
    server = ServerProcess(export_base, "--model_config_file", str(config),
                           "--model_config_file_poll_wait_seconds", "0.5", "--enable_model_warmup", "false",
                           model=False)
    try:
        alpha, beta = TFServingClient(server.grpc, "alpha"), TFServingClient(server.grpc, "beta")
        assert available(alpha) == [1, 2] and available(beta) == [1, 2]
        # Labels over gRPC (model_spec.version_label) and REST (/labels/LABEL).
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.grpc))
        predict = predict_pb2.PredictRequest()
        predict.model_spec.name, predict.model_spec.version_label = "alpha", "canary"
        predict.inputs["sentences"].CopyFrom(tf.make_tensor_proto(np.array(["i like it ."], dtype=object)))
        assert stub.Predict(predict, timeout=30).model_spec.version.value == 2
        predict.model_spec.version_label = "nightly"
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(predict, timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Unrecognized servable version label: nightly" in caught.value.details()
        status, answer = http("POST", f"{server.rest}/v1/models/alpha/labels/stable:predict",
                              {"signature_name": "", "instances": ["he has a red car ."]})
        assert status == 200 and answer["predictions"][0]["sentences"] == "he has a red car ."
        status, answer = http("GET", f"{server.rest}/v1/models/alpha/labels/canary")
        assert status == 200 and [s["version"] for s in answer["model_version_status"]] == ["2"]

        # HandleReloadConfigRequest: beta only. A config it cannot serve is refused whole.
        models = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(server.grpc))
        reload = model_management_pb2.ReloadConfigRequest()
        text_format.Parse(config_text([("beta", tmp_path / "beta", "latest { num_versions: 1 }", {"live": 1})]),
                          reload.config)
        with pytest.raises(grpc.RpcError) as caught:  # the label names a version the policy drops
            models.HandleReloadConfigRequest(reload, timeout=60)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "live" in caught.value.details()
        assert available(alpha) == [1, 2]
        reload = model_management_pb2.ReloadConfigRequest()
        text_format.Parse(config_text([("beta", tmp_path / "beta", "latest { num_versions: 1 }", {})]), reload.config)
        models.HandleReloadConfigRequest(reload, timeout=60)
        assert available(beta) == [2]
        status, answer = http("POST", f"{server.rest}/v1/models/alpha:predict", {"instances": ["i like it ."]})
        assert status == 404 and "alpha" in answer["error"]

        # The file is polled: rewriting it brings alpha back with its newest version only.
        config.write_text(config_text([("alpha", tmp_path / "alpha", "latest { num_versions: 1 }", {}),
                                       ("beta", tmp_path / "beta", "all {}", {})]))
        assert wait_for(lambda: _safe_available(alpha) == [3], timeout=60)
    finally:
        assert server.stop() == 0


def _safe_available(client):
    try:
        return available(client)
    except ServingClientError:
        return None


def test_rest_paths_signature_names_and_missing_versions_as_the_stock_server(server):
    rest = server.rest
    for method, path in (("GET", "/v1/models"), ("GET", "/v1/models/tfode:predict"), ("POST", "/v1/models/tfode"),
                         ("POST", "/v1/models/tfode/versions/x:predict"), ("POST", "/v1/models/tfode:explain")):
        status, answer = http(method, rest + path, {"instances": ["a ."]} if method == "POST" else None)
        assert status == 400 and answer["error"].startswith("Malformed request"), (method, path, answer)
    # Outside /v1/ the stock router has no handler: a bare 404.
    for method, path in (("GET", "/v2/models/tfode"), ("GET", "/"), ("POST", "/predict")):
        status, answer = http(method, rest + path, {"instances": ["a ."]} if method == "POST" else None)
        assert (status, answer) == (404, {}), (method, path, answer)
    # An empty signature name means serving_default, over REST as over gRPC.
    status, answer = http("POST", f"{rest}/v1/models/tfode:predict",
                          {"signature_name": "", "instances": ["he has a red car ."]})
    assert status == 200 and answer["predictions"][0]["sentences"] == "he has a red car ."
    status, answer = http("POST", f"{rest}/v1/models/tfode/versions/7:predict", {"instances": ["a ."]})
    assert status == 404 and "Servable not found" in answer["error"]


def test_polling_flags_rest_off_and_the_default_version_policy(export_base, tmp_path):
    base = tmp_path / "exports"
    for number in (1, 2):
        shutil.copytree(export_base / MODEL_NAME / "1", base / MODEL_NAME / str(number))
    # --file_system_poll_wait_seconds 0: one look at start; --rest_api_port 0: no REST; the
    # session runs every op in the calling thread.
    server = ServerProcess(base, "--file_system_poll_wait_seconds", "0", "--rest_api_port", "0",
                           "--enable_model_warmup", "false", "--tensorflow_intra_op_parallelism", "1",
                           "--tensorflow_inter_op_parallelism", "-1")
    try:
        assert server.rest.endswith(":0")
        client = TFServingClient(server.grpc, MODEL_NAME)
        assert available(client) == [2]  # latest { num_versions: 1 } by default
        assert client.decode(["a cat sees the dog ."])["lengths"][0] > 0
        with pytest.raises(ServingClientError) as caught:
            TFServingClient(server.grpc, MODEL_NAME, version=1).decode(["a ."])
        assert caught.value.code == "NOT_FOUND"
        shutil.copytree(export_base / MODEL_NAME / "1", base / MODEL_NAME / "3")
        time.sleep(2)
        assert available(client) == [2]
    finally:
        assert server.stop() == 0
    # A negative wait never looks at the disk: no version, NOT_FOUND (404), and the server stays up.
    server = ServerProcess(base, "--file_system_poll_wait_seconds", "-1")
    try:
        for client in (TFServingClient(server.grpc, MODEL_NAME), TFServingClient(server.rest, MODEL_NAME, rest=True)):
            with pytest.raises(ServingClientError) as caught:
                client.decode(["a ."])
            assert caught.value.code == "NOT_FOUND"
        assert http("GET", f"{server.rest}/v1/models/{MODEL_NAME}")[0] == 404
    finally:
        assert server.stop() == 0


def _write_warmup(folder, records):
    path = folder / "assets.extra" / "tf_serving_warmup_requests"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record.SerializeToString())


def test_warmup_limits_and_client_deadlines(export_base, tmp_path):
    base = tmp_path / "exports"
    good = export_base / MODEL_NAME / "1"
    for number in (1, 2, 3):
        shutil.copytree(good, base / MODEL_NAME / str(number))
    predict_record = next(iter(tf.data.TFRecordDataset(str(good / "assets.extra" / "tf_serving_warmup_requests"))))
    predict_log = prediction_log_pb2.PredictionLog.FromString(predict_record.numpy())
    classify = prediction_log_pb2.PredictionLog(
        classify_log=prediction_log_pb2.ClassifyLog(request=classification_pb2.ClassificationRequest()))
    _write_warmup(base / MODEL_NAME / "2", [predict_log, classify])
    _write_warmup(base / MODEL_NAME / "3", [predict_log] * 1001)
    server = ServerProcess(base, "--max_versions", "3", "--max_request_rows", "100000", "--max_num_load_retries", "0")
    try:
        client = TFServingClient(server.grpc, MODEL_NAME)
        statuses = {int(s["version"]): s for s in client.status()}
        assert statuses[1]["state"] == "AVAILABLE"
        assert statuses[2]["state"] == "END" and "record 1 is a classify_log" in statuses[2]["status"]["error_message"]
        assert statuses[3]["state"] == "END" and "more than 1000 records" in statuses[3]["status"]["error_message"]
        # A client deadline bounds the work: the request fails with DEADLINE_EXCEEDED and the
        # server answers the next one.
        hurried = TFServingClient(server.grpc, MODEL_NAME, timeout=0.05)
        sentences = [f"the cat sat on the mat {i} ." for i in range(64)]
        started = time.monotonic()
        with pytest.raises(ServingClientError) as caught:
            hurried.trajectory(sentences, np.linspace(0.0, 9.0, 400))
        assert caught.value.code == "DEADLINE_EXCEEDED" and time.monotonic() - started < 5
        assert client.decode(["he has a red car ."])["sentences"][0] == b"he has a red car ."
    finally:
        assert server.stop() == 0
