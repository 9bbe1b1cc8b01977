"""The typed graph IR: formats, tensor types, graph, op table, verifier, text form."""

from fpgac.ir.graph import Graph, IRError, Node, Param, Value, graphs_equal
from fpgac.ir.opdef import ShapeError
from fpgac.ir.ops import OPS, infer_shapes, infer_types
from fpgac.ir.printer import parse_graph, print_graph
from fpgac.ir.serialize import load_graph, save_graph
from fpgac.ir.types import (
    FLOAT32,
    Fixed,
    Float,
    Format,
    Overflow,
    Rounding,
    TensorType,
    parse_format,
    parse_type,
)
from fpgac.ir.verifier import VerificationError, verify

__all__ = [
    "FLOAT32",
    "OPS",
    "Fixed",
    "Float",
    "Format",
    "Graph",
    "IRError",
    "Node",
    "Overflow",
    "Param",
    "Rounding",
    "ShapeError",
    "TensorType",
    "Value",
    "VerificationError",
    "graphs_equal",
    "infer_shapes",
    "infer_types",
    "load_graph",
    "parse_format",
    "parse_graph",
    "parse_type",
    "print_graph",
    "save_graph",
    "verify",
]
