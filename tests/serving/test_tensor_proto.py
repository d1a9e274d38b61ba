"""gRPC responses are written by `serving.frontends.tensor_proto`: the bytes of `tf.make_tensor_proto`."""

import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from serving.frontends import tensor_proto

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
NUMERIC = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.bool_, np.uint8, np.int16])
BYTES = st.binary(max_size=12)


@st.composite
def arrays(draw):
    if draw(st.booleans()):
        return hnp.arrays(object, draw(SHAPES), elements=draw(st.sampled_from([BYTES, st.text(max_size=6)])))
    return hnp.arrays(draw(NUMERIC), draw(SHAPES))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(arrays().flatmap(lambda strategy: strategy))
def test_a_response_tensor_is_what_make_tensor_proto_writes(value):
    ours = tensor_proto(value).SerializeToString(deterministic=True)
    assert ours == tf.make_tensor_proto(value).SerializeToString(deterministic=True)
    np.testing.assert_array_equal(tf.make_ndarray(tensor_proto(value)), tf.make_ndarray(tf.make_tensor_proto(value)))
