"""The README tells a newcomer the truth: the ops it lists, the error it shows, the Python it asks for."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from fpgac.frontend.context import FrontendError
from fpgac.frontend.converters import CONVERTERS
from fpgac.frontend.folding import FOLDERS
from fpgac.frontend.onnx import SUPPORTED_OPS, load_onnx

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _ops_after(text: str, lead: str) -> list[str]:
    listed = text.split(lead, 1)[1].strip().split(".", 1)[0]
    return [op.strip() for op in listed.split(",")]


def test_readme_lists_exactly_the_supported_ops() -> None:
    section = _section("Supported ONNX ops")
    assert _ops_after(section, f"with these {len(SUPPORTED_OPS)} ops:") == SUPPORTED_OPS
    assert _ops_after(section, "are read too:") == sorted(set(FOLDERS) - set(CONVERTERS))


def test_readme_shows_the_unsupported_op_error_fpgac_gives(tmp_path: Path) -> None:
    node = helper.make_node("LSTM", ["x", "w", "r"], ["y"], name="LSTM_0", hidden_size=4)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            helper.make_tensor("w", TensorProto.FLOAT, [1, 16, 3], np.zeros(48)),
            helper.make_tensor("r", TensorProto.FLOAT, [1, 16, 4], np.zeros(64)),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "lstm.onnx")
    with pytest.raises(FrontendError) as caught:
        load_onnx(tmp_path / "lstm.onnx")
    assert f"$ fpgac inspect lstm.onnx\nerror: {caught.value}\n" in README


def test_readme_asks_for_the_python_pyproject_requires() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires.startswith(">=")
    assert re.findall(r"Python ≥ ([\d.]+)", README) == [requires[2:]]
