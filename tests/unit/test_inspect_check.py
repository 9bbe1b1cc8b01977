"""``fpgac inspect --check`` lists every node fpgac cannot lower; ``inspect`` warns on NaN/Inf weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from click.testing import CliRunner
from onnx import TensorProto, helper

from fpgac.cli import cli
from fpgac.frontend.onnx import check_onnx


def _save(path: Path, nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], out: str) -> Path:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("custom", 1)]
    )
    onnx.save(model, path)
    return path


def test_check_lists_every_unsupported_node_once(tmp_path: Path) -> None:
    """Two independent problems (an unknown op, a Flatten that mixes the batch in) are both named; the
    Add reading the unknown op's output is not blamed for it; exit code 1."""
    model = _save(
        tmp_path / "bad.onnx",
        [
            helper.make_node("Relu", ["x"], ["a"], name="relu"),
            helper.make_node("Mystery", ["x"], ["b"], name="mystery", domain="custom"),
            helper.make_node("Add", ["a", "b"], ["c"], name="add"),
            helper.make_node("Flatten", ["c"], ["d"], name="flat0", axis=0),
            helper.make_node("Flatten", ["a"], ["e"], name="flat1", axis=0),
        ],
        [],
        "e",
    )
    problems = check_onnx(model)
    assert [(p.node, p.op) for p in problems] == [("mystery", "custom.Mystery"), ("flat1", "Flatten")]
    assert "batch" in problems[1].why
    result = CliRunner().invoke(cli, ["inspect", str(model), "--check"])
    assert result.exit_code == 1
    assert "'mystery' (op custom.Mystery)" in result.output and "'flat1' (op Flatten)" in result.output


def test_check_passes_a_good_model(tmp_path: Path) -> None:
    model = _save(tmp_path / "ok.onnx", [helper.make_node("Relu", ["x"], ["y"], name="relu")], [], "y")
    assert check_onnx(model) == []
    result = CliRunner().invoke(cli, ["inspect", str(model), "--check"])
    assert result.exit_code == 0 and "every node is supported" in result.output


def test_inspect_warns_on_nan_and_inf_weights(tmp_path: Path) -> None:
    weight = np.ones((3, 4), np.float32)
    weight[0, 0], weight[1, 2] = np.nan, np.inf
    model = _save(
        tmp_path / "nan.onnx",
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)],
        [onnx.numpy_helper.from_array(weight, "w")],
        "y",
    )
    result = CliRunner().invoke(cli, ["inspect", str(model)])
    assert result.exit_code == 0
    assert "warning: node 'fc' (dense): param 'weight' holds 1 NaN and 1 Inf values" in result.output
