"""Builds the test-only models in test/fixtures/ (committed; rerun only to regenerate):

- broken/broken.onnx: loads, passes warm-up (an all-zero row) and fails at run time on every
  real churn event, to test the circuit breaker. It gathers row `int(monthly_charges)` of a
  one-row table: index 0 (the warm-up row) is valid, real charges (20-120) are out of range.
- slow/slow.onnx: a deliberately slow churn-shaped model (a Loop of many small MatMuls per
  batch, a tiny file), to test backpressure: the input backlog grows while memory must not.
- rollout/<version>/: churn versions that a deployment must handle, as repository folders
  (model.onnx + manifest.json), copied next to models/churn/* by the tests:
  - 1.2.0-flaky: churn 1.0.0 whose score is NaN for rows with support_tickets_90d >= 5 (~8 % of
    the reference events, none of the warm-up row): the canary guard must roll it back.
  - 1.3.0-nowarmup: loads, then fails every inference (a Gather out of range), the warm-up too.
  - 1.4.0-misfit: churn 1.0.0 whose manifest reads features.loyalty_points, which the reader
    schema does not have: refused before it takes traffic.

Run with the models venv: models/.venv/bin/python models/make_test_models.py
"""
import json
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

fixtures = pathlib.Path(__file__).resolve().parent.parent / "test" / "fixtures"


def churn_shaped(nodes, name: str, inits) -> onnx.ModelProto:
    """A graph with the churn model's interface: features [N,14] -> label [N], probabilities [N,2]."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 14])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
        initializer=inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


out_dir = fixtures / "broken"
out_dir.mkdir(parents=True, exist_ok=True)

nodes = [
    helper.make_node("Slice", ["features", "starts", "ends", "axes"], ["charges"]),  # [N,1]
    helper.make_node("Cast", ["charges"], ["idx2d"], to=TensorProto.INT64),
    helper.make_node("Squeeze", ["idx2d", "sq_axes"], ["idx"]),  # [N]
    helper.make_node("Gather", ["table", "idx"], ["probabilities"], axis=0),  # [N,2]
    helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
]
inits = [
    numpy_helper.from_array(np.array([1], dtype=np.int64), "starts"),
    numpy_helper.from_array(np.array([2], dtype=np.int64), "ends"),
    numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
    numpy_helper.from_array(np.array([1], dtype=np.int64), "sq_axes"),
    numpy_helper.from_array(np.array([[0.5, 0.5]], dtype=np.float32), "table"),
]
onnx.save(churn_shaped(nodes, "broken", inits), out_dir / "broken.onnx")

manifest = json.loads((pathlib.Path(__file__).resolve().parent / "churn.manifest.json").read_text())
manifest.update(
    name="broken",
    version="0.0.1",
    description="Test fixture: loads and warms up, then fails on every real event (models/make_broken.py).",
    eventSchema="schemas/feature-event.avsc",
)
manifest.pop("training", None)
(out_dir / "broken.manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
print("wrote", out_dir)

# slow: x -> Loop(ITERATIONS){ x = tanh(x @ W) } -> sigmoid(sum) as P(churn)
ITERATIONS = 4000
slow_dir = fixtures / "slow"
slow_dir.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
body = helper.make_graph(
    [
        helper.make_node("MatMul", ["x_in", "W"], ["xw"]),
        helper.make_node("Tanh", ["xw"], ["x_out"]),
        helper.make_node("Identity", ["cond_in"], ["cond_out"]),
    ],
    "body",
    [
        helper.make_tensor_value_info("i", TensorProto.INT64, []),
        helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [None, 14]),
    ],
    [
        helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
        helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [None, 14]),
    ],
)
slow_nodes = [
    helper.make_node("Div", ["features", "scale"], ["x0"]),
    helper.make_node("Loop", ["trip", "cond"], ["x_final"], body=body),
    helper.make_node("ReduceSum", ["x_final", "rs_axes"], ["logit"], keepdims=1),  # [N,1]
    helper.make_node("Sigmoid", ["logit"], ["p1"]),
    helper.make_node("Sub", ["one", "p1"], ["p0"]),
    helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
    helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
]
# Loop carries x: inputs are (trip, cond, x0); fix the node's inputs accordingly.
slow_nodes[1] = helper.make_node("Loop", ["trip", "cond", "x0"], ["x_final"], body=body)
slow_inits = [
    numpy_helper.from_array(np.full((1, 14), 100.0, dtype=np.float32), "scale"),
    numpy_helper.from_array(np.array(ITERATIONS, dtype=np.int64), "trip"),
    numpy_helper.from_array(np.array(True), "cond"),
    numpy_helper.from_array(np.array([1], dtype=np.int64), "rs_axes"),
    numpy_helper.from_array(np.array([[1.0]], dtype=np.float32), "one"),
    numpy_helper.from_array((rng.standard_normal((14, 14)) / 4).astype(np.float32), "W"),
]
onnx.save(churn_shaped(slow_nodes, "slow", slow_inits), slow_dir / "slow.onnx")
manifest.update(name="slow", version="0.0.1", description=f"Test fixture: {ITERATIONS} chained 14x14 MatMuls per batch, to test backpressure (models/make_test_models.py).")
(slow_dir / "slow.manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
print("wrote", slow_dir)

# rollout: versions a deployment must refuse or roll back (see the docstring).
models_dir = pathlib.Path(__file__).resolve().parent
rollout_dir = fixtures / "rollout"
base_manifest = json.loads((models_dir / "churn" / "1.0.0" / "manifest.json").read_text())
base_manifest.pop("training", None)
TICKETS = base_manifest["features"].index("support_tickets_90d")


def write_version(version: str, model: onnx.ModelProto, description: str, **changes) -> None:
    folder = rollout_dir / version
    folder.mkdir(parents=True, exist_ok=True)
    onnx.checker.check_model(model)
    onnx.save(model, folder / "model.onnx")
    m = {**base_manifest, "version": version, "description": f"Test fixture: {description} (models/make_test_models.py).", **changes}
    (folder / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    print("wrote", folder)


# 1.2.0-flaky: the real churn graph, its probabilities replaced by NaN where tickets >= 5.
flaky = onnx.load(models_dir / "churn" / "1.0.0" / "model.onnx")
for node in flaky.graph.node:
    node.output[:] = ["probabilities_model" if o == "probabilities" else o for o in node.output]
flaky.graph.node.extend(
    [
        helper.make_node("Slice", ["features", "tk_starts", "tk_ends", "tk_axes"], ["tickets"], name="flaky_slice"),
        helper.make_node("Greater", ["tickets", "tk_limit"], ["flaky_rows"], name="flaky_greater"),
        helper.make_node("Where", ["flaky_rows", "tk_nan", "probabilities_model"], ["probabilities"], name="flaky_where"),
    ]
)
flaky.graph.initializer.extend(
    [
        numpy_helper.from_array(np.array([TICKETS], dtype=np.int64), "tk_starts"),
        numpy_helper.from_array(np.array([TICKETS + 1], dtype=np.int64), "tk_ends"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "tk_axes"),
        numpy_helper.from_array(np.array([[4.5]], dtype=np.float32), "tk_limit"),
        numpy_helper.from_array(np.array([[np.nan]], dtype=np.float32), "tk_nan"),
    ]
)
write_version("1.2.0-flaky", flaky, "churn 1.0.0 with a NaN score for every row with support_tickets_90d >= 5")

# 1.3.0-nowarmup: every row gathers index 5 of a one-row table, so every run fails.
nowarmup_nodes = [
    helper.make_node("Slice", ["features", "starts", "ends", "axes"], ["first"]),  # [N,1]
    helper.make_node("Mul", ["first", "zero"], ["zeros"]),
    helper.make_node("Add", ["zeros", "five"], ["fives"]),
    helper.make_node("Cast", ["fives"], ["idx2d"], to=TensorProto.INT64),
    helper.make_node("Squeeze", ["idx2d", "sq_axes"], ["idx"]),  # [N]
    helper.make_node("Gather", ["table", "idx"], ["probabilities"], axis=0),  # [N,2]: out of range
    helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
]
nowarmup_inits = [
    numpy_helper.from_array(np.array([0], dtype=np.int64), "starts"),
    numpy_helper.from_array(np.array([1], dtype=np.int64), "ends"),
    numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
    numpy_helper.from_array(np.array([1], dtype=np.int64), "sq_axes"),
    numpy_helper.from_array(np.array([[0.0]], dtype=np.float32), "zero"),
    numpy_helper.from_array(np.array([[5.0]], dtype=np.float32), "five"),
    numpy_helper.from_array(np.array([[0.5, 0.5]], dtype=np.float32), "table"),
]
write_version("1.3.0-nowarmup", churn_shaped(nowarmup_nodes, "nowarmup", nowarmup_inits), "loads, then every inference fails, the warm-up first")

# 1.4.0-misfit: a good model whose manifest reads a field the reader schema does not have.
misfit_features = ["loyalty_points" if f == "discount_pct" else f for f in base_manifest["features"]]
write_version(
    "1.4.0-misfit",
    onnx.load(models_dir / "churn" / "1.0.0" / "model.onnx"),
    "churn 1.0.0 whose manifest reads features.loyalty_points, absent from the reader schema",
    features=misfit_features,
)
