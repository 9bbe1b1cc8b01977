"""Unit tests of the IR: types, use-def edits, op shape inference, verifier, text form."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpgac.ir import (
    Fixed,
    Float,
    Graph,
    IRError,
    Overflow,
    Param,
    Rounding,
    ShapeError,
    TensorType,
    VerificationError,
    graphs_equal,
    infer_shapes,
    load_graph,
    parse_format,
    parse_graph,
    parse_type,
    print_graph,
    save_graph,
    verify,
)

CONV = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}


def _params(graph: Graph) -> dict[tuple[str, str], np.ndarray]:
    return {(n.name, k): p.data for n in graph.nodes for k, p in n.params.items()}


def small_cnn(name: str = "cnn", input_name: str = "x") -> Graph:
    rng = np.random.default_rng(0)
    graph = Graph(name)
    x = graph.add_input(input_name, TensorType((3, 8, 8)))
    w = Param(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    conv = graph.add("conv", [x], name="conv1", attrs=CONV, params={"weight": w})
    act = graph.add("relu", [conv.output], name="relu1")
    skip = graph.add("add", [act.output, conv.output], name="residual")
    pool = graph.add(
        "reduce", [skip.output], name="gap", attrs={"mode": "mean", "axes": [1, 2], "keepdims": False}
    )
    fc = graph.add(
        "dense",
        [pool.output],
        name="fc",
        params={
            "weight": Param(rng.standard_normal((10, 4)).astype(np.float32)),
            "bias": Param(np.arange(10, dtype=np.float32)),
        },
    )
    graph.set_outputs([fc.output])
    return graph


def test_formats_print_and_parse() -> None:
    fmt = Fixed(16, 6, True, Rounding.RND_CONV, Overflow.SAT)
    assert fmt.ap_type() == "ap_fixed<16,6,AP_RND_CONV,AP_SAT>"
    assert Fixed(8, 0, False).ap_type() == "ap_ufixed<8,0,AP_TRN,AP_WRAP>"
    assert fmt.frac_bits == 10
    for f in [fmt, Fixed(3, -2, False, "RND", "SAT_SYM"), Float(32), Float(16)]:
        assert parse_format(str(f)) == f
    with pytest.raises(ValueError):
        parse_format("int8")


def test_tensor_type_layout_identity_is_normalised() -> None:
    assert TensorType((3, 4, 5), layout=(0, 1, 2)) == TensorType((3, 4, 5))
    channels_last = TensorType((3, 4, 5), layout=(1, 2, 0))
    assert str(channels_last) == "f32[3,4,5]@1,2,0"
    assert parse_type(str(channels_last)) == channels_last
    with pytest.raises(ValueError):
        TensorType((3, 4), layout=(0, 0))
    assert hash(TensorType((2,))) == hash(TensorType((2,)))


def test_use_def_links_and_replace_all_uses() -> None:
    graph = small_cnn()
    conv = graph.node("conv1")
    assert [n.name for n in conv.output.consumers] == ["relu1", "residual"]
    relu = graph.node("relu1")
    graph.replace_value(relu.output, conv.output)
    assert [n.name for n in conv.output.consumers] == ["relu1", "residual"]
    assert graph.node("residual").inputs == (conv.output, conv.output)
    graph.remove(relu)
    verify(graph)
    with pytest.raises(IRError, match="still used"):
        graph.remove(conv)


def test_nodes_snapshot_allows_editing_while_iterating() -> None:
    graph = small_cnn()
    for node in graph.nodes:
        if node.op == "relu":
            graph.bypass(node, node.inputs[0])
    assert [n.op for n in graph.nodes] == ["conv", "add", "reduce", "dense"]
    verify(graph)


def test_sort_restores_topological_order() -> None:
    graph = small_cnn()
    graph._nodes.reverse()
    with pytest.raises(VerificationError, match="not defined before"):
        verify(graph)
    graph.sort()
    verify(graph)
    assert [n.name for n in graph.nodes] == ["conv1", "relu1", "residual", "gap", "fc"]


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads", "ceil", "expected"),
    [
        (8, 2, 2, (0, 0), False, 4),
        (7, 2, 2, (0, 0), False, 3),
        (7, 2, 2, (0, 0), True, 4),
        (6, 3, 2, (1, 1), True, 4),  # last window would start in the end padding: dropped
        (5, 3, 2, (1, 1), True, 3),
    ],
)
def test_pool_output_size_follows_pytorch(size, kernel, stride, pads, ceil, expected) -> None:
    torch = pytest.importorskip("torch")
    attrs = {
        "kernel": [kernel],
        "strides": [stride],
        "pads": [pads[0], pads[1]],
        "dilations": [1],
        "ceil_mode": ceil,
    }
    shape = infer_shapes("max_pool", [(2, size)], attrs, {})
    pool = torch.nn.MaxPool1d(kernel, stride, padding=pads[0], ceil_mode=ceil)
    assert shape == (2, expected) == tuple(pool(torch.zeros(1, 2, size)).shape[1:])


def test_shape_inference_rejects_inconsistent_nodes() -> None:
    weight = {"weight": np.zeros((4, 2, 3, 3))}
    assert infer_shapes("conv", [(4, 8, 8)], {**CONV, "groups": 2}, weight) == (4, 8, 8)
    with pytest.raises(ShapeError, match="input channels"):
        infer_shapes("conv", [(3, 8, 8)], CONV, weight)
    with pytest.raises(ShapeError, match="do not broadcast"):
        infer_shapes("add", [(3, 4), (5,)], {}, {})
    with pytest.raises(ShapeError, match="cannot reshape"):
        infer_shapes("reshape", [(3, 4)], {"shape": [5]}, {})
    with pytest.raises(ShapeError, match="unknown attributes"):
        infer_shapes("relu", [(3,)], {"alpha": 1.0}, {})
    with pytest.raises(ShapeError, match="unknown IR op"):
        infer_shapes("lstm", [(3,)], {}, {})


def test_verifier_catches_wrong_shapes_and_layouts() -> None:
    graph = small_cnn()
    verify(graph)
    graph.node("relu1").output.type = TensorType((4, 8, 9))
    with pytest.raises(VerificationError, match=r"node 'relu1' \(relu\): output shape"):
        verify(graph)
    graph = small_cnn()
    relu = graph.node("relu1").output
    relu.type = TensorType(relu.shape, layout=(1, 2, 0))
    with pytest.raises(VerificationError, match="different layouts"):
        verify(graph)


def test_verifier_requires_logical_order_for_reshape() -> None:
    graph = Graph()
    x = graph.add_input("x", TensorType((2, 3, 4), layout=(1, 2, 0)))
    graph.set_outputs([graph.add("reshape", [x], attrs={"shape": [24]}).output])
    with pytest.raises(VerificationError, match="relayout"):
        verify(graph)


def test_text_round_trip_and_serialization(tmp_path) -> None:
    graph = small_cnn()
    graph.metadata = {"source": "cnn.onnx", "opset": 17}
    text = print_graph(graph)
    assert text.splitlines()[0] == "fpgac.ir 1"
    assert "%fc = dense @fc (%gap) {} [weight: f32[10,4], bias: f32[10]] : f32[10]" in text
    again = parse_graph(text, _params(graph))
    assert graphs_equal(graph, again)
    assert print_graph(again) == text
    save_graph(graph, tmp_path / "g")
    assert graphs_equal(graph, load_graph(tmp_path / "g"))
    assert graphs_equal(graph, graph.clone())


def test_graphs_equal_sees_param_changes() -> None:
    graph, other = small_cnn(), small_cnn()
    other.node("fc").params["bias"].data[0] += 1
    assert not graphs_equal(graph, other)


@settings(max_examples=60, deadline=None)
@given(name=st.text(min_size=1, max_size=20), graph_name=st.text(max_size=10))
def test_any_names_round_trip(name: str, graph_name: str) -> None:
    graph = small_cnn(graph_name, input_name=name)
    assert graphs_equal(graph, parse_graph(print_graph(graph), _params(graph)))


def test_parse_errors_name_the_line() -> None:
    text = print_graph(small_cnn()).replace("%gap)", "%nope)")
    with pytest.raises(IRError, match=r"line .*'nope' is not defined"):
        parse_graph(text)
    with pytest.raises(IRError, match="must start with"):
        parse_graph("graph x\n")
