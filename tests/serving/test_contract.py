"""The stock server's contract, driven only through the stock client stack: the
`tensorflow_serving.apis` stubs over gRPC, `urllib` over REST. Each test names the stock source
its behaviour was read from (docs/serving.md has the table)."""

import os
import subprocess
import sys

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving import launch, server as server_cli
from serving.client import ServingClientError, TFServingClient
from support import MODEL_NAME, ROOT, http

RAM_BASE = "ram://contract/models"


def copy_tree(source: str, target: str) -> None:
    """Copies a folder with tf.io.gfile (so the target may be any registered file system)."""
    for folder, _, files in tf.io.gfile.walk(source):
        relative = os.path.relpath(folder, source)
        destination = target if relative == "." else f"{target}/{relative}"
        tf.io.gfile.makedirs(destination)
        for name in files:
            tf.io.gfile.copy(f"{folder}/{name}", f"{destination}/{name}", overwrite=True)


class InProcessServer:
    """`serving.server`'s `ModelServer` in this process (a `ram://` base path lives here)."""

    def __init__(self, *flags):
        from serving.model_server import ModelServer

        args = server_cli.build_parser().parse_args(
            ["--host", "127.0.0.1", "--port", "0", "--rest_api_port", str(launch.free_port()), *flags])
        self.server = ModelServer(args)
        self.server.start()
        self.grpc = f"127.0.0.1:{self.server.grpc_port}"
        self.rest = f"127.0.0.1:{self.server.http_server.server_address[1]}"
        self.channel = grpc.insecure_channel(self.grpc, options=[("grpc.max_send_message_length", 64 << 20)])
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def stop(self):
        self.channel.close()
        self.server.stop()


@pytest.fixture(scope="module")
def served(export_base):
    """A server whose only model lives on TensorFlow's in-memory file system, as version 0."""
    copy_tree(str(export_base / MODEL_NAME / "1"), f"{RAM_BASE}/{MODEL_NAME}/0")
    process = InProcessServer("--model_name", MODEL_NAME, "--model_base_path", f"{RAM_BASE}/{MODEL_NAME}",
                              "--enable_grpc_healthcheck_service", "--enable_model_warmup", "false",
                              "--file_system_poll_wait_seconds", "0")
    yield process
    process.stop()


def predict_request(signature, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def test_a_base_path_on_any_tensorflow_file_system_and_version_zero(served):
    # model_servers/server_core, storage_path: versions are non-negative integers; paths are
    # read through TensorFlow's file systems.
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL_NAME
    status = served.models.GetModelStatus(request, timeout=30).model_version_status
    assert [(s.version, s.state) for s in status] == [(0, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]


def test_grpc_outputs_are_typed_fields(served):
    # servables/tensorflow/predict_util.cc: AsProtoField unless
    # --enable_serialization_as_tensor_content.
    response = served.predictions.Predict(
        predict_request("decode", sentences=np.array([b"he has a red car .", b"the cat sat on the mat ."], object)),
        timeout=60)
    outputs = response.outputs
    assert list(outputs["sentences"].string_val) == [b"he has a red car .", b"the cat sat on the mat ."]
    scores = outputs["scores"]
    assert not scores.tensor_content and len(scores.float_val) == np.prod([d.size for d in scores.tensor_shape.dim])
    assert list(outputs["lengths"].int_val) == [6, 7]  # tokens, "." included
    assert len(outputs["truncated"].bool_val) == 2
    assert response.model_spec.version.value == 0 and response.model_spec.signature_name == "decode"


def test_output_filter_unknown_signature_and_wrong_dtype_get_the_stock_codes(served):
    request = predict_request("decode", sentences=np.array([b"he has a red car ."], object))
    request.output_filter.append("lengths")
    assert set(served.predictions.Predict(request, timeout=60).outputs) == {"lengths"}
    request.output_filter.append("no_such_output")
    with pytest.raises(grpc.RpcError) as caught:
        served.predictions.Predict(request, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "output tensor alias not found in signature: no_such_output" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        served.predictions.Predict(predict_request("no_such_signature", sentences=np.array([b"a ."], object)),
                                   timeout=60)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details() == 'Serving signature name: "no_such_signature" not found in signature def'
    # An int where the signature takes a float is refused, not cast.
    with pytest.raises(grpc.RpcError) as caught:
        served.predictions.Predict(predict_request("trajectory", sentences=np.array([b"a ."], object),
                                                   time=np.array([1], np.int32)), timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "to be float but int32 is provided" in caught.value.details()


def test_metadata_returns_every_signature_of_the_metagraph(served):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL_NAME
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    served.predictions.GetModelMetadata(request, timeout=30).metadata["signature_def"].Unpack(signature_map)
    assert {"serving_default", "decode", "encode", "interpolate", "path", "trajectory",
            "__saved_model_init_op"} <= set(signature_map.signature_def)


def test_rest_columnar_answer_of_a_lone_output_is_the_value_itself(served):
    # util/json_tensor.cc: MakeJsonFromTensors writes a single output without its name.
    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def double(self, x):
            return {"doubled": 2.0 * x}

    module = Doubler()
    tf.saved_model.save(module, "ram://contract/lone/doubler/1", signatures={"serving_default": module.double})
    lone = InProcessServer("--model_name", "doubler", "--model_base_path", "ram://contract/lone/doubler",
                           "--file_system_poll_wait_seconds", "0")
    try:
        status, answer = http("POST", f"{lone.rest}/v1/models/doubler:predict", {"inputs": {"x": [1.5, 2.0]}})
    finally:
        lone.stop()
    assert status == 200 and answer == {"outputs": [3.0, 4.0]}
    status, answer = http("POST", f"{served.rest}/v1/models/{MODEL_NAME}:predict",
                          {"signature_name": "encode", "inputs": {"sentences": ["i like it ."]}})
    assert status == 200 and set(answer["outputs"]) == {"latent", "mean", "log_variance", "truncated"}
    # The project's client reads both forms.
    client = TFServingClient(served.rest, MODEL_NAME, rest=True)
    assert client.interpolate(["he has a red car ."], ["i like it ."], steps=2)["sentences"][0, 0] == b"he has a red car ."


def test_requests_over_4_mib_are_read(served):
    # main.cc / server.cc: builder.SetMaxMessageSize(INT32_MAX).
    request = predict_request("decode", sentences=np.array([b"x" * (5 << 20)], object))
    with pytest.raises(grpc.RpcError) as caught:
        served.predictions.Predict(request, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "longer than" in caught.value.details()


def test_the_standard_health_service(served):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    answer = health_pb2_grpc.HealthStub(served.channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.slow
def test_tensor_content_when_asked(export_base):
    process = InProcessServer("--model_name", MODEL_NAME, "--model_base_path", str(export_base / MODEL_NAME),
                              "--enable_serialization_as_tensor_content", "--enable_model_warmup", "false",
                              "--file_system_poll_wait_seconds", "0")
    try:
        outputs = process.predictions.Predict(
            predict_request("decode", sentences=np.array([b"he has a red car ."], object)), timeout=60).outputs
        assert outputs["scores"].tensor_content and not outputs["scores"].float_val
        assert outputs["sentences"].tensor_content and not outputs["sentences"].string_val
        np.testing.assert_array_equal(tf.make_ndarray(outputs["scores"]).shape[0], 1)
        answer = TFServingClient(process.grpc, MODEL_NAME).decode(["he has a red car ."])
        assert answer["sentences"][0] == b"he has a red car ."
    finally:
        process.stop()


# model_servers/main.cc: every flag of the stock server.
STOCK_FLAGS = """port grpc_socket_path rest_api_port rest_api_num_threads rest_api_timeout_in_ms
rest_api_enable_cors_support enable_batching allow_version_labels_for_unavailable_models
batching_parameters_file enable_per_model_batching_parameters model_config_file
model_config_file_poll_wait_seconds model_name model_base_path num_load_threads num_unload_threads
max_num_load_retries load_retry_interval_micros file_system_poll_wait_seconds flush_filesystem_caches
tensorflow_session_parallelism tensorflow_session_config_file tensorflow_intra_op_parallelism
tensorflow_inter_op_parallelism use_alts_credentials ssl_config_file platform_config_file
per_process_gpu_memory_fraction saved_model_tags grpc_channel_arguments grpc_max_threads
enable_model_warmup num_request_iterations_for_warmup version monitoring_config_file
remove_unused_fields_from_bundle_metagraph prefer_tflite_model num_tflite_pools
num_tflite_interpreters_per_pool enable_signature_method_name_check xla_cpu_compilation_enabled
xla_gpu_compilation_enabled enable_profiler thread_pool_factory_config_file mixed_precision
skip_initialize_tpu enable_grpc_healthcheck_service enable_serialization_as_tensor_content""".split()


def test_every_stock_flag_is_accepted_and_the_inert_ones_are_named():
    parser = server_cli.build_parser()
    known = set(vars(parser.parse_args([])))
    assert set(STOCK_FLAGS) <= known
    args = parser.parse_args(["--model_base_path", "m", "--enable_profiler=false", "--num_load_threads=4",
                              "--flush_filesystem_caches", "true", "--grpc_max_threads=3"])
    assert server_cli.given_without_effect(args) == ["--enable_profiler", "--num_load_threads"]
    defaults = parser.parse_args([])
    assert (defaults.port, defaults.rest_api_port, defaults.rest_api_timeout_in_ms, defaults.max_num_load_retries,
            defaults.load_retry_interval_micros, defaults.saved_model_tags, defaults.enable_model_warmup,
            defaults.enable_serialization_as_tensor_content) == (8500, 0, 30000, 5, 60_000_000, "serve", True, False)
    assert defaults.host == "0.0.0.0"  # every interface, as stock
    # No flag of this server shares a name with a batching parameter.
    from serving.batching import BatchingParameters
    import dataclasses

    assert not known & {field.name for field in dataclasses.fields(BatchingParameters)}


def test_version_and_refused_security_flags_answer_before_serving(capsys):
    assert server_cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("TensorFlow ModelServer: ")
    assert server_cli.main(["--model_base_path", "m", "--ssl_config_file", "ssl.config"]) == 2
    assert "--ssl_config_file is not supported" in capsys.readouterr().err


@pytest.mark.slow
def test_an_inert_flag_is_named_in_one_warning_line(export_base):
    process = launch.ServerProcess("--model_name", MODEL_NAME, "--model_base_path", str(export_base / MODEL_NAME),
                                   "--enable_model_warmup", "false", "--num_load_threads", "2",
                                   "--enable_profiler=false", cwd=ROOT)
    try:
        warnings = [line for line in process.read_log().splitlines() if "have no effect" in line]
        assert len(warnings) == 1 and warnings[0].endswith("--enable_profiler --num_load_threads")
    finally:
        assert process.stop() == 0


def test_the_client_retries_unavailable_with_backoff_and_says_how_often():
    port = launch.free_port()  # nothing listens there
    for client in (TFServingClient(f"127.0.0.1:{port}", MODEL_NAME, rest=True, tries=3, backoff=0.01),
                   TFServingClient(f"127.0.0.1:{port}", MODEL_NAME, tries=3, backoff=0.01, timeout=2)):
        with pytest.raises(ServingClientError) as caught:
            client.decode(["a ."])
        assert caught.value.code == "UNAVAILABLE" and "gave up after 3 tries" in caught.value.message
    with pytest.raises(ValueError, match="tries"):
        TFServingClient("127.0.0.1:1", rest=True, tries=0)


def test_server_help_lists_the_flags_without_loading_tensorflow():
    answer = subprocess.run([sys.executable, "-c", "import sys; from serving import server; "
                             "server.build_parser().format_help(); print('tensorflow' in sys.modules)"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert answer.stdout.strip() == "False", answer.stderr


def test_the_latent_signatures_through_the_client(served):
    client = TFServingClient(served.grpc, MODEL_NAME)
    latent = client.encode(["he has a red car ."])["latent"]
    assert client.decode_latent(latent)["sentences"][0] == b"he has a red car ."
    along = client.trajectory_latent(latent, [0.5, 1.0])
    assert along["top_k_tokens"].shape == (1, 2, 5) and along["top_k_tokens"][0, 1, 0] == b"he"
