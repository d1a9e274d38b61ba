"""Run in a fresh process: load an export the way tensorflow_model_server does, and report.

Imports TensorFlow and tensorflow-text only, nothing of this project. Prints one JSON line: the
decode signature's output for the given sentences (run by tensor names through the TF1 session
loader), the op types of the graph and its function library split into TensorFlow core ops
(registered before tensorflow-text is imported), tensorflow-text ops (registered by importing
it) and ops neither registers.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

export_dir, sentences = sys.argv[1], sys.argv[2:]
saved_model = saved_model_pb2.SavedModel()
with open(os.path.join(export_dir, "saved_model.pb"), "rb") as handle:
    saved_model.ParseFromString(handle.read())
graph_def = saved_model.meta_graphs[0].graph_def
op_types = {node.op for node in graph_def.node}
for function in graph_def.library.function:
    op_types |= {node.op for node in function.node_def}
op_types -= {function.signature.name for function in graph_def.library.function}
core = sorted(op for op in op_types if op_def_registry.get(op) is not None)

import tensorflow_text  # noqa: E402,F401  (TF Serving links this op library)

text = sorted(op for op in op_types if op not in core and op_def_registry.get(op) is not None)
unknown = sorted(op_types - set(core) - set(text))

graph = tf.Graph()
session = tf.compat.v1.Session(graph=graph)
with graph.as_default():
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
signature = meta_graph.signature_def["decode"]
names = sorted(signature.outputs)
values = session.run([signature.outputs[n].name for n in names],
                     {signature.inputs["sentences"].name: np.array(sentences, dtype=object)})
decoded = dict(zip(names, values))


def run(signature, inputs):
    names = sorted(signature.outputs)
    values = session.run([signature.outputs[n].name for n in names],
                         {signature.inputs[k].name: v for k, v in inputs.items()})
    return dict(zip(names, values))


def same_rows(got, want):
    """Rows equal, a wider batch's extra columns being padding."""
    if got.ndim > 1 and got.shape[1] > want.shape[1]:
        got = got[:, : want.shape[1]]
    if got.shape != want.shape:
        return False
    return bool(np.allclose(got, want, atol=1e-5) if got.dtype.kind == "f" else np.array_equal(got, want))


from tensorflow_serving.apis import prediction_log_pb2  # noqa: E402  (the stock server's own protos)

unbatchable = []
warmup = os.path.join(export_dir, "assets.extra", "tf_serving_warmup_requests")
for record in tf.compat.v1.io.tf_record_iterator(warmup):
    request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
    name = request.model_spec.signature_name or "serving_default"
    signature = meta_graph.signature_def[name]
    for side in ("inputs", "outputs"):
        for key, info in getattr(signature, side).items():
            if info.tensor_shape.unknown_rank or not info.tensor_shape.dim or info.tensor_shape.dim[0].size != -1:
                unbatchable.append(f"{name}: {side[:-1]} {key} has no leading batch dimension")
    inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
    rows = {len(value) for value in inputs.values()}
    if len(rows) != 1 or rows == {1}:
        unbatchable.append(f"{name}: its warm-up request must have several rows of one count, got {rows}")
        continue
    whole = run(signature, inputs)
    for row in range(rows.pop()):
        alone = run(signature, {key: value[row : row + 1] for key, value in inputs.items()})
        for key, value in alone.items():
            if key == "nfe":  # the batch's solver evaluations, the same on every row of a run
                continue
            if not same_rows(whole[key][row : row + 1], value):
                unbatchable.append(f"{name}: output {key} of row {row} differs when batched")
print(json.dumps({
    "sentences": [s.decode("utf-8") for s in decoded["sentences"]],
    "token_ids": decoded["token_ids"].tolist(),
    "core_ops": core,
    "text_ops": text,
    "unknown_ops": unknown,
    "signatures": sorted(meta_graph.signature_def),
    "unbatchable": unbatchable,
    "imported_project": any(name.split(".")[0] in ("tfode", "training", "serving") for name in sys.modules),
}))
