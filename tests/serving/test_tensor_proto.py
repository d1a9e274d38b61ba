"""`serving.tensors`: responses as the stock server writes them (typed fields by default, the
bytes of `Tensor::AsProtoTensorContent` with `--enable_serialization_as_tensor_content`)."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tensorflow.core.framework import tensor_pb2

from serving.tensors import from_tensor_proto, to_tensor_proto

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
NUMERIC = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.bool_, np.uint8, np.int16])
BYTES = st.binary(max_size=200)


@st.composite
def arrays(draw):
    if draw(st.booleans()):
        return hnp.arrays(object, draw(SHAPES), elements=BYTES)
    return hnp.arrays(draw(NUMERIC), draw(SHAPES))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.deferred(lambda: NUMERIC).flatmap(lambda dtype: hnp.arrays(dtype, SHAPES)))
def test_numeric_tensor_content_is_the_bytes_tensorflow_serializes(value):
    ours = to_tensor_proto(value, as_tensor_content=True)
    theirs = tensor_pb2.TensorProto.FromString(tf.io.serialize_tensor(tf.constant(value)).numpy())
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)
    np.testing.assert_array_equal(from_tensor_proto(ours), value)


def test_string_tensor_content_is_tensorflows_encoded_string_list():
    # Tensor::AsProtoTensorContent of strings: every length as a varint32, then every string.
    value = np.array([[b"ab", b""], [b"x" * 130, b"c"]], object)
    proto = to_tensor_proto(value, as_tensor_content=True)
    assert proto.tensor_content == bytes([2, 0, 0x82, 0x01, 1]) + b"ab" + b"x" * 130 + b"c"
    assert not proto.string_val
    np.testing.assert_array_equal(from_tensor_proto(proto), value)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(arrays().flatmap(lambda strategy: strategy))
def test_typed_fields_hold_every_value_and_tensorflow_reads_them(value):
    proto = to_tensor_proto(value)
    assert not proto.tensor_content
    values = (proto.string_val or proto.float_val or proto.double_val or proto.int_val or proto.int64_val
              or proto.bool_val)
    assert len(values) == value.size
    np.testing.assert_array_equal(tf.make_ndarray(proto), value)
    np.testing.assert_array_equal(from_tensor_proto(proto), value)
    assert from_tensor_proto(proto).shape == value.shape


def test_the_typed_field_of_each_dtype():
    assert list(to_tensor_proto(np.array([1.5, 2.0], np.float32)).float_val) == [1.5, 2.0]
    assert list(to_tensor_proto(np.array([[3, 4]], np.int32)).int_val) == [3, 4]
    assert list(to_tensor_proto(np.array([5], np.int64)).int64_val) == [5]
    assert list(to_tensor_proto(np.array([True, False])).bool_val) == [True, False]
    assert list(to_tensor_proto(np.array([b"a", "é"], object)).string_val) == [b"a", "é".encode()]
    scalar = to_tensor_proto(np.float32(2.5))
    assert scalar.HasField("tensor_shape") and not scalar.tensor_shape.dim and list(scalar.float_val) == [2.5]


def test_the_reader_takes_what_tensorflow_writes_and_refuses_what_does_not_fit():
    for value in (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([b"x", b"yz"], object), np.zeros([0, 2])):
        np.testing.assert_array_equal(from_tensor_proto(tf.make_tensor_proto(value)), value)
    repeated = tf.make_tensor_proto(np.full([3, 2], 7, np.int32))  # written as one int_val
    np.testing.assert_array_equal(from_tensor_proto(repeated), np.full([3, 2], 7))
    broken = to_tensor_proto(np.array([b"ab", b"c"], object), as_tensor_content=True)
    broken.tensor_content = broken.tensor_content[:-1]
    with pytest.raises(ValueError, match="content"):
        from_tensor_proto(broken)
    with pytest.raises(TypeError, match="complex"):
        to_tensor_proto(np.array([1j]))
