"""Stable text form of the IR, and its parser.

One line per node, readable in a diff, in the spirit of MLIR's generic form::

    fpgac.ir 1
    graph "lenet"
    input %x : f32[1,28,28]
    %conv1 = conv @Conv_0 (%x) {"dilations":[1,1],"groups":1,"pads":[0,0,0,0],"strides":[1,1]} \
[weight: f32[8,1,3,3], bias: f32[8]] : f32[8,26,26]
    output %conv1

(the node line is one line in the file). An input whose callers' arrays are in another axis order
(:mod:`fpgac.ir.boundary`) says which: ``input %x : f32[3,28,28] arrays [1,2,0]`` takes NHWC, and an
output so: ``output %y arrays [1,2,0]``. Names
that are not plain identifiers are written as JSON strings (``%"a b"``). Attributes are JSON with
sorted keys, so floats round-trip exactly. Param *data* is not text: ``parse`` takes it from a
mapping ``{(node name, param name): array}``, which ``serialize`` stores in a
``.npz`` next to the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from fpgac.ir.encoding import Encoding
from fpgac.ir.graph import Graph, IRError, Param, Value
from fpgac.ir.huffman import HuffmanCode
from fpgac.ir.ops import decode_attrs
from fpgac.ir.types import parse_format, parse_type

HEADER = "fpgac.ir 1"
_PLAIN = re.compile(r"[A-Za-z0-9_.:/\-]+")
_WORD = re.compile(r"[a-z_0-9]+")
_TYPE = re.compile(r"[^\s\[]+\[[\d,]*\](?:@[\d,]+)?")


def _name(text: str) -> str:
    return text if _PLAIN.fullmatch(text) else json.dumps(text)


def _attrs(attrs: Mapping[str, Any]) -> str:
    return json.dumps(attrs, sort_keys=True, separators=(",", ":"), allow_nan=True, default=str)


def _arrays(layout: tuple[int, ...] | None) -> str:
    """An input's or output's callers' layout, when it has one (:mod:`fpgac.ir.boundary`)."""
    return "" if layout is None else f" arrays {json.dumps(list(layout), separators=(',', ':'))}"


def print_graph(graph: Graph) -> str:
    """The text form of ``graph`` (params as shapes and formats, not data)."""
    lines = [HEADER, f"graph {json.dumps(graph.name)}"]
    if graph.metadata:
        lines.append(f"meta {_attrs(graph.metadata)}")
    for value in graph.inputs:
        lines.append(
            f"input %{_name(value.name)} : {value.type}{_arrays(graph.input_layouts.get(value.name))}"
        )
    for node in graph.nodes:
        outs = ", ".join(f"%{_name(v.name)}" for v in node.outputs)
        ins = ", ".join(f"%{_name(v.name)}" for v in node.inputs)
        params = ", ".join(
            f"{k}: {p.format}[{','.join(str(d) for d in p.shape)}]"
            + (f" ~{_attrs(p.encoding.summary())}" if p.encoding is not None else "")
            for k, p in node.params.items()
        )
        types = ", ".join(str(v.type) for v in node.outputs)
        line = f"{outs} = {node.op} @{_name(node.name)} ({ins}) {_attrs(node.attrs)}"
        if node.params:
            line += f" [{params}]"
        lines.append(f"{line} : {types}")
    lines.extend(
        f"output %{_name(v.name)}{_arrays(graph.output_layouts.get(i))}" for i, v in enumerate(graph.outputs)
    )
    return "\n".join(lines) + "\n"


class _Cursor:
    """A tiny scanner over one line of the text form."""

    def __init__(self, text: str, lineno: int) -> None:
        self.text, self.pos, self.lineno = text, 0, lineno

    def error(self, what: str) -> IRError:
        return IRError(f"IR text line {self.lineno}: {what} at column {self.pos + 1}: {self.text!r}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def peek(self, token: str) -> bool:
        self.skip()
        return self.text.startswith(token, self.pos)

    def expect(self, token: str) -> None:
        if not self.peek(token):
            raise self.error(f"expected {token!r}")
        self.pos += len(token)

    def json_value(self) -> Any:
        self.skip()
        try:
            value, end = json.JSONDecoder().raw_decode(self.text, self.pos)
        except json.JSONDecodeError as exc:
            raise self.error("bad JSON") from exc
        self.pos = end
        return value

    def name(self, sigil: str = "") -> str:
        if sigil:
            self.expect(sigil)
        else:
            self.skip()
        if self.text.startswith('"', self.pos):
            value = self.json_value()
            if not isinstance(value, str):
                raise self.error("expected a name")
            return value
        match = _PLAIN.match(self.text, self.pos)
        if not match:
            raise self.error("expected a name")
        self.pos = match.end()
        return match.group()

    def word(self) -> str:
        return self._match(_WORD, "a word")

    def type(self) -> str:
        return self._match(_TYPE, "a tensor type")

    def _match(self, pattern: re.Pattern[str], what: str) -> str:
        self.skip()
        match = pattern.match(self.text, self.pos)
        if not match:
            raise self.error(f"expected {what}")
        self.pos = match.end()
        return match.group()

    def done(self) -> None:
        self.skip()
        if self.pos != len(self.text):
            raise self.error("unexpected text")


def parse_graph(text: str, param_data: Mapping[tuple[str, str], np.ndarray] | None = None) -> Graph:
    """Inverse of :func:`print_graph`. Params without data in ``param_data`` are zeros."""
    param_data = param_data or {}
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not lines or lines[0][1].strip() != HEADER:
        raise IRError(f"IR text must start with {HEADER!r}")
    graph = Graph()
    values: dict[str, Value] = {}
    for lineno, line in lines[1:]:
        cur = _Cursor(line, lineno)
        if line.startswith("graph "):
            cur.expect("graph")
            graph.name = cur.json_value()
        elif line.startswith("meta "):
            cur.expect("meta")
            graph.metadata = cur.json_value()
        elif line.startswith("input "):
            cur.expect("input")
            name = cur.name("%")
            cur.expect(":")
            value = graph.add_input(name, parse_type(cur.type()))
            if value.name != name:
                raise cur.error(f"value {name!r} is defined twice")
            values[name] = value
            if cur.peek("arrays"):
                cur.expect("arrays")
                graph.input_layouts[name] = tuple(int(a) for a in cur.json_value())
        elif line.startswith("output "):
            cur.expect("output")
            name = cur.name("%")
            if name not in values:
                raise cur.error(f"output {name!r} is not defined")
            if cur.peek("arrays"):
                cur.expect("arrays")
                graph.output_layouts[len(graph.outputs)] = tuple(int(a) for a in cur.json_value())
            graph.set_outputs([*graph.outputs, values[name]])
        else:
            _parse_node(cur, graph, values, param_data)
        cur.done()
    return graph


def _parse_node(
    cur: _Cursor, graph: Graph, values: dict[str, Value], param_data: Mapping[tuple[str, str], np.ndarray]
) -> None:
    outs = [cur.name("%")]
    while cur.peek(","):
        cur.expect(",")
        outs.append(cur.name("%"))
    cur.expect("=")
    op = cur.word()
    node_name = cur.name("@")
    cur.expect("(")
    ins: list[str] = []
    while not cur.peek(")"):
        if ins:
            cur.expect(",")
        ins.append(cur.name("%"))
    cur.expect(")")
    attrs = decode_attrs(op, cur.json_value())
    params: dict[str, Param] = {}
    if cur.peek("["):
        cur.expect("[")
        while not cur.peek("]"):
            if params:
                cur.expect(",")
            key = cur.word()
            cur.expect(":")
            ptype = parse_type(cur.type())
            data = param_data.get((node_name, key))
            if data is None:
                data = np.zeros(ptype.shape, dtype=np.float32)
            elif tuple(data.shape) != ptype.shape:
                raise cur.error(f"param {key!r} data has shape {data.shape}, text says {ptype.shape}")
            encoding = None
            if cur.peek("~"):
                cur.expect("~")
                encoding = _encoding(cur, cur.json_value(), node_name, key, ptype.shape, param_data)
            params[key] = Param(np.asarray(data), parse_format(str(ptype.format)), encoding)
        cur.expect("]")
    cur.expect(":")
    types = [parse_type(cur.type())]
    while cur.peek(","):
        cur.expect(",")
        types.append(parse_type(cur.type()))
    try:
        inputs = [values[n] for n in ins]
    except KeyError as exc:
        raise cur.error(f"input {exc.args[0]!r} is not defined") from None
    node = graph.add(op, inputs, types, name=node_name, attrs=attrs, params=params, output_names=outs)
    if node.name != node_name or [v.name for v in node.outputs] != outs:
        raise cur.error("a node or value name is defined twice")
    for value in node.outputs:
        values[value.name] = value


def encoding_arrays(key: str, encoding: Encoding) -> dict[str, np.ndarray]:
    """The array part of an encoding, as extra param-data entries next to param ``key``."""
    arrays: dict[str, np.ndarray] = {}
    if encoding.codebook is not None and encoding.indices is not None:
        arrays[f"{key}~codebook"] = encoding.codebook
        arrays[f"{key}~indices"] = encoding.indices
    for stream, code in encoding.huffman.items():
        constant = -1 if code.constant is None else code.constant
        arrays[f"{key}~huffman~{stream}"] = np.asarray([*code.lengths, constant], dtype=np.int64)
    return arrays


def _encoding(
    cur: _Cursor,
    summary: Any,
    node: str,
    key: str,
    shape: tuple[int, ...],
    param_data: Mapping[tuple[str, str], np.ndarray],
) -> Encoding:
    if not isinstance(summary, dict) or set(summary) - {"gap_bits", "codebook", "huffman"}:
        raise cur.error(f"bad encoding of param {key!r}")
    codebook = indices = None
    if "codebook" in summary:
        size = int(summary["codebook"])
        codebook = np.asarray(param_data.get((node, f"{key}~codebook"), np.zeros(size)), dtype=np.float64)
        indices = np.asarray(param_data.get((node, f"{key}~indices"), np.zeros(shape, dtype=np.uint16)))
        if codebook.shape != (size,) or indices.shape != shape:
            raise cur.error(f"encoding data of param {key!r} does not match its text")
    huffman = {}
    for stream in summary.get("huffman", []):
        table = param_data.get((node, f"{key}~huffman~{stream}"))
        if table is None:
            raise cur.error(f"param {key!r} has no Huffman table for stream {stream!r}")
        lengths, constant = [int(v) for v in table[:-1]], int(table[-1])
        huffman[str(stream)] = HuffmanCode(tuple(lengths), None if constant < 0 else constant)
    return Encoding(summary.get("gap_bits"), codebook, indices, huffman)
