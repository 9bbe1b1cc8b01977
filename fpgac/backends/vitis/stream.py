"""The io_stream style of the Vitis backend: layers connected by ``hls::stream`` FIFOs in a dataflow region.

A value of logical shape ``(C, ...)`` travels as ``P = size / C`` beats of one ``fpgac::pixel`` (its C
channel values; channels-last order for images, one beat for a vector), see ``fpgac_stream.h``. A value
named in ``lanes`` is channel-folded: each pixel travels as ``G = C / L`` beats of ``L`` channels, so the
layers at its ends need L units, not C (every mode below reads and writes folded streams; graph inputs
and outputs are never folded). Each layer runs in one of three modes:

* **window** (conv, max/avg pooling): a line buffer of the window's rows; outputs leave pixel by pixel
  as soon as the input rows they need have arrived.
* **beat** (elementwise ops on same-shape inputs): one beat in, one beat out, params indexed by channel.
* **pixel** (concat over channels): each pixel's beats of input 0, then of input 1, ..., copied to the
  output (folded: every input and the output in beats of the same L channels).
* **permute** (a channel shuffle: a transpose of a channel split, see :mod:`fpgac.analysis.lanes`):
  each pixel's beats are read into a register array and written out in the new channel order.
* **buffered** (everything else: dense, softmax, reshape, transpose, other concats, pad, reduce, broadcasting
  ops): the whole input is gathered into an array in logical order, the io_parallel code runs on it, and
  the result streams out. Dense layers need every input before their first output anyway.

A FIFO has one reader, so a value with several uses (a residual fork, a graph output that is also read
inside) is copied by a generated fork function into one FIFO per use; each fork output is as deep as
:mod:`fpgac.analysis.fifos` says (what the other uses' paths swallow before they reach a join, at most
the value's beats), so a branch that waits (a line buffer filling up) never stalls its sibling into a
dataflow deadlock; the estimate charges the same depths. Other FIFOs are 2 deep. A fork output the
fitting spilled (``spills``) goes through external memory instead (``fpgac_spill.h``): the fork writes
one burst-deep FIFO for all of a value's spilled uses, which ``spill_write`` bursts into the value's region,
and for each spilled use a ``spill_read`` bursts each chunk back, once its token says it landed, into the
burst-deep FIFO its reader reads. The region (two frames: frames alternate between its halves, so a writer
a frame ahead never overwrites what is still to be read) is reached through ports of the top (bundle
``gmem_s``), one written and one per reader, which the host (and the testbench) point at the same scratch
memory.

This module decides modes, signatures and the top function's wiring; the arithmetic is the io_parallel
emitters' (``layers.py``), so both styles are bit-exact with ``fpgac sim`` by the same argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from fpgac.analysis.estimate import OFFCHIP_WORD_BITS, SPILL_BURST, stored_bits
from fpgac.analysis.fifos import SHALLOW_DEPTH, Fifo, stream_fifos
from fpgac.analysis.lanes import pixels_channels, stream_mode
from fpgac.backends.cnames import CNames
from fpgac.backends.vitis.ccode import VitisError, c_int_type
from fpgac.backends.vitis.weight_image import Block
from fpgac.ir.graph import Graph, Node, Value
from fpgac.ir.types import Fixed

Lanes = Mapping[str, int]  # value name -> channels a beat carries (channel-folded streams)
# A top-level port beat carries at most this many elements and bits: a 1000-class output would otherwise be
# one 16,000-bit AXI stream beat. A wider beat crosses the port as several narrower ones (port_channels).
PORT_BEAT_ELEMENTS = 64
PORT_BEAT_BITS = 1024
# Names of locals in stream layer functions (reserved so model names never shadow them).
RESERVED: tuple[str, ...] = ("p", "c", "b", "lane", "y_px", "y_s", "rows")
RESERVED += (*(f"x{k}_px" for k in range(64)), *(f"x{k}_s" for k in range(64)))


def beats(value: Value, lanes: Lanes | None = None) -> tuple[int, int]:
    """(beats, L): the beats a value travels in and the channels each beat carries (L = C unless
    ``lanes`` folds it)."""
    pixels, groups, width = fold(value, lanes)
    return pixels * groups, width


def fold(value: Value, lanes: Lanes | None = None) -> tuple[int, int, int]:
    """(P, G, L): a value travels as P pixels of G beats of L channels; ``lanes`` maps value names to L
    (a divisor of C; a value it does not name travels unfolded, G = 1 and L = C)."""
    pixels, channels = pixels_channels(value)
    width = (lanes or {}).get(value.name, channels)
    if width < 1 or channels % width:
        raise VitisError(f"value {value.name!r}: {width} lanes do not divide its {channels} channels")
    return pixels, channels // width, width


def trace_args(value: Value, lanes: Lanes | None = None) -> str:
    """The beat arguments of FPGAC_TRACE_STREAM: P, or P and G for a channel-folded value."""
    pixels, groups, _ = fold(value, lanes)
    return f"{pixels}" if groups == 1 else f"{pixels}, {groups}"


def stream_type(type_name: str, value: Value, lanes: Lanes | None = None) -> str:
    return f"hls::stream<fpgac::pixel<{type_name}, {beats(value, lanes)[1]}> >"


def port_channels(value: Value) -> int:
    """K: the channels a top-level port's beat carries, the largest divisor of the value's C that fits
    :data:`PORT_BEAT_ELEMENTS` and :data:`PORT_BEAT_BITS`; each internal beat of C channels crosses the
    port as C / K beats, in channel order (a divisor, so every port beat is full)."""
    fmt = value.type.format
    assert isinstance(fmt, Fixed)  # the emitter refuses float values first
    channels = beats(value)[1]
    limit = max(1, min(PORT_BEAT_ELEMENTS, PORT_BEAT_BITS // fmt.width))
    return max(k for k in range(1, min(channels, limit) + 1) if channels % k == 0)


def port_stream_type(type_name: str, value: Value) -> str:
    return f"hls::stream<fpgac::pixel<{type_name}, {port_channels(value)}> >"


def layer_mode(node: Node) -> str:
    """``window``, ``beat``, ``pixel``, ``permute`` or ``buffered`` (see the module docstring)."""
    return stream_mode(node)


class LayerArg(TypedDict):
    """One input of a layer function: its C name (``x0``...), type and size, and the value it carries."""

    name: str
    type: str
    size: int
    value: str
    v: Value


def signature(
    name: str,
    mode: str,
    args: list[LayerArg],
    out_type: str,
    out: Value,
    memory: Sequence[str] = (),
    lanes: Lanes | None = None,
) -> str:
    """The layer function's declaration: streams in, stream out (buffered layers' streams end in ``_s``),
    then its external-memory ports (``memory``: declarations of off-chip weight pointers)."""
    suffix = "_s" if mode == "buffered" else ""
    params = [f"{stream_type(a['type'], a['v'], lanes)}& {a['name']}{suffix}" for a in args]
    params.append(f"{stream_type(out_type, out, lanes)}& y{suffix}")
    params.extend(memory)
    return f"static void {name}({', '.join(params)})"


def buffered_body(
    body: str, args: list[LayerArg], out_type: str, out: Value, lanes: Lanes | None = None
) -> str:
    """Gather every input into a logical-order array, run the array code, stream the result out."""
    lines = []
    for a in args:
        lines.append(f"  static {a['type']} {a['name']}[{a['size']}];")
        lines.append(f"  fpgac::read_tensor<{trace_args(a['v'], lanes)}>({a['name']}_s, {a['name']});")
    lines.append(f"  static {out_type} y[{out.type.size}];")
    lines.append(body)
    lines.append(f"  fpgac::write_tensor<{trace_args(out, lanes)}>(y, y_s);")
    return "\n".join(lines)


@dataclass(frozen=True)
class SpillPort:
    """A spilled value: its spilled FIFOs (``fifos``: their keys), its ports (``write``, and ``reads``: one
    per FIFO) and its region of the scratch memory (``region``: two frames of the value's words, laid out
    as weight-image blocks are)."""

    fifos: tuple[str, ...]
    write: str
    reads: tuple[str, ...]
    region: Block

    def to_json(self) -> dict[str, Any]:
        fields = {"fifos": list(self.fifos), "write": self.write, "reads": list(self.reads)}
        return {**fields, **self.region.to_json()}


@dataclass
class Wiring:
    """The top function of a stream design: FIFO declarations, calls in graph order, fork functions, and
    the regions of the spilled FIFOs."""

    lines: list[str]
    forks: list[str]
    spills: list[SpillPort] = field(default_factory=list)


def wire(
    graph: Graph,
    design: dict[str, Any],
    names: CNames,
    lanes: Lanes | None = None,
    spills: frozenset[str] = frozenset(),
) -> Wiring:
    """Connect ports, layers and forks with FIFOs; every value's trace is taken after its producer runs.

    ``design`` is :func:`fpgac.backends.vitis.emitter.design`'s data (inputs, layers, outputs with C names);
    ``lanes`` the channel-folded values (graph inputs and outputs never are: ports carry whole pixels);
    ``spills`` the keys of the fork FIFOs kept in external memory.
    """
    for value in (*graph.inputs, *graph.outputs):
        if fold(value, lanes)[1] != 1:
            raise VitisError(f"value {value.name!r} is a graph input or output: its stream cannot be folded")
    producer_stream: dict[int, str] = {}
    trace_name: dict[int, str] = {}
    type_of: dict[int, str] = {}
    for value, p in zip(graph.inputs, design["inputs"], strict=True):
        producer_stream[id(value)], trace_name[id(value)], type_of[id(value)] = (
            p["name"],
            p["name"],
            p["type"],
        )
    for node, layer in zip(graph.nodes, design["layers"], strict=True):
        trace_name[id(node.output)], type_of[id(node.output)] = layer["out"], layer["out_type"]
    # Every use of a value: a layer's argument or an output port.
    uses: dict[int, list[tuple[str, int, int]]] = {}
    for i, node in enumerate(graph.nodes):
        for k, value in enumerate(node.inputs):
            uses.setdefault(id(value), []).append(("arg", i, k))
    for k, value in enumerate(graph.outputs):
        uses.setdefault(id(value), []).append(("port", k, 0))
    forked = {(f.reader, f.index): f for f in stream_fifos(graph) if f.reader}
    unknown = sorted(spills - {f.key for f in forked.values()})
    if unknown:
        raise VitisError(f"spilled FIFOs {unknown} are not fork outputs of this graph")
    reads: dict[tuple[str, int, int], str] = {}
    lines: list[str] = []
    forks: list[str] = []
    regions: list[SpillPort] = []

    def declare(name: str, value: Value, depth: int) -> None:
        lines.append(f'  {stream_type(type_of[id(value)], value, lanes)} {name}("{name}");')
        lines.append(f"  FPGAC_PRAGMA(HLS STREAM variable={name} depth={depth})")

    # Ports with narrower beats than the value's (port_channels) get a full-width stream inside and a
    # converter process between it and the port; the layers only ever see full-width streams.
    ports, narrows = [], []
    for value, o in zip(graph.outputs, design["outputs"], strict=True):
        if port_channels(value) == beats(value)[1]:
            ports.append(o["port"])
            continue
        ports.append(names.claim(f"{o['port']}_wide"))
        declare(ports[-1], value, SHALLOW_DEPTH)
        narrows.append(f"  fpgac::narrow<{beats(value)[0]}>({ports[-1]}, {o['port']});")
    for value, p in zip(graph.inputs, design["inputs"], strict=True):
        if port_channels(value) != beats(value)[1]:
            wide = names.claim(f"{p['name']}_wide")
            declare(wide, value, SHALLOW_DEPTH)
            lines.append(f"  fpgac::widen<{beats(value)[0]}>({p['name']}, {wide});")
            producer_stream[id(value)] = wide

    def distribute(value: Value) -> None:
        """Route the value's stream to its uses: directly when there is one, through a fork otherwise."""
        source, targets = producer_stream[id(value)], uses.get(id(value), [])
        if source in ports or not targets:
            return  # a layer wrote its only use, an output port, directly
        if len(targets) == 1 and targets[0][0] == "arg":
            reads[targets[0]] = source
            return
        fork = names.claim(f"{source}_fork")
        outs, spilled, into = [], [], ""
        for use in targets:
            if use[0] == "port":
                outs.append(ports[use[1]])
                continue
            fifo = forked[(graph.nodes[use[1]].name, use[2])]
            if fifo.key in spills:  # every spilled use reads back what one FIFO into the spill carries
                if not into:
                    into = names.claim(f"{source}_to")
                    declare(into, value, SPILL_BURST)
                    outs.append(into)
                reads[use] = names.claim(f"{source}_back")
                declare(reads[use], value, SPILL_BURST)
                spilled.append((fifo, reads[use]))
                continue
            outs.append(names.claim(f"{source}_to"))
            declare(outs[-1], value, fifo.depth(fold(value, lanes)[1]))
            reads[use] = outs[-1]
        s_type = stream_type(type_of[id(value)], value, lanes)
        forks.append(_fork_function(fork, s_type, beats(value, lanes)[0], len(outs)))
        lines.append(f"  {fork}({source}, {', '.join(outs)});")
        if spilled:
            offset = regions[-1].region.end if regions else 0
            first = sum(1 + len(r.reads) for r in regions)  # each spill process's own frame parity
            regions.append(_spill(spilled, into, names, offset, first, lines, lanes))

    for value in graph.inputs:
        lines.append(f'  FPGAC_TRACE_STREAM("{trace_name[id(value)]}", {producer_stream[id(value)]}, '
                     f"{beats(value)[0]});")  # fmt: skip
    for value in graph.inputs:
        distribute(value)
    for i, (node, layer) in enumerate(zip(graph.nodes, design["layers"], strict=True)):
        targets = uses.get(id(node.output), [])
        if len(targets) == 1 and targets[0][0] == "port":
            out = ports[targets[0][1]]  # the only use is an output: write the port directly
        else:
            out = layer["out"]
            lines.append("")
            declare(out, node.output, SHALLOW_DEPTH)
        producer_stream[id(node.output)] = out
        args = [reads[("arg", i, k)] for k in range(len(node.inputs))]
        memory = [m.name for m in layer["memory"]]  # off-chip weights: the top's m_axi ports
        scalars = layer["scalars"]  # the top's scalar ports (rank_level)
        lines.append(f"  {layer['name']}({', '.join([*args, out, *memory, *scalars])});")
        lines.append(f'  FPGAC_TRACE_STREAM("{layer["out"]}", {out}, {trace_args(node.output, lanes)});')
        distribute(node.output)
    return Wiring(lines + narrows, forks, regions)


def _spill(
    spilled: Sequence[tuple[Fifo, str]],
    into: str,
    names: CNames,
    offset: int,
    first: int,
    lines: list[str],
    lanes: Lanes | None,
) -> SpillPort:
    """The processes of a value's spilled FIFOs (``spilled``: each with the FIFO its reader reads), from
    ``into``, appended to ``lines``, and the value's region at ``offset``; ``first`` numbers the
    processes. Chunks of one burst (:data:`SPILL_BURST` memory words of beats), a token a chunk to each
    reader, whose token FIFO holds a frame's chunks, so the writer never waits for a reader within a frame.
    A chunk is at most half the shallowest spilled FIFO's depth: a reader waits for the last beat of a
    chunk, which the fork writes only as far ahead as the other branches absorb (about the lag the depth
    holds), so a longer chunk could wait on the join that waits on it."""
    value = spilled[0][0].value
    fmt = value.type.format
    assert isinstance(fmt, Fixed)  # the emitter refuses float values first
    count, width = beats(value, lanes)
    groups = fold(value, lanes)[1]
    burst = SPILL_BURST * OFFCHIP_WORD_BITS // (width * stored_bits(fmt.width))
    chunk = max(1, min(burst, *(fifo.depth(groups) // 2 for fifo, _ in spilled)))
    region = Block(names.claim(f"{into}_spill"), c_int_type(fmt), offset, 2 * value.type.size)
    reads = tuple(names.claim(f"{region.name}_r") for _ in spilled)
    port = SpillPort(tuple(f.key for f, _ in spilled), names.claim(f"{region.name}_w"), reads, region)
    landed = names.claim(f"{into}_landed")
    lines.append(f"  hls::stream<bool> {landed}[{len(spilled)}];")
    lines.append(f"  FPGAC_PRAGMA(HLS STREAM variable={landed} depth={-(-count // chunk)})")
    shape = f"{count}, {chunk}"
    lines.append(f"  fpgac::spill_write<{first}, {shape}, {len(spilled)}>({into}, {port.write}, {landed});")
    for k, ((_, back), read) in enumerate(zip(spilled, reads, strict=True)):
        lines.append(f"  fpgac::spill_read<{first + 1 + k}, {shape}>({read}, {landed}[{k}], {back});")
    return port


def _fork_function(name: str, stream: str, beat_count: int, n: int) -> str:
    params = ", ".join([f"{stream}& x", *(f"{stream}& y{k}" for k in range(n))])
    writes = "\n".join(f"    y{k}.write(v);" for k in range(n))
    return (
        f"static void {name}({params}) {{\n"
        f"  FPGAC_LOOP(fork_beats)\n  for (int p = 0; p < {beat_count}; p++) {{\n"
        f"    FPGAC_PRAGMA(HLS PIPELINE II=1)\n    const auto v = x.read();\n{writes}\n  }}\n}}"
    )
