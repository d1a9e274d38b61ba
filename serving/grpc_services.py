"""The gRPC services of `serving.server`, as tensorflow_model_server registers them:
`tensorflow.serving.PredictionService` (Predict, GetModelMetadata), `ModelService`
(GetModelStatus, HandleReloadConfigRequest) and, with `--enable_grpc_healthcheck_service`, the
standard `grpc.health.v1.Health`.

Predict answers as the stock server (servables/tensorflow/predict_util.cc): every output in its
typed field (`float_val`, `string_val`, …), or in `tensor_content` with
`--enable_serialization_as_tensor_content`; an input whose dtype is not the signature's, or an
`output_filter` naming no output, is INVALID_ARGUMENT; an unknown signature FAILED_PRECONDITION.
"""

from __future__ import annotations

import time

import grpc
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from .admission import Limits, Target, predict
from .errors import ServingError
from .model_manager import Models, specs_from_config
from .tensors import from_tensor_proto, to_tensor_proto

STATE_CODES = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


def target_of(model_spec) -> Target:
    """What a request's `ModelSpec` names."""
    version = int(model_spec.version.value) if model_spec.HasField("version") else None
    label = model_spec.version_label or None
    return Target(model_spec.name, version, label, model_spec.signature_name)


def signature_def_map(models: Models, target: Target):
    """`(version, SignatureDefMap)` of the version a metadata request names: every signature
    of its MetaGraph, as the stock server returns them."""
    loaded = models.get(target.model_name, target.version, target.label)
    try:
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in loaded.meta_graph.signature_def.items():
            signature_map.signature_def[name].CopyFrom(signature)
        return loaded.version, signature_map
    finally:
        loaded.release()


def _deadline(context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _abort(context, error: ServingError):
    context.abort(getattr(grpc.StatusCode, error.code), error.message)


def _request_inputs(request):
    """The decoder of a request's inputs against the signature that runs it."""
    def decode(signature):
        decoded = {}
        for key, proto in request.inputs.items():
            expected = signature.inputs[key].dtype if key in signature.inputs else proto.dtype
            if proto.dtype != expected:  # as the session's feed check words it
                raise ServingError("INVALID_ARGUMENT",
                                   f"Expects arg[{key}] to be {_dtype_name(expected)} but "
                                   f"{_dtype_name(proto.dtype)} is provided")
            try:
                decoded[key] = from_tensor_proto(proto)
            except (ValueError, TypeError) as error:
                raise ServingError("INVALID_ARGUMENT", f"Input {key!r} is not a valid tensor: {error}") from None
        return decoded
    return decode


def _dtype_name(data_type: int) -> str:
    return types_pb2.DataType.Name(data_type)[3:].lower()  # DT_FLOAT → float, as DataTypeString


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, models: Models, limits: Limits, batcher=None, metrics=None, tensor_content: bool = False):
        self.models = models
        self.limits = limits
        self.batcher = batcher
        self.metrics = metrics
        self.tensor_content = tensor_content

    def Predict(self, request, context):
        try:
            version, outputs = predict(self.models, self.limits, target_of(request.model_spec),
                                       _request_inputs(request), batcher=self.batcher, metrics=self.metrics,
                                       entrypoint="GRPC", deadline=_deadline(context),
                                       output_filter=list(request.output_filter))
        except ServingError as error:
            _abort(context, error)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(to_tensor_proto(value, self.tensor_content))
        return response

    def GetModelMetadata(self, request, context):
        try:
            if list(request.metadata_field) != ["signature_def"]:
                raise ServingError("INVALID_ARGUMENT", "Metadata field signature_def must be requested")
            version, signature_map = signature_def_map(self.models, target_of(request.model_spec))
        except ServingError as error:
            _abort(context, error)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def _unimplemented(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Only Predict and GetModelMetadata are served")

    Classify = Regress = MultiInference = _unimplemented


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, models: Models, reload=None):
        self.models = models
        self.reload = reload

    def GetModelStatus(self, request, context):
        try:
            statuses = self.models.status(request.model_spec.name, target_of(request.model_spec).version)
        except ServingError as error:
            _abort(context, error)
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in statuses:
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = STATE_CODES[status.state]
            entry.status.error_code = getattr(grpc.StatusCode, status.code).value[0]
            entry.status.error_message = status.error
        return response

    def HandleReloadConfigRequest(self, request, context):
        """Serves exactly the models of `request.config` from now on (the stock server's
        reload): a config it cannot serve is refused whole with INVALID_ARGUMENT."""
        try:
            self.reload(specs_from_config(request.config))
        except ValueError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return model_management_pb2.ReloadConfigResponse()


def add_services(server, models: Models, limits: Limits, *, batcher=None, metrics=None, reload=None,
                 tensor_content: bool = False, health: bool = False):
    """Registers the services on a `grpc.Server`; the health servicer (or None) is returned so
    that the server can report NOT_SERVING when it stops."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(models, limits, batcher, metrics, tensor_content), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(models, reload), server)
    if not health:
        return None
    from grpc_health.v1 import health as grpc_health
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    servicer = grpc_health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer
