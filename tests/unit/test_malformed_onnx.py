"""No bytes make ``load_model`` (``load_onnx`` and the clean-up passes) raise anything but an FpgacError.

Hypothesis truncates, overwrites and splices the bytes of small valid models
(hand-built ones covering the folding paths, and two of the onnx package's light
models). Protobuf parses many damaged files into strange but well-typed models,
so this reaches the checker, shape inference, constant folding and every
converter with nonsense attributes, shapes and types.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from fpgac.build import load_model
from fpgac.errors import FpgacError
from fpgac.ir import Graph

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def _model(nodes: list[onnx.NodeProto], shape: list, inits: dict[str, np.ndarray], opset: int) -> bytes:
    graph = helper.make_graph(
        nodes,
        "seed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    cnn = _model(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
            helper.make_node("BatchNormalization", ["c", "g", "b", "b", "v"], ["n"]),
            helper.make_node("Relu", ["n"], ["r"]),
            helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Shape", ["p"], ["s"]),
            helper.make_node("Gather", ["s", "zero"], ["n0"], axis=0),
            helper.make_node("Unsqueeze", ["n0", "axes"], ["n1"]),
            helper.make_node("Concat", ["n1", "minus1"], ["t"], axis=0),
            helper.make_node("Reshape", ["p", "t"], ["f"]),
            helper.make_node("Gemm", ["f", "fw", "fb"], ["h"], transB=1),
            helper.make_node("Softmax", ["h"], ["y"], axis=1),
        ],
        ["N", 2, 4, 4],
        {
            "w": f32(3, 2, 3, 3),
            "b": f32(3),
            "g": f32(3),
            "v": np.ones(3, np.float32),
            "zero": np.array(0),
            "axes": np.array([0]),
            "minus1": np.array([-1]),
            "fw": f32(5, 12),
            "fb": f32(5),
        },
        13,
    )
    old = _model(
        [
            helper.make_node(
                "ConstantOfShape", ["wshape"], ["w"], value=helper.make_tensor("v", 1, [1], [0.5])
            ),
            helper.make_node("Conv", ["x", "w"], ["c"], auto_pad="SAME_UPPER", group=2),
            helper.make_node("Clip", ["c"], ["k"], min=0.0, max=6.0),
            helper.make_node("Pad", ["k"], ["q"], pads=[0, 0, 1, 1, 0, 0, 1, 1], mode="reflect"),
            helper.make_node("AveragePool", ["q"], ["a"], kernel_shape=[3, 3], count_include_pad=1),
            helper.make_node("Add", ["a", "a"], ["y"]),
        ],
        [1, 4, 5, 5],
        {"wshape": np.array([4, 2, 3, 3])},
        9,
    )
    light = [(LIGHT / f"light_{name}.onnx").read_bytes() for name in ("squeezenet", "inception_v1")]
    return [cnn, old, *light]


SEEDS = _seeds()
_TMP = tempfile.TemporaryDirectory(prefix="fpgac_fuzz_")  # removed when the test process exits
_FOLDER = Path(_TMP.name)


def _mutate(data: bytes, cuts: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, position, chunk in cuts:
        position %= max(len(out), 1)
        if kind == 0:
            del out[position:]
        elif kind == 1:
            out[position : position + len(chunk)] = chunk
        else:
            out[position:position] = chunk
    return bytes(out)


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    seed=st.integers(0, len(SEEDS) - 1),
    cuts=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=4)),
        min_size=1,
        max_size=4,
    ),
)
def test_damaged_models_fail_cleanly(seed: int, cuts: list[tuple[int, int, bytes]]) -> None:
    path = _FOLDER / "model.onnx"
    path.write_bytes(_mutate(SEEDS[seed], cuts))
    try:
        graph = load_model(path)
    except FpgacError as exc:
        message = str(exc)
        assert message.startswith("model.onnx: ") and "\n" not in message
    else:
        assert isinstance(graph, Graph)


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_seeds_load(seed: int) -> None:
    path = _FOLDER / "seed.onnx"
    path.write_bytes(SEEDS[seed])
    assert isinstance(load_model(path), Graph)
