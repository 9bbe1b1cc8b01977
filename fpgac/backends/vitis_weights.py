"""How the Vitis backend stores and reads a compressed weight tensor (io parallel).

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

from fpgac.backends.vitis_ops import Array, Ctx, LayerCode, VitisError, _config, c_int_type, int_literal
from fpgac.ir import fixed
from fpgac.ir.encoding import layout, streams
from fpgac.ir.graph import Param
from fpgac.ir.huffman import pack_fixed
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


def _ints(values: np.ndarray | list[int]) -> list[str]:
    """An int array's literals; C++ has no zero-length arrays, so an empty one holds one unused 0."""
    out = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    return out or ["0"]


def _words(words: np.ndarray) -> list[str]:
    return [f"{int(w)}u" for w in words] or ["0u"]


def _raw_bits(name: str, values: np.ndarray, fmt: Fixed, comment: str) -> Array:
    """Values as a ROM of their raw bits (read through ``fpgac::from_bits``, as vitis_ops stores params)."""
    ctype = c_int_type(fmt)
    mantissas = np.asarray(fixed.quantize(values.reshape(-1), fmt)).tolist() if values.size else [0]
    return Array(ctype, name, [int_literal(int(m), ctype) for m in mantissas], comment)


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
        code.arrays.append(Array("int", idx_mem, ["0"], "no indices (never read)"))
        return w_name, idx_mem, False
    assert enc.codebook is not None
    what = f"codebook ({len(enc.codebook)} centroids): raw bits of {w_type}"
    code.arrays.append(_raw_bits(w_name, np.asarray(enc.codebook, dtype=np.float64), fmt, what))
    bits = enc.index_bits
    idx_type = f"{name}_index_t"
    code.typedefs.append((idx_type, f"ap_uint<{bits}>"))
    stream = streams(param)["index"]
    count = int(stream.size)
    huff = enc.huffman.get("index")
    if huff is None:
        words = pack_fixed(stream, bits)
        what = f"indices, {bits} bits each"
        code.arrays.append(Array("unsigned int", f"{name}_codes", _words(words), what))
        decode = f"fpgac::unpack_indices<{count}, {bits}>({name}_codes, {idx_mem});"
    else:
        words, nbits = huff.encode(stream)
        what = f"Huffman bitstream, {nbits} bits"
        code.arrays.append(Array("unsigned int", f"{name}_codes", _words(words), what))
        code.arrays.append(Array("int", f"{name}_counts", _ints(huff.counts()), "Huffman codes per length"))
        code.arrays.append(Array(idx_type, f"{name}_symbols", _ints(huff.used), "symbols in canonical order"))
        decode = (
            f"fpgac::huffman_decode<{count}, {huff.max_length}>"
            f"({name}_codes, {name}_counts, {name}_symbols, {idx_mem});"
        )
    code.body = (
        f"  static {idx_type} {idx_mem}[{max(count, 1)}];\n"
        f"  static bool {name}_ready = false;\n"
        f"  if (!{name}_ready) {{  // decode the stored indices once, at start-up\n"
        f"    {decode}\n"
        f"    {name}_ready = true;\n"
        f"  }}\n"
    )
    return w_name, idx_mem, True


def dense_compressed(ctx: Ctx, code: LayerCode, values: dict[str, int], bias: str) -> None:
    """A dense layer over its taps (see the module docstring)."""
    param = ctx.node.params["weight"]
    n_in = param.shape[1]
    positions, entries = taps(param)
    w_name, idx_mem, shared = _weight_storage(ctx, code, positions)
    name = ctx.name
    code.arrays.append(Array("int", f"{name}_tap_o", _ints(positions // n_in), "tap: output"))
    code.arrays.append(Array("int", f"{name}_tap_i", _ints(positions % n_in), "tap: input"))
    code.arrays.append(Array("int", f"{name}_tap_e", _ints(entries), "tap: stored entry"))
    extra = {"TAPS": int(positions.size), "SHARED": int(shared)}
    code.config = _config(ctx, {**values, **extra}, _types(ctx))
    code.body += (
        f"  fpgac::dense_taps<{name}_config>({ctx.ins[0]}, {ctx.out}, {w_name}, {idx_mem}, "
        f"{name}_tap_o, {name}_tap_i, {name}_tap_e, {bias});"
    )


def conv_compressed(ctx: Ctx, code: LayerCode, values: dict[str, int], bias: str) -> None:
    """A conv layer over its taps: every output channel of a pixel at once."""
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
    code.config = _config(ctx, {**values, **extra}, _types(ctx))
    taps_args = ", ".join(f"{name}_tap_{k}" for k in ("oc", "c", "kh", "kw", "e"))
    code.body += (
        f"  fpgac::conv2d_taps<{name}_config>({ctx.ins[0]}, {ctx.out}, {w_name}, {idx_mem}, "
        f"{taps_args}, {bias});"
    )


def _types(ctx: Ctx) -> dict[str, str]:
    return {f"{k}_t": f"{ctx.name}_{k}_t" for k in ("acc", "weight", "bias")}


def tap_count(param: Param) -> int:
    """Multipliers of a compressed layer per row or pixel (one per tap)."""
    return int(taps(param)[0].size)
