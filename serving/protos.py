"""The stock server's config messages that the `tensorflow-serving-api` package does not ship.

`tensorflow_model_server` reads `--batching_parameters_file` as a text-format
`tensorflow.serving.BatchingParameters` and `--monitoring_config_file` as a
`tensorflow.serving.MonitoringConfig`. Their schemas (field names and numbers as in
`session_bundle_config.proto` and `monitoring_config.proto`) are declared here, and protobuf's
own text-format parser reads the files, so a file the stock server accepts parses the same and
an unknown field or malformed value is an error naming its line.
"""

from __future__ import annotations

import functools

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {"int64": _F.TYPE_INT64, "bool": _F.TYPE_BOOL, "string": _F.TYPE_STRING}

# message → [(field, number, type, repeated)]; a type starting with "." is a message.
SCHEMA = {
    "BatchingParameters": [
        ("max_batch_size", 1, ".google.protobuf.Int64Value", False),
        ("batch_timeout_micros", 2, ".google.protobuf.Int64Value", False),
        ("max_enqueued_batches", 3, ".google.protobuf.Int64Value", False),
        ("num_batch_threads", 4, ".google.protobuf.Int64Value", False),
        ("thread_pool_name", 5, ".google.protobuf.StringValue", False),
        ("allowed_batch_sizes", 6, "int64", True),
        ("pad_variable_length_inputs", 7, "bool", False),
        ("enable_large_batch_splitting", 8, ".google.protobuf.BoolValue", False),
        ("max_execution_batch_size", 9, ".google.protobuf.Int64Value", False),
    ],
    "PrometheusConfig": [
        ("enable", 1, "bool", False),
        ("path", 2, "string", False),
    ],
    "MonitoringConfig": [
        ("prometheus_config", 1, ".tensorflow.serving.PrometheusConfig", False),
    ],
}


@functools.lru_cache(maxsize=None)
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    schema = descriptor_pb2.FileDescriptorProto(
        name="tfode/serving_config.proto", package="tensorflow.serving", syntax="proto3",
        dependency=[wrappers.name],
    )
    for message_name, fields in SCHEMA.items():
        message = schema.message_type.add(name=message_name)
        for name, number, kind, repeated in fields:
            field = message.field.add(name=name, number=number,
                                      label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
            if kind.startswith("."):
                field.type, field.type_name = _F.TYPE_MESSAGE, kind
            else:
                field.type = _SCALARS[kind]
    pool.Add(schema)
    return pool


def message(name: str):
    """A new, empty `tensorflow.serving.<name>` message."""
    descriptor = _pool().FindMessageTypeByName(f"tensorflow.serving.{name}")
    return message_factory.GetMessageClass(descriptor)()


def parse_file(path: str, name: str, what: str):
    """Reads a text-format `name` message from `path`; ValueError says what is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise ValueError(f"cannot read the {what}: {error}") from None
    return parse_text(text, name, what)


def parse_text(text: str, name: str, what: str):
    parsed = message(name)
    try:
        text_format.Parse(text, parsed)
    except text_format.ParseError as error:
        raise ValueError(f"{what}: {error}") from None
    return parsed
