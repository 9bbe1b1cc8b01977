"""Compressed builds (pruned, shared, Huffman-coded) through g++ C-simulation: zero mismatching bits.

The MLP and CNN of ``tests/models.py`` are built with ``fpgac.build.build`` and each compression stage of
Deep Compression's pipeline, then ``fpgac verify`` compares the simulator and the generated C++ layer by
layer on inputs over the whole input range. The variants cover: zero-skipping of a plain pruned layer,
packed indices of a dense shared layer, sparse + shared + Huffman with fillers (3-bit relative indices on an
80% sparse layer force gaps longer than the field), and conv layers with per-layer sparsity and a
non-power-of-two codebook, each in both io styles (``parallel``: a multiplier per kept weight; ``stream``:
the stored entries with their relative indices, walked by the compute loop). ``mlp_degenerate`` holds the
degenerate streams: a layer pruned entirely (no taps, empty index and gap streams), one with a single
centroid (a constant index stream: a zero-bit code) and one pruned by nothing (a constant gap stream).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import verify
from fpgac.backends.vitis import csim
from fpgac.build import BuildOptions, build, load_model
from fpgac.ir.encoding import layout
from fpgac.ir.serialize import load_graph
from fpgac.passes import Huffman, Prune, Quantize, Share
from fpgac.passes.compression import compressible
from fpgac.passes.pipeline import run_pipeline
from tests.csim_support import skip_without_csim
from tests.models import random_input
from tests.vitis_zoo import write_folder

skip_without_csim()

pytestmark = pytest.mark.slow

IO_STYLES = ("parallel", "stream")
VARIANTS = {
    "mlp_prune": ("mlp", "prune(sparsity=0.6)"),
    "mlp_share": ("mlp", "share(bits=3)"),
    "mlp_all": ("mlp", "prune(sparsity=0.8, gap_bits=3), share(bits=4), huffman"),
    "cnn_all": ("cnn", "prune(threshold=0.8, reconstruct=true), share(bits=4, refit=true), huffman"),
    "cnn_prune_share": ("cnn", "prune(sparsity=0.5, scope=layer), share(clusters=5)"),
}


@pytest.fixture(scope="module")
def folders(
    tmp_path_factory: pytest.TempPathFactory, onnx_export: Callable[[str, str], Path]
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compressed")
    result: dict[str, Path] = {}
    for key, (family, passes) in VARIANTS.items():
        calib = root / f"{family}_calib.npy"
        np.save(calib, random_input(family, 64, seed=3))
        for io in IO_STYLES:
            out = root / f"{key}_{io}"
            build(onnx_export(family, "torchscript"), out, BuildOptions(calib=calib, passes=passes, io=io))
            result[f"{key}_{io}"] = out
    graph = load_model(onnx_export("mlp", "torchscript"))
    first, second, *_ = [n.name for n in compressible(graph)]
    data = (random_input("mlp", 64, seed=3),)
    passes = [
        Prune(layer_sparsity={first: 1.0, second: 0.5}),
        Share(clusters=2),
        Huffman(),
        Quantize(calib=data),
    ]
    degenerate = run_pipeline(graph, passes)
    for io in IO_STYLES:
        result[f"mlp_degenerate_{io}"] = write_folder(degenerate, root / f"mlp_degenerate_{io}", io)
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(csim.binary, result.values()))
    return result


@pytest.mark.parametrize("io", IO_STYLES)
@pytest.mark.parametrize("variant", [*VARIANTS, "mlp_degenerate"])
def test_compressed_build_bit_exact(variant: str, io: str, folders: dict[str, Path]) -> None:
    result = verify(str(folders[f"{variant}_{io}"]), samples=24)
    assert result.mismatches == 0, f"first mismatch: {result.first_mismatch}"


@pytest.mark.parametrize("variant", [*VARIANTS, "mlp_degenerate"])
def test_one_multiplier_per_kept_weight(variant: str, folders: dict[str, Path]) -> None:
    """Every compressed layer's tap count (its multipliers) is its count of kept weights, no more."""
    folder = folders[f"{variant}_parallel"]
    graph = load_graph(folder)
    layers = (folder / "hls" / "firmware" / "layers.h").read_text()
    compressed = [n for n in graph.nodes if n.op in ("dense", "conv")]
    assert compressed and all(n.params["weight"].encoding is not None for n in compressed)
    taps = [int(t) for t in re.findall(r"static const int TAPS = (\d+);", layers)]
    expected = []
    for node in compressed:
        weight = node.params["weight"]
        lay = layout(weight)
        expected.append(weight.data.size if lay is None else int((~lay.fillers).sum()))
        if lay is not None and variant != "mlp_degenerate":  # its last layer is pruned by nothing
            assert expected[-1] < weight.data.size
    assert taps == expected


def test_degenerate_streams(folders: dict[str, Path]) -> None:
    graph = load_graph(folders["mlp_degenerate_parallel"])
    first, second, third = [n.params["weight"] for n in compressible(graph)]
    assert not np.any(first.data) and layout(first).entries == 0
    assert first.encoding.huffman["index"].used == []
    assert second.encoding.huffman["index"].constant == 1  # one centroid besides the zero
    assert third.encoding.huffman["gap"].constant == 0  # nothing pruned: every gap is 0
    layers = (folders["mlp_degenerate_parallel"] / "hls" / "firmware" / "layers.h").read_text()
    assert "huffman_decode<0, 0>" in layers


def test_report_counts_compressed_storage(folders: dict[str, Path]) -> None:
    report = json.loads((folders["mlp_all_parallel"] / "report.json").read_text())
    assert [entry["pass"] for entry in report["compression"]] == ["prune", "share", "huffman"]
    layer = next(layer for layer in report["layers"] if "weight_storage" in layer)
    parts = layer["weight_storage"]["weight"]
    assert {"codebook", "indices", "gaps", "index_table", "gap_table", "fillers"} <= set(parts)
    assert parts["fillers"] > 0
    rom = layer["index_rom"]["weight"]
    assert rom["huffman_bits"] == parts["indices"] and rom["plain_bits"] > rom["huffman_bits"]
    assert report["weight_bits"] == sum(layer["weight_bits"] for layer in report["layers"])
    assert report["float32_bits"] / report["weight_bits"] > 4
    header = next((folders["mlp_all_parallel"] / "hls" / "firmware" / "weights").glob("*.h")).read_text()
    assert "Huffman bitstream" in header


@pytest.mark.parametrize("variant", [*VARIANTS, "mlp_degenerate"])
def test_stream_style_stores_the_entries(variant: str, folders: dict[str, Path]) -> None:
    """io stream keeps Deep Compression's stored form: one entry per kept weight or filler, walked with
    its relative index (sparse layers), never a position list."""
    folder = folders[f"{variant}_stream"]
    graph = load_graph(folder)
    layers = (folder / "hls" / "firmware" / "layers.h").read_text()
    assert "_tap_" not in layers
    entries = [int(t) for t in re.findall(r"static const int ENTRIES = (\d+);", layers)]
    expected = []
    for node in graph.nodes:
        if node.op in ("dense", "conv"):
            lay = layout(node.params["weight"])
            expected.append(node.params["weight"].data.size if lay is None else lay.entries)
            if lay is not None:
                assert f"{node.name}_gap_mem" in layers or "_gap_mem" in layers
    assert entries == expected
