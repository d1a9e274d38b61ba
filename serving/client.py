"""Client for a tfode model behind the TF Serving API (this project's server or the stock one).

    python -m serving.client [--target localhost:8500] [--rest] [--model-name tfode] \\
        decode "i like your style ."
    python -m serving.client interpolate "i like your style ." "the pain was unbearable ." \\
        [--steps 7] [--mode slerp]
    python -m serving.client encode "i like your style ."
    python -m serving.client trajectory "i like your style ." --times 0.5 1 1.5
    python -m serving.client status | metadata

`TFServingClient` returns plain Python/NumPy values; errors raise `ServingClientError` with the
status code (gRPC name) and the server's message.

Over REST the client needs NumPy alone. Over gRPC it needs `grpcio` and the TF Serving protos
(`tensorflow-serving-api`), which import the `tensorflow` package they are defined in; those load
on the first gRPC call, so `--help` and REST clients never load TensorFlow.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
import urllib.error
import urllib.request

import numpy as np


grpc = tensor_pb2 = tensor_shape_pb2 = types_pb2 = None
get_model_metadata_pb2 = get_model_status_pb2 = model_service_pb2_grpc = None
predict_pb2 = prediction_service_pb2_grpc = None


def _load_grpc() -> None:
    """Imports gRPC and the TF Serving protos into this module's globals, once."""
    global grpc, tensor_pb2, tensor_shape_pb2, types_pb2, get_model_metadata_pb2, get_model_status_pb2
    global model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc
    if grpc is not None:
        return
    import grpc as grpc_module
    from tensorflow.core.framework import tensor_pb2 as tensor, tensor_shape_pb2 as shape, types_pb2 as types
    from tensorflow_serving.apis import get_model_metadata_pb2 as metadata, get_model_status_pb2 as status
    from tensorflow_serving.apis import model_service_pb2_grpc as model_service, predict_pb2 as predict
    from tensorflow_serving.apis import prediction_service_pb2_grpc as prediction_service

    (tensor_pb2, tensor_shape_pb2, types_pb2, get_model_metadata_pb2, get_model_status_pb2,
     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc) = (
        tensor, shape, types, metadata, status, model_service, predict, prediction_service)
    grpc = grpc_module

HTTP_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
              409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
              500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class ServingClientError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def tensor_proto(value):
    """NumPy/Python value → TensorProto: strings, integers as int32, floats as float32 (the
    dtypes of the model's signatures), in typed fields."""
    _load_grpc()
    from .tensors import to_tensor_proto

    array = np.asarray(value)
    if array.dtype.kind in "OSU":
        return to_tensor_proto(array.astype(object))
    if array.dtype.kind in "iu":
        return to_tensor_proto(array.astype(np.int32))
    if array.dtype.kind == "f":
        return to_tensor_proto(array.astype(np.float32))
    raise TypeError(f"Cannot send a {array.dtype} tensor")


def from_tensor_proto(proto) -> np.ndarray:
    """TensorProto → NumPy, typed fields or tensor_content alike."""
    _load_grpc()
    from .tensors import from_tensor_proto as read

    return read(proto)


RETRIED = ("UNAVAILABLE", "RESOURCE_EXHAUSTED")  # the codes worth another try (REST 503 and 429)


class TFServingClient:
    """Predict requests over gRPC (`target` = host:port of the gRPC port) or REST (`rest=True`,
    `target` = host:port of the REST port).

    A call answered UNAVAILABLE or RESOURCE_EXHAUSTED (REST: 503, 429, or no connection) is
    tried again, up to `tries` times in all, after `backoff` seconds doubling each time (at most
    `max_backoff`, each wait jittered by ±20 % so that clients do not retry in step); the error
    raised after the last try says how many were made."""

    def __init__(self, target="localhost:8500", model_name="tfode", rest=False, timeout=60.0, version=None,
                 tries=5, backoff=0.1, max_backoff=5.0):
        if tries < 1 or backoff < 0 or max_backoff < backoff:
            raise ValueError("tries must be at least 1 and 0 <= backoff <= max_backoff")
        self.tries, self.backoff, self.max_backoff = tries, backoff, max_backoff
        self._random = random.Random()
        self._outputs: dict[str, str] = {}  # signature → its lone output's name (REST bodies)
        self.target = target
        self.model_name = model_name
        self.rest = rest
        self.timeout = timeout
        self.version = version
        if not rest:
            _load_grpc()
            self.channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)])
            self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
            self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    # -- transport ------------------------------------------------------------------------

    def predict(self, signature: str, inputs: dict) -> dict[str, np.ndarray]:
        if self.rest:
            return self._rest_predict(signature, inputs)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = signature
        if self.version is not None:
            request.model_spec.version.value = self.version
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tensor_proto(value))
        response = self._grpc(self.prediction.Predict, request)
        return {key: from_tensor_proto(proto) for key, proto in response.outputs.items()}

    def _retrying(self, call):
        """`call()`, tried again on UNAVAILABLE / RESOURCE_EXHAUSTED with bounded backoff."""
        wait = self.backoff
        for attempt in range(1, self.tries + 1):
            try:
                return call()
            except ServingClientError as error:
                if error.code not in RETRIED or attempt == self.tries:
                    if attempt > 1:
                        raise ServingClientError(error.code, f"{error.message} (gave up after {attempt} tries)") from None
                    raise
            time.sleep(wait * self._random.uniform(0.8, 1.2))
            wait = min(wait * 2, self.max_backoff)

    def _grpc(self, method, request):
        def call():
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as error:
                raise ServingClientError(error.code().name, error.details()) from None
        return self._retrying(call)

    def _url(self, suffix=""):
        version = f"/versions/{self.version}" if self.version is not None else ""
        return f"http://{self.target}/v1/models/{self.model_name}{version}{suffix}"

    def _http(self, url, body=None):
        data = json.dumps(body).encode("utf-8") if body is not None else None

        def call():
            request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as error:
                try:
                    message = json.loads(error.read()).get("error", "")
                except (ValueError, AttributeError):
                    message = error.reason
                raise ServingClientError(HTTP_CODES.get(error.code, f"HTTP_{error.code}"), message) from None
            except (urllib.error.URLError, ConnectionError) as error:  # nothing listening, or the connection dropped
                raise ServingClientError("UNAVAILABLE", str(getattr(error, "reason", error))) from None
        return self._retrying(call)

    def _rest_predict(self, signature, inputs):
        payload = {key: _to_json(np.asarray(value).tolist()) for key, value in inputs.items()}
        answer = self._http(self._url(":predict"), {"signature_name": signature, "inputs": payload})["outputs"]
        if not isinstance(answer, dict) or set(answer) == {"b64"}:  # a lone output's value itself
            answer = {self._lone_output(signature): answer}
        return {key: _from_json(value) for key, value in answer.items()}

    def _lone_output(self, signature) -> str:
        if signature not in self._outputs:
            outputs = self.metadata()[signature]["outputs"]
            if len(outputs) != 1:
                raise ServingClientError("INTERNAL", f"signature {signature!r} answered one value but has "
                                                     f"{len(outputs)} outputs")
            self._outputs[signature] = next(iter(outputs))
        return self._outputs[signature]

    def status(self) -> list[dict]:
        if self.rest:
            return self._http(self._url())["model_version_status"]
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        if self.version is not None:
            request.model_spec.version.value = self.version
        response = self._grpc(self.models.GetModelStatus, request)
        states = get_model_status_pb2.ModelVersionStatus.State
        codes = {code.value[0]: code.name for code in grpc.StatusCode}
        return [{"version": str(s.version), "state": states.Name(s.state),
                 "status": {"error_code": codes.get(s.status.error_code, "UNKNOWN"),
                            "error_message": s.status.error_message}}
                for s in response.model_version_status]

    def metadata(self) -> dict:
        """{signature name: {"inputs": {name: (dtype, shape)}, "outputs": {...}}}."""
        if self.rest:
            raw = self._http(self._url("/metadata"))["metadata"]["signature_def"]["signature_def"]
            return {name: {side: {key: (info.get("dtype", "DT_INVALID"),
                                        [int(d["size"]) for d in info.get("tensor_shape", {}).get("dim", [])])
                                  for key, info in signature.get(side, {}).items()}
                           for side in ("inputs", "outputs")} for name, signature in raw.items()}
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = self.model_name
        response = self._grpc(self.prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return {name: {side: {key: (types_pb2.DataType.Name(info.dtype), [d.size for d in info.tensor_shape.dim])
                              for key, info in getattr(signature, side).items()}
                       for side in ("inputs", "outputs")}
                for name, signature in signature_map.signature_def.items()}

    # -- the model's calls ------------------------------------------------------------------

    def decode(self, sentences: list[str]) -> dict:
        return self.predict("decode", {"sentences": np.array(sentences, dtype=object)})

    def encode(self, sentences: list[str]) -> dict:
        return self.predict("encode", {"sentences": np.array(sentences, dtype=object)})

    def interpolate(self, sentences_a, sentences_b, steps=7, mode="slerp") -> dict:
        """The latent path between each pair at `steps` evenly spaced alphas, ends included:
        `{"sentences": [pairs, steps], "alphas": [steps]}`. One request of pairs × steps rows
        (the signature takes one point per row)."""
        if steps < 2:
            raise ValueError(f"steps must be at least 2, got {steps}")
        if len(sentences_a) != len(sentences_b):
            raise ValueError("sentences_a and sentences_b must be as many")
        alphas = np.linspace(0.0, 1.0, steps, dtype=np.float32)
        pairs = len(sentences_a)
        answer = self.predict("interpolate", {
            "sentence_a": np.repeat(np.array(sentences_a, dtype=object), steps),
            "sentence_b": np.repeat(np.array(sentences_b, dtype=object), steps),
            "alpha": np.tile(alphas, pairs),
            "mode": np.array([mode] * (pairs * steps), dtype=object),
        })
        return {"sentences": answer["sentence"].reshape(pairs, steps), "alphas": alphas}

    def path(self, sentences_a, sentences_b, points=9) -> dict:
        """The model's path of sentences from each of `sentences_a` to the same row of
        `sentences_b`, `points` sentences each, ends included: `{"sentences": [pairs][points]}`
        (text) and `"codes"` `[pairs, points, units]`."""
        if len(sentences_a) != len(sentences_b):
            raise ValueError("sentences_a and sentences_b must be as many")
        answer = self.predict("path", {
            "sentence_a": np.array(sentences_a, dtype=object),
            "sentence_b": np.array(sentences_b, dtype=object),
            "points": np.full([len(sentences_a)], points, np.int32),
        })
        return {"sentences": [[_text(s) for s in row[:points]] for row in answer["sentences"]],
                "codes": answer["codes"][:, :points]}

    def decode_latent(self, latent) -> dict:
        """The model's decodes of latent codes `[rows, units]` (the inverse of `encode`)."""
        return self.predict("decode_latent", {"latent": np.asarray(latent, np.float32)})

    def trajectory_latent(self, latent, times) -> dict:
        """What the decoder holds at each of `times` while writing its decode of each code of
        `latent` `[codes, units]`: arrays of `[codes, times, ...]`, as `trajectory`."""
        latent = np.asarray(latent, np.float32)
        times = np.asarray(times, dtype=np.float32).reshape(-1)
        count = len(latent)
        answer = self.predict("trajectory_latent", {"latent": np.repeat(latent, times.size, axis=0),
                                                    "time": np.tile(times, count)})
        return {key: value.reshape(count, times.size, *value.shape[1:]) for key, value in answer.items()}

    def trajectory(self, sentences, times) -> dict:
        """What the decoder holds at each of `times` for each sentence: arrays of
        `[sentences, times, ...]` (`state`, `top_k_ids`, `top_k_tokens`, `top_k_probabilities`).
        One request of sentences × times rows."""
        times = np.asarray(times, dtype=np.float32).reshape(-1)
        count = len(sentences)
        answer = self.predict("trajectory", {
            "sentences": np.repeat(np.array(sentences, dtype=object), times.size),
            "time": np.tile(times, count),
        })
        return {key: value.reshape(count, times.size, *value.shape[1:]) for key, value in answer.items()}


def _to_json(value):
    """Bytes become text, or {"b64": ...} when they are not UTF-8 (TF Serving's REST form)."""
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def _from_json(value):
    array = np.array(value, dtype=object)
    if array.size and all(isinstance(v, str) for v in array.flat):
        return np.vectorize(lambda v: v.encode("utf-8"), otypes=[object])(array)
    return np.array(value)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default=None, help="host:port (default localhost:8500, or :8501 with --rest)")
    parser.add_argument("--rest", action="store_true", help="use the REST API instead of gRPC")
    parser.add_argument("--model-name", default="tfode", help="the model's name on the server (default: %(default)s)")
    parser.add_argument("--version", type=int, help="ask for this model version")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("decode", help="reconstruct sentences").add_argument("sentences", nargs="+")
    commands.add_parser("encode", help="latent vectors").add_argument("sentences", nargs="+")
    interpolate = commands.add_parser("interpolate", help="decode the latent path between two sentences",
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
    interpolate.add_argument("sentence_a")
    interpolate.add_argument("sentence_b")
    interpolate.add_argument("--steps", "--num-steps", type=int, default=7,
                             help="points on the path, ends included (one request row each) (default: %(default)s)")
    interpolate.add_argument("--mode", choices=["linear", "slerp"], default="slerp", help="path between the codes (default: %(default)s)")
    path = commands.add_parser("path", help="the model's path of sentences between two sentences",
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    path.add_argument("sentence_a")
    path.add_argument("sentence_b")
    path.add_argument("--points", type=int, default=9, help="sentences on the path, ends included (default: %(default)s)")
    trajectory = commands.add_parser("trajectory", help="top tokens along h(t)")
    trajectory.add_argument("sentence")
    trajectory.add_argument("--times", type=float, nargs="+", required=True)
    commands.add_parser("status", help="version states")
    commands.add_parser("metadata", help="signatures")
    args = parser.parse_args(argv)
    target = args.target or ("localhost:8501" if args.rest else "localhost:8500")
    client = TFServingClient(target, args.model_name, rest=args.rest, version=args.version)
    try:
        if args.command == "decode":
            result = client.decode(args.sentences)
            for source, output, length in zip(args.sentences, result["sentences"], result["lengths"]):
                print(f"{source} → {_text(output)}  ({int(length)} tokens)")
        elif args.command == "encode":
            result = client.encode(args.sentences)
            for source, latent in zip(args.sentences, result["latent"]):
                print(f"{source}: |h0| = {np.linalg.norm(latent):.3f}, h0[:4] = {np.round(latent[:4], 3).tolist()}")
        elif args.command == "interpolate":
            result = client.interpolate([args.sentence_a], [args.sentence_b], args.steps, args.mode)
            for alpha, sentence in zip(result["alphas"], result["sentences"][0]):
                print(f"α={float(alpha):.2f}  {_text(sentence)}")
        elif args.command == "path":
            for sentence in client.path([args.sentence_a], [args.sentence_b], args.points)["sentences"][0]:
                print(sentence)
        elif args.command == "trajectory":
            result = client.trajectory([args.sentence], args.times)
            for moment, tokens, probabilities in zip(args.times, result["top_k_tokens"][0], result["top_k_probabilities"][0]):
                shown = ", ".join(f"{_text(t)} {float(p):.2f}" for t, p in zip(tokens, probabilities))
                print(f"t={moment:g}: {shown}")
        elif args.command == "status":
            print(json.dumps(client.status(), indent=2))
        else:
            print(json.dumps(client.metadata(), indent=2))
    except ServingClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # a request the client refuses to send (e.g. --steps 1)
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # transport failures: grpc.RpcError (loaded with gRPC) or OSError
        if not isinstance(error, (OSError, *((grpc.RpcError,) if grpc is not None else ()))):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
