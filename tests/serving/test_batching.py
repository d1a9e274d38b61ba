"""Server-side batching and Prometheus metrics, against a server subprocess; and the batching
parameters' parser and scheduler in-process."""

import collections
import os
import shutil
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families

from serving.batching import BatchingParameters, BatchScheduler
from serving.client import ServingClientError, TFServingClient
from serving.errors import ServingError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import MODEL_NAME, ServerProcess, wait_for  # noqa: E402

MONITORING = 'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }\n'
SENTENCES = ["the cat sat on the mat .", "i like your style .", "he has a red car .", "a dog ran in the park ."]


# -- in-process -------------------------------------------------------------------------------


def test_parameters_parse_the_stock_text_format_and_refuse_what_it_refuses():
    parameters = BatchingParameters.from_text(
        "max_batch_size { value: 16 }\nbatch_timeout_micros { value: 2500 }\n"
        "num_batch_threads { value: 3 }\nmax_enqueued_batches { value: 7 }\n"
        "allowed_batch_sizes: 4\nallowed_batch_sizes: 16\npad_variable_length_inputs: true\n")
    assert (parameters.max_batch_size, parameters.batch_timeout_micros, parameters.num_batch_threads,
            parameters.max_enqueued_batches, parameters.allowed_batch_sizes,
            parameters.pad_variable_length_inputs) == (16, 2500, 3, 7, (4, 16), True)
    for text, message in [
        ("max_batch_size: 16", 'Expected "{"'),
        ("max_batch_sise { value: 16 }", "no field named"),
        ("max_batch_size { value: 0 }", "at least 1"),
        ("max_batch_size { value: 8 }\nallowed_batch_sizes: 4", "must equal max_batch_size"),
        ("max_batch_size { value: 8 }\nallowed_batch_sizes: 8\nallowed_batch_sizes: 4", "increasing"),
        ("max_execution_batch_size { value: 4 }", "enable_large_batch_splitting"),
    ]:
        with pytest.raises(ValueError, match=message):
            BatchingParameters.from_text(text)


def _scheduler(**values):
    return BatchScheduler(BatchingParameters(**{"num_batch_threads": 1, **values}))


def test_concurrent_requests_are_joined_run_once_and_split_back():
    runs = []

    def run(inputs):
        runs.append(len(inputs["x"]))
        return {"double": inputs["x"] * 2, "rows": np.full(len(inputs["x"]), len(inputs["x"]))}

    scheduler = _scheduler(max_batch_size=8, batch_timeout_micros=200_000)
    try:
        futures = [scheduler.submit(("m", 1, "s"), run, {"x": np.arange(i, i + rows)})
                   for i, rows in ((0, 1), (10, 3), (20, 2))]
        answers = [future.result(10) for future in futures]
    finally:
        scheduler.stop()
    assert runs == [6]
    np.testing.assert_array_equal(answers[1]["double"], [20, 22, 24])
    assert [len(a["double"]) for a in answers] == [1, 3, 2] and answers[2]["rows"].tolist() == [6, 6]


def test_oversized_requests_are_refused_or_split_and_a_full_queue_sheds():
    release = threading.Event()

    def slow(inputs):
        release.wait(10)
        return {"y": inputs["x"] + 1}

    scheduler = _scheduler(max_batch_size=4, max_enqueued_batches=1)
    try:
        with pytest.raises(ServingError, match="larger than maximum input batch size 4") as caught:
            scheduler.submit(("m", 1, "s"), slow, {"x": np.arange(5)})
        assert caught.value.code == "INVALID_ARGUMENT"
        running = scheduler.submit(("m", 1, "s"), slow, {"x": np.arange(4)})
        time.sleep(0.2)  # taken by the batch thread, which now waits
        queued = scheduler.submit(("m", 1, "s"), slow, {"x": np.arange(4)})
        with pytest.raises(ServingError, match="queue .* is full") as caught:
            scheduler.submit(("m", 1, "s"), slow, {"x": np.arange(1)})
        assert caught.value.code == "UNAVAILABLE"
        release.set()
        assert running.result(10)["y"].tolist() == [1, 2, 3, 4] and len(queued.result(10)["y"]) == 4
    finally:
        release.set()
        scheduler.stop()
    splitting = _scheduler(max_batch_size=8, enable_large_batch_splitting=True, max_execution_batch_size=3)
    try:
        sizes = []
        answer = splitting.submit(("m", 1, "s"), lambda inputs: sizes.append(len(inputs["x"])) or {"y": -inputs["x"]},
                                  {"x": np.arange(8)}).result(10)
    finally:
        splitting.stop()
    assert answer["y"].tolist() == [-i for i in range(8)] and max(sizes) <= 3 and sum(sizes) == 8


def test_allowed_batch_sizes_pad_and_one_bad_request_fails_alone():
    seen = []

    def run(inputs):
        seen.append(len(inputs["x"]))
        if (inputs["x"] < 0).any():
            raise ServingError("INVALID_ARGUMENT", "negative")
        return {"y": inputs["x"] * 10}

    scheduler = _scheduler(max_batch_size=8, allowed_batch_sizes=(4, 8), batch_timeout_micros=200_000)
    try:
        good = scheduler.submit(("m", 1, "s"), run, {"x": np.array([1, 2])})
        bad = scheduler.submit(("m", 1, "s"), run, {"x": np.array([-1])})
        assert good.result(10)["y"].tolist() == [10, 20]
        with pytest.raises(ServingError, match="negative"):
            bad.result(10)
    finally:
        scheduler.stop()
    assert seen[0] == 4  # three rows padded to the allowed size 4, then each request alone


# -- against the server -----------------------------------------------------------------------


def metric_samples(rest_target):
    with urllib.request.urlopen(f"http://{rest_target}/monitoring/prometheus/metrics", timeout=10) as page:
        assert page.headers["Content-Type"].startswith("text/plain")
        text = page.read().decode("utf-8")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return text, samples


def value(samples, name, **labels):
    """A sample's value (the parser reads a counter's samples as NAME_total)."""
    key = tuple(sorted(labels.items()))
    return samples.get((name, key), samples.get((name + "_total", key), 0.0))


@pytest.mark.slow
def test_batched_server_answers_as_in_process_and_metrics_count_every_request(export_base, tmp_path):
    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 100000 }\n"
                        "num_batch_threads { value: 1 }\nmax_enqueued_batches { value: 8 }\n")
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text(MONITORING)
    server = ServerProcess(export_base, "--enable_batching", "--batching_parameters_file", str(batching),
                           "--monitoring_config_file", str(monitoring))
    try:
        in_process = tf.saved_model.load(str(export_base / MODEL_NAME / "1")).signatures["decode"]
        _, before = metric_samples(server.rest)
        answers, lock = {}, threading.Lock()

        def call(index):
            client = TFServingClient(server.rest if index % 2 else server.grpc, MODEL_NAME, rest=bool(index % 2))
            answer = client.decode([SENTENCES[index % 4]])
            with lock:
                answers[index] = answer

        threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for index, answer in answers.items():
            expected = in_process(sentences=tf.constant([SENTENCES[index % 4]]))
            np.testing.assert_array_equal(answer["token_ids"], expected["token_ids"].numpy())
            assert answer["sentences"][0] == expected["sentences"].numpy()[0]
        assert len(answers) == 12

        client = TFServingClient(server.grpc, MODEL_NAME)
        with pytest.raises(ServingClientError, match="larger than maximum input batch size 8"):
            client.decode(["i like it ."] * 9)
        with pytest.raises(ServingClientError, match="sentence is empty"):
            client.decode(["   "])
        # Requests that fail to decode are counted too: a gRPC tensor whose bytes are not whole
        # float32s, and a REST body with neither 'instances' nor 'inputs'.
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL_NAME
        request.inputs["sentences"].CopyFrom(tf.make_tensor_proto(np.array([1.0, 2.0], np.float32)))
        request.inputs["sentences"].tensor_content = b"abc"
        with grpc.insecure_channel(server.grpc) as channel, pytest.raises(grpc.RpcError) as caught:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "to be string but float is provided" in caught.value.details()  # the dtype is checked first, as stock
        rest = TFServingClient(server.rest, MODEL_NAME, rest=True)
        with pytest.raises(ServingClientError, match="exactly one of"):
            rest._http(rest._url(":predict"), {"neither": []})
        text, after = metric_samples(server.rest)
        ok = value(after, ":tensorflow:serving:request_count", model_name=MODEL_NAME, status="OK") - \
            value(before, ":tensorflow:serving:request_count", model_name=MODEL_NAME, status="OK")
        bad = value(after, ":tensorflow:serving:request_count", model_name=MODEL_NAME, status="INVALID_ARGUMENT") - \
            value(before, ":tensorflow:serving:request_count", model_name=MODEL_NAME, status="INVALID_ARGUMENT")
        assert (ok, bad) == (12, 4)
        assert "# TYPE :tensorflow:serving:request_count counter" in text  # the stock name, no _total
        # The latency histogram counts successes only, under the stock API label.
        latency = sum(value(snapshot, ":tensorflow:serving:request_latency_count", model_name=MODEL_NAME,
                            API="Predict", entrypoint=entrypoint) * sign
                      for snapshot, sign in ((after, 1), (before, -1)) for entrypoint in ("GRPC", "REST"))
        assert latency == ok
        assert value(after, ":tensorflow:cc:saved_model:load_attempt_count",
                     model_path=str(export_base / MODEL_NAME / "1"), status="success") == 1
        batches = value(after, ":tensorflow:serving:batching_session:processed_batch_size_count")
        rows = value(after, ":tensorflow:serving:batching_session:input_batch_size_sum")
        assert rows >= 12 and batches < 12  # requests were joined
        # processed_batch_size records the padded size; padding_size is labelled by it.
        assert value(after, ":tensorflow:serving:batching_session:processed_batch_size_sum") >= rows
        assert ':tensorflow:serving:batching_session:padding_size_count{execution_batch_size="' in text
        assert 'queuing_latency_bucket{le="120.0",thread_pool_name=' in text  # 100 µs × 1.2^i
        assert value(after, ":tfode:serving:solver_function_evaluations_count", model_name=MODEL_NAME) >= 12
    finally:
        assert server.stop() == 0


@pytest.mark.slow
def test_versions_come_and_go_under_batched_load_and_no_accepted_request_is_lost(export_base, tmp_path):
    base = tmp_path / "exports"
    shutil.copytree(export_base / MODEL_NAME / "1", base / MODEL_NAME / "1")
    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 20000 }\n"
                        "num_batch_threads { value: 1 }\n")
    server = ServerProcess(base, "--enable_batching", "--batching_parameters_file", str(batching),
                           "--enable_model_warmup", "false", "--max_num_load_retries", "0")
    outcomes, lock, stop = collections.Counter(), threading.Lock(), threading.Event()

    def load(index):
        client = TFServingClient(server.grpc if index % 2 else server.rest, MODEL_NAME, rest=not index % 2)
        while not stop.is_set():
            try:
                answer = client.decode([SENTENCES[index % 4]])
                outcome = "OK" if answer["sentences"].shape == (1,) else "WRONG"
            except ServingClientError as error:
                outcome = error.code
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=load, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    try:
        client = TFServingClient(server.grpc, MODEL_NAME)
        shutil.copytree(export_base / MODEL_NAME / "1", base / MODEL_NAME / "2")  # a new version
        assert wait_for(lambda: available_versions(client) == [2])
        broken = base / MODEL_NAME / "3"  # a corrupt one: version 2 keeps serving
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"corrupt")
        assert wait_for(lambda: any(s["state"] == "END" for s in client.status()))
        shutil.rmtree(broken)
        shutil.rmtree(base / MODEL_NAME / "2")  # deleted under load: version 1 comes back
        assert wait_for(lambda: available_versions(client) == [1])
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        assert server.stop() == 0
    # Accepted requests are all answered; a request that found no version loaded (between
    # version 2's removal and version 1's return) is refused with NOT_FOUND, never lost.
    assert set(outcomes) <= {"OK", "NOT_FOUND"}, outcomes
    assert outcomes["OK"] >= 50, outcomes


def available_versions(client):
    try:
        return sorted(int(s["version"]) for s in client.status() if s["state"] == "AVAILABLE")
    except ServingClientError:
        return []


def test_the_shipped_config_files_parse_as_the_stock_server_reads_them():
    from serving.monitoring import monitoring_path
    from serving.model_manager import read_config_file

    serving = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "serving")
    parameters = BatchingParameters.from_file(os.path.join(serving, "batching.config"))
    assert parameters.max_batch_size >= 1 and parameters.num_batch_threads >= 1
    assert monitoring_path(os.path.join(serving, "monitoring.config")) == "/monitoring/prometheus/metrics"
    assert [spec.name for spec in read_config_file(os.path.join(serving, "models.config"))] == ["tfode"]
