"""How the Vitis backend stores and reads a compressed weight tensor.

io stream (:func:`_entry_storage`): Deep Compression's stored form itself. Each stored entry (fillers
included) has its weight, or its codebook index, and in a sparse tensor its relative index; the compute
loop walks the entries in order, so only they are stored and read, and a filler adds an exact zero. Index
and gap streams sit in ROM packed or Huffman-coded and are decoded once, at start-up, into on-chip
memories (a decoder in the compute loop would make every pixel wait on a bit-serial decode).

io parallel:

A dense or conv layer whose weight carries an :class:`~fpgac.ir.encoding.Encoding` is emitted over its
*taps* (the kept weights; see ``fpgac_compressed.h``) instead of the dense kernels:

* **zero-skipping**: a pruned weight (or a filler entry) has no tap, so the generated code contains no
  multiplier for it -- explicitly, not by hoping the HLS tool folds a multiplication by a constant zero.
  The tap lists are constants: in io parallel the sparsity pattern is the datapath's wiring. The report
  still counts the pattern as Deep Compression stores it (relative indices + fillers), which is what the
  stream style keeps in memory, so the reported size does not flatter the parallel build.
* **prune only**: one ROM value per tap.
* **shared**: a codebook ROM of the quantized centroids, and the index of every stored entry packed
  ``index_bits`` wide in 32-bit words -- or, after ``huffman``, the canonical Huffman bitstream with its
  decoder tables (codes per length, symbols in canonical order). Either is decoded once, on the first call,
  into a static on-chip index memory; decoding at start-up keeps the compute loop exactly as fast as the
  uncompressed one (a stream decoder belongs with the stream style), and the ROM that persists holds only
  the coded bits.
"""

from __future__ import annotations

import numpy as np

from fpgac.backends.vitis.ccode import (
    Array,
    Ctx,
    LayerCode,
    VitisError,
    c_int_array,
    c_int_type,
    config,
    window_stream,
)
from fpgac.ir import fixed
from fpgac.ir.encoding import layout, streams
from fpgac.ir.graph import Param
from fpgac.ir.huffman import HuffmanCode, pack_fixed
from fpgac.ir.types import Fixed

COMPRESSED_SUFFIXES = (
    "_index_t",
    "_idx_mem",
    "_ready",
    "_codes",
    "_counts",
    "_symbols",
    "_tap_o",
    "_tap_i",
    "_tap_e",
    "_tap_oc",
    "_tap_c",
    "_tap_kh",
    "_tap_kw",
    "_gap_t",
    "_gap_mem",
    "_gap_codes",
    "_gap_counts",
    "_gap_symbols",
)


def taps(param: Param) -> tuple[np.ndarray, np.ndarray]:
    """(flat position, stored entry) of every tap: every weight of a dense-stored tensor, else the kept
    (non-filler) entries of the sparse layout."""
    lay = layout(param)
    if lay is None:
        every = np.arange(param.data.size)
        return every, every
    real = np.flatnonzero(~lay.fillers)
    return lay.positions[real], real


def _ints(values: np.ndarray | list[int]) -> np.ndarray:
    """An int array's values; C++ has no zero-length arrays, so an empty one holds one unused 0."""
    out = np.asarray(values, dtype=np.int64).reshape(-1)
    return out if out.size else np.zeros(1, np.int64)


def _raw_bits(name: str, values: np.ndarray, fmt: Fixed, comment: str) -> Array:
    """Values as a ROM of their raw bits (read through ``fpgac::from_bits``, as layers.py stores params)."""
    ctype = c_int_type(fmt)
    mantissas = fixed.quantize(values.reshape(-1), fmt) if values.size else [0]
    return Array(ctype, name, c_int_array(mantissas, ctype), comment)


def _coded_stream(
    code: LayerCode,
    prefix: str,
    symbol_type: str,
    stream: np.ndarray,
    bits: int,
    huff: HuffmanCode | None,
    mem: str,
) -> str:
    """Declare the ROM of one symbol stream (packed ``bits`` wide, or Huffman-coded with its decoder
    tables, names starting with ``prefix``); returns the statement that decodes it into memory ``mem``."""
    count = int(stream.size)
    if huff is None:
        words = pack_fixed(stream, bits)
        code.arrays.append(Array("unsigned int", f"{prefix}_codes", _ints(words), f"{bits} bits per symbol"))
        return f"fpgac::unpack_indices<{count}, {bits}>({prefix}_codes, {mem});"
    words, nbits = huff.encode(stream)
    code.arrays.append(
        Array("unsigned int", f"{prefix}_codes", _ints(words), f"Huffman bitstream, {nbits} bits")
    )
    code.arrays.append(Array("int", f"{prefix}_counts", _ints(huff.counts()), "Huffman codes per length"))
    code.arrays.append(
        Array(symbol_type, f"{prefix}_symbols", _ints(huff.used), "symbols in canonical order")
    )
    return (
        f"fpgac::huffman_decode<{count}, {huff.max_length}>"
        f"({prefix}_codes, {prefix}_counts, {prefix}_symbols, {mem});"
    )


def _weight_storage(ctx: Ctx, code: LayerCode, positions: np.ndarray) -> tuple[str, str, bool]:
    """Declare the weight ROMs (and the start-up decode); returns (weight array, index memory, shared)."""
    param = ctx.node.params["weight"]
    enc = param.encoding
    fmt = param.format
    assert enc is not None
    if not isinstance(fmt, Fixed):
        raise VitisError(f"{ctx.where()}: param 'weight' is not fixed point; quantize the graph first")
    name = ctx.name
    w_type, w_name, idx_mem = f"{name}_weight_t", f"{name}_weight", f"{name}_idx_mem"
    code.typedefs.append((w_type, fmt.ap_type()))
    if not enc.shared:
        values = np.asarray(param.data, dtype=np.float64).reshape(-1)[positions]
        code.arrays.append(_raw_bits(w_name, values, fmt, f"kept weights: raw bits of {w_type}"))
        code.arrays.append(Array("int", idx_mem, _ints([]), "no indices (never read)"))
        return w_name, idx_mem, False
    assert enc.codebook is not None
    what = f"codebook ({len(enc.codebook)} centroids): raw bits of {w_type}"
    code.arrays.append(_raw_bits(w_name, np.asarray(enc.codebook, dtype=np.float64), fmt, what))
    bits = enc.index_bits
    idx_type = f"{name}_index_t"
    code.typedefs.append((idx_type, f"ap_uint<{bits}>"))
    stream = streams(param)["index"]
    count = int(stream.size)
    decode = _coded_stream(code, name, idx_type, stream, bits, enc.huffman.get("index"), idx_mem)
    code.body = (
        f"  static {idx_type} {idx_mem}[{max(count, 1)}];\n"
        f"  static bool {name}_ready = false;\n"
        f"  if (!{name}_ready) {{  // decode the stored indices once, at start-up\n"
        f"    {decode}\n"
        f"    {name}_ready = true;\n"
        f"  }}\n"
    )
    return w_name, idx_mem, True


def _entry_storage(ctx: Ctx, code: LayerCode) -> tuple[list[str], dict[str, int], str, str]:
    """io stream: Deep Compression's stored form, walked in order by the compute loop.

    Per stored entry (fillers included): its weight (a ROM of raw bits) or its codebook index, and for a
    sparse tensor its relative index (zeros skipped since the previous entry). Index and gap streams are
    kept packed or Huffman-coded in ROM and decoded once, at start-up, into file-scope memories the pixel
    function can read. Returns the kernel's array arguments (weights, indices, gaps), its config values,
    the start-up decode statements and the memories' declarations.
    """
    param = ctx.node.params["weight"]
    enc, fmt, name = param.encoding, param.format, ctx.name
    assert enc is not None
    if not isinstance(fmt, Fixed):
        raise VitisError(f"{ctx.where()}: param 'weight' is not fixed point; quantize the graph first")
    w_type, w_name = f"{name}_weight_t", f"{name}_weight"
    code.typedefs.append((w_type, fmt.ap_type()))
    lay = layout(param)
    positions = lay.positions if lay is not None else np.arange(param.data.size)
    count = max(int(positions.size), 1)
    decodes, memories = [], []
    if enc.shared:
        assert enc.codebook is not None
        what = f"codebook ({len(enc.codebook)} centroids): raw bits of {w_type}"
        code.arrays.append(_raw_bits(w_name, np.asarray(enc.codebook, dtype=np.float64), fmt, what))
        idx_type, idx = f"{name}_index_t", f"{name}_idx_mem"
        code.typedefs.append((idx_type, f"ap_uint<{enc.index_bits}>"))
        memories.append(
            f"static {idx_type} {idx}[{count}];  // codebook index per entry, decoded at start-up"
        )
        stream = streams(param)["index"]
        decodes.append(
            _coded_stream(code, name, idx_type, stream, enc.index_bits, enc.huffman.get("index"), idx)
        )
    else:
        values = np.asarray(param.data, dtype=np.float64).reshape(-1)[positions]
        code.arrays.append(
            _raw_bits(w_name, values, fmt, f"weight per entry (fillers: 0): raw bits of {w_type}")
        )
        idx = f"{name}_idx_mem"
        code.arrays.append(Array("int", idx, _ints([]), "no indices (never read)"))
    gap = f"{name}_gap_mem"
    if lay is not None:
        assert enc.gap_bits is not None
        gap_type = f"{name}_gap_t"
        code.typedefs.append((gap_type, f"ap_uint<{enc.gap_bits}>"))
        memories.append(
            f"static {gap_type} {gap}[{count}];  // relative index per entry, decoded at start-up"
        )
        decodes.append(
            _coded_stream(code, f"{name}_gap", gap_type, lay.gaps, enc.gap_bits, enc.huffman.get("gap"), gap)
        )
    else:
        code.arrays.append(Array("int", gap, _ints([]), "not sparse: no relative indices (never read)"))
    declarations = "\n" + "\n".join([*memories, f"static bool {name}_ready = false;"])
    startup = "".join(f"    {d}\n" for d in decodes)
    decode = f"  if (!{name}_ready) {{  // decode the stored streams once, at start-up\n{startup}"
    decode += f"    {name}_ready = true;\n  }}\n"
    extra = {"ENTRIES": int(positions.size), "SHARED": int(enc.shared), "SPARSE": int(lay is not None)}
    return [w_name, idx, gap], extra, decode, declarations


def dense_compressed(
    ctx: Ctx, code: LayerCode, values: dict[str, int], types: dict[str, str], bias: str
) -> None:
    """A dense layer over its taps (see the module docstring); in io stream over its stored entries."""
    if ctx.stream:
        arrays, extra, decode, declarations = _entry_storage(ctx, code)
        code.config = config(ctx, {**values, **extra}, types) + declarations
        call = (
            f"fpgac::dense_entries<{ctx.name}_config>({ctx.ins[0]}, {ctx.out}, {', '.join(arrays)}, {bias});"
        )
        code.body = f"{decode}  {call}"
        return
    param = ctx.node.params["weight"]
    n_in = param.shape[1]
    positions, entries = taps(param)
    w_name, idx_mem, shared = _weight_storage(ctx, code, positions)
    name = ctx.name
    code.arrays.append(Array("int", f"{name}_tap_o", _ints(positions // n_in), "tap: output"))
    code.arrays.append(Array("int", f"{name}_tap_i", _ints(positions % n_in), "tap: input"))
    code.arrays.append(Array("int", f"{name}_tap_e", _ints(entries), "tap: stored entry"))
    extra = {"TAPS": int(positions.size), "SHARED": int(shared)}
    code.config = config(ctx, {**values, **extra}, types)
    code.body += (
        f"  fpgac::dense_taps<{name}_config>({ctx.ins[0]}, {ctx.out}, {w_name}, {idx_mem}, "
        f"{name}_tap_o, {name}_tap_i, {name}_tap_e, {bias});"
    )


def conv_compressed(
    ctx: Ctx, code: LayerCode, values: dict[str, int], types: dict[str, str], bias: str
) -> None:
    """A conv layer over its taps: every output channel of a pixel at once; in io stream, each pixel
    walks the layer's stored entries (see :func:`_entry_storage`)."""
    if ctx.stream:
        arrays, extra, decode, declarations = _entry_storage(ctx, code)
        code.config = config(ctx, {**values, **extra}, types) + declarations
        code.body = decode
        pixel = f"fpgac::conv_entries_pixel<{ctx.name}_config>(win, {', '.join(arrays)}, {bias}, y);"
        window_stream(ctx, code, pixel)
        return
    param = ctx.node.params["weight"]
    shape = param.shape
    positions, entries = taps(param)
    w_name, idx_mem, shared = _weight_storage(ctx, code, positions)
    oc, ci, *kernel = np.unravel_index(positions, shape) if positions.size else ([], [], [], [])
    oc, ci = np.asarray(oc, dtype=np.int64), np.asarray(ci, dtype=np.int64)
    if len(shape) == 3:
        kh, kw = np.zeros_like(oc), np.asarray(kernel[0], dtype=np.int64)
    else:
        kh, kw = np.asarray(kernel[0], dtype=np.int64), np.asarray(kernel[1], dtype=np.int64)
    per_group = shape[0] // int(ctx.node.attrs["groups"])
    channel = (oc // per_group) * shape[1] + ci
    name = ctx.name
    for key, arr, what in (
        ("oc", oc, "output channel"),
        ("c", channel, "input channel"),
        ("kh", kh, "kernel row"),
        ("kw", kw, "kernel column"),
        ("e", entries, "stored entry"),
    ):
        code.arrays.append(Array("int", f"{name}_tap_{key}", _ints(arr), f"tap: {what}"))
    extra = {"TAPS": int(positions.size), "SHARED": int(shared)}
    code.config = config(ctx, {**values, **extra}, types)
    taps_args = ", ".join(f"{name}_tap_{k}" for k in ("oc", "c", "kh", "kw", "e"))
    code.body += (
        f"  fpgac::conv2d_taps<{name}_config>({ctx.ins[0]}, {ctx.out}, {w_name}, {idx_mem}, "
        f"{taps_args}, {bias});"
    )
