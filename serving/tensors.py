"""`TensorProto` ↔ NumPy, as TensorFlow's C++ `Tensor` writes and reads them.

The stock model server writes a Predict response's outputs with `Tensor::AsProtoField` (one
typed repeated field: `float_val`, `int_val`, `string_val`, …) unless it runs with
`--enable_serialization_as_tensor_content`, when it writes `Tensor::AsProtoTensorContent` (the
values' bytes in `tensor_content`; strings as TensorFlow's encoded string list). Both are
written here without TensorFlow ops: a response is built for every request, on the path a
batch's answers wait on. The client reads both.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

# dtype → (DataType, the typed field `AsProtoField` writes). Narrow integers share int_val.
_FIELDS = {
    np.dtype(np.float32): (types_pb2.DT_FLOAT, "float_val"),
    np.dtype(np.float64): (types_pb2.DT_DOUBLE, "double_val"),
    np.dtype(np.int32): (types_pb2.DT_INT32, "int_val"),
    np.dtype(np.int16): (types_pb2.DT_INT16, "int_val"),
    np.dtype(np.int8): (types_pb2.DT_INT8, "int_val"),
    np.dtype(np.uint8): (types_pb2.DT_UINT8, "int_val"),
    np.dtype(np.uint16): (types_pb2.DT_UINT16, "int_val"),
    np.dtype(np.int64): (types_pb2.DT_INT64, "int64_val"),
    np.dtype(np.uint32): (types_pb2.DT_UINT32, "uint32_val"),
    np.dtype(np.uint64): (types_pb2.DT_UINT64, "uint64_val"),
    np.dtype(np.bool_): (types_pb2.DT_BOOL, "bool_val"),
}
_NUMPY = {data_type: dtype for dtype, (data_type, _) in _FIELDS.items()}


def _strings(value: np.ndarray) -> bool:
    return value.dtype.kind in "SU" or (value.dtype == object and all(isinstance(v, (bytes, str)) for v in value.flat))


def _as_bytes(item) -> bytes:
    return item.encode("utf-8") if isinstance(item, str) else bytes(item)


def to_tensor_proto(value, as_tensor_content: bool = False) -> tensor_pb2.TensorProto:
    """A NumPy array (strings as bytes or str, or a dtype of `_FIELDS`) → `TensorProto`, with
    every value in its typed field (`AsProtoField`), or, with `as_tensor_content`, in
    `tensor_content` (`AsProtoTensorContent`)."""
    value = np.asarray(value)
    strings = _strings(value)
    if not strings and value.dtype not in _FIELDS:
        raise TypeError(f"No TensorProto encoding for dtype {value.dtype}.")
    data_type, field = (types_pb2.DT_STRING, "string_val") if strings else _FIELDS[value.dtype]
    proto = tensor_pb2.TensorProto(dtype=data_type)
    proto.tensor_shape.SetInParent()  # written even for a scalar, as TensorShape::AsProto does
    for size in value.shape:
        proto.tensor_shape.dim.add(size=size)
    if strings:
        items = [_as_bytes(item) for item in value.ravel()]
        if as_tensor_content:
            proto.tensor_content = encode_string_list(items)
        else:
            proto.string_val.extend(items)
    elif as_tensor_content:
        proto.tensor_content = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes()
    else:
        getattr(proto, field).extend(value.ravel().tolist())
    return proto


def from_tensor_proto(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """`TensorProto` → NumPy array (strings as an object array of bytes), from either encoding; a
    typed field holding one value for many elements is that value repeated (`tf.make_ndarray`)."""
    shape = [dim.size for dim in proto.tensor_shape.dim]
    size = int(np.prod(shape)) if shape else 1
    if proto.dtype == types_pb2.DT_STRING:
        items = decode_string_list(proto.tensor_content, size) if proto.tensor_content else list(proto.string_val)
        return _filled(np.array(items, dtype=object), size).reshape(shape)
    if proto.dtype not in _NUMPY:
        raise TypeError(f"No NumPy reading for TensorProto dtype {types_pb2.DataType.Name(proto.dtype)}.")
    dtype = _NUMPY[proto.dtype]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    field = next(name for data_type, name in _FIELDS.values() if data_type == proto.dtype)
    return _filled(np.array(list(getattr(proto, field)), dtype=dtype), size).reshape(shape)


def _filled(values: np.ndarray, size: int) -> np.ndarray:
    if values.size == size:
        return values
    if values.size == 0 or values.size > size:
        raise ValueError(f"A tensor of {size} elements holds {values.size} values.")
    return np.concatenate([values, np.repeat(values[-1:], size - values.size)])  # the last value repeats


def encode_string_list(items: list[bytes]) -> bytes:
    """TensorFlow's `port::EncodeStringList`: every length as a varint32, then every string."""
    lengths = bytearray()
    for item in items:
        length = len(item)
        while length >= 0x80:
            lengths.append((length & 0x7F) | 0x80)
            length >>= 7
        lengths.append(length)
    return bytes(lengths) + b"".join(items)


def decode_string_list(data: bytes, count: int) -> list[bytes]:
    """The inverse of `encode_string_list` for `count` strings."""
    lengths, position = [], 0
    for _ in range(count):
        length, shift = 0, 0
        while True:
            if position >= len(data):
                raise ValueError("A string tensor's content ends inside its lengths.")
            byte = data[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        lengths.append(length)
    items = []
    for length in lengths:
        items.append(data[position : position + length])
        position += length
    if position != len(data):
        raise ValueError("A string tensor's content does not match its lengths.")
    return items
