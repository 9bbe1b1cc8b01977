"""The off-chip weight image (``hls/weights.bin``): layout, packing, and the project around it.

The image's blocks are read back with numpy at the offsets ``fpgac.json`` records and must give, word for
word, the mantissas of the IR's fixed-point weights (and so, through ``fixed.to_float``, the weights
themselves); blocks are aligned, in graph order, and padded with zeros. The project must name every
off-chip layer's port and leave its weight out of the headers; what the backend cannot do off chip (io
parallel, compressed weights, a layer without a weight) is refused with one clear line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.vitis.ccode import ExternalArray, VitisError
from fpgac.backends.vitis.emitter import vitis_plan
from fpgac.backends.vitis.weight_image import ALIGN, DTYPES, WEIGHTS_FILE, layout, pack
from fpgac.boards import get_board
from fpgac.build import BuildOptions, ConfigError, compile_model
from fpgac.ir import Graph, Param, TensorType, fixed
from fpgac.ir.types import Fixed
from fpgac.passes import Prune, Quantize
from tests.unit.test_cli import assert_one_line_error, fpgac

BOARD = get_board("zcu104")


def _graph(prune: bool = False) -> Graph:
    """image 2x7x7 -> conv 3x3 (5 ch, 12-bit weights) -> relu -> flatten -> dense 3 (6-bit weights)."""
    rng = np.random.default_rng(4)
    graph = Graph("image_test")
    x = graph.add_input("image", TensorType((2, 7, 7)))
    conv = graph.add(
        "conv",
        [x],
        name="conv",
        attrs={"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "groups": 1},
        params={"weight": Param(rng.standard_normal((5, 2, 3, 3)).astype(np.float32) * 0.3)},
    )
    act = graph.add("relu", [conv.output], name="relu")
    flat = graph.add("reshape", [act.output], name="flat", attrs={"shape": [125]})
    fc = graph.add(
        "dense",
        [flat.output],
        name="fc",
        params={
            "weight": Param(rng.standard_normal((3, 125)).astype(np.float32) * 0.1),
            "bias": Param(rng.standard_normal(3).astype(np.float32)),
        },
    )
    graph.set_outputs([fc.output])
    calib = (rng.uniform(-1, 1, (16, 2, 7, 7)).astype(np.float32),)
    if prune:
        graph = Prune(sparsity=0.5).run(graph)
    return Quantize(precision=12, layer_precision={"fc": 6}, calib=calib).run(graph)


def test_image_holds_the_weights_mantissas_at_the_recorded_offsets() -> None:
    graph = _graph()
    plan = vitis_plan(graph, BOARD, "stream", offchip=frozenset({"conv", "fc"}))
    image = plan.files[WEIGHTS_FILE]
    info = json.loads(plan.files["fpgac.json"])["weights"]
    assert (info["file"], info["bytes"], info["align"]) == (WEIGHTS_FILE, len(image), ALIGN)
    blocks = info["blocks"]
    assert [(b["node"], b["port"], b["ctype"]) for b in blocks] == [
        ("conv", "conv_weight", "int16_t"),
        ("fc", "fc_weight", "int8_t"),
    ]
    end = 0
    for block in blocks:
        node = next(n for n in graph.nodes if n.name == block["node"])
        param = node.params["weight"]
        assert isinstance(param.format, Fixed)
        dtype = DTYPES[block["ctype"]]
        assert block["offset"] % ALIGN == 0 and block["offset"] >= end  # aligned, in order, no overlap
        assert image[end : block["offset"]] == bytes(block["offset"] - end)  # zero padding between blocks
        assert block["count"] == param.data.size
        words = np.frombuffer(image, dtype, block["count"], block["offset"])
        # Row-major ([OUT][...]): the order the off-chip kernels read; the raw words are the mantissas.
        expected = np.asarray(fixed.quantize(np.asarray(param.data, np.float64).reshape(-1), param.format))
        np.testing.assert_array_equal(words.astype(np.int64), expected)
        np.testing.assert_array_equal(
            fixed.to_float(words.astype(np.int64), param.format), np.asarray(param.data).reshape(-1)
        )
        end = block["offset"] + block["count"] * dtype.itemsize
    assert len(image) == -(-end // ALIGN) * ALIGN and image[end:] == bytes(len(image) - end)


def test_offchip_project_reads_weights_through_ports() -> None:
    graph = _graph()
    plan = vitis_plan(graph, BOARD, "stream", offchip=frozenset({"fc"}))
    text = {path: data.decode() for path, data in plan.files.items() if path != WEIGHTS_FILE}
    top, tcl, tb = text["firmware/fpgac_top.cpp"], text["build.tcl"], text["tb/testbench.cpp"]
    assert "const int8_t* fc_weight" in text["firmware/fpgac_top.h"]
    assert "mode=m_axi port=fc_weight offset=slave bundle=gmem_w depth=375" in top
    assert "mode=s_axilite port=fc_weight bundle=control" in top
    assert "mode=s_axilite port=return bundle=control" in top
    assert "conv_weight" not in top  # conv stays on chip
    assert "fc_weight[" not in text["firmware/weights/fc.h"] and "fc_bias[" in text["firmware/weights/fc.h"]
    assert "conv_weight[" in text["firmware/weights/conv.h"]
    assert "fpgac::dense_offchip<fc_config>" in text["firmware/layers.h"]
    assert "firmware/fpgac_offchip.h" in plan.files
    assert f"add_files -tb {WEIGHTS_FILE}" in tcl
    assert (
        f'std::fopen("{WEIGHTS_FILE}", "rb")' in tb
        and "reinterpret_cast<const int8_t*>(fpgac_base + 0)" in tb
    )


def test_onchip_project_has_no_image() -> None:
    plan = vitis_plan(_graph(), BOARD, "stream")
    assert WEIGHTS_FILE not in plan.files and "firmware/fpgac_offchip.h" not in plan.files
    assert "weights" not in json.loads(plan.files["fpgac.json"])
    assert "m_axi" not in plan.files["firmware/fpgac_top.cpp"].decode()


@pytest.mark.parametrize(
    ("io", "offchip", "prune", "message"),
    [
        ("parallel", {"fc"}, False, r"^off-chip weights need --io stream \(io parallel keeps"),
        ("stream", {"relu"}, False, r"off-chip weights asked for \['relu'\]: not layers with a weight"),
        (
            "stream",
            {"fc"},
            True,
            r"node 'fc' \(dense\): compressed \(pruned or shared\) weights stay on chip",
        ),
    ],
)
def test_refused_off_chip(io: str, offchip: set[str], prune: bool, message: str) -> None:
    with pytest.raises(VitisError, match=message) as info:
        vitis_plan(_graph(prune), BOARD, io, offchip=frozenset(offchip))
    assert "\n" not in str(info.value)


def test_weights_option_is_checked_before_loading() -> None:
    with pytest.raises(ConfigError, match="unknown weights 'ddr'"):
        compile_model(Path("never_read.onnx"), BuildOptions(weights="ddr"))
    with pytest.raises(ConfigError, match="--weights offchip needs --backend vitis"):
        compile_model(Path("never_read.onnx"), BuildOptions(weights="offchip", backend="hls4ml"))


def test_cli_weights_option(tmp_path: Path) -> None:
    """``fpgac build --weights offchip``: the image in an io stream build; io parallel is one clear line."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    base = ["build", examples / "digits_cnn.onnx", "--calib", examples / "digits_batch.npy"]
    ok = fpgac(*base, "--out", tmp_path / "s", "--io", "stream", "--weights", "offchip")
    assert ok.returncode == 0, ok.stderr
    blocks = json.loads((tmp_path / "s" / "hls" / "fpgac.json").read_text())["weights"]["blocks"]
    assert len(blocks) == 3  # two convs and the dense layer
    last = blocks[-1]
    end = last["offset"] + last["count"] * DTYPES[last["ctype"]].itemsize
    assert (tmp_path / "s" / "hls" / WEIGHTS_FILE).stat().st_size == -(-end // ALIGN) * ALIGN
    bad = fpgac(*base, "--out", tmp_path / "p", "--io", "parallel", "--weights", "offchip")
    assert_one_line_error(bad, "off-chip weights need io stream")
    assert not (tmp_path / "p").exists()


def test_pack_aligns_every_block_and_keeps_wide_words() -> None:
    """Blocks start on ALIGN bytes whatever their size; 64-bit words beyond int64 (object arrays) pack too."""
    arrays = [
        ExternalArray("int8_t", "a", np.array([-1, 2, -3]), ""),
        ExternalArray("uint64_t", "b", np.array([2**64 - 1, 5], dtype=object), ""),
        ExternalArray("int32_t", "c", np.arange(17) - 8, ""),
    ]
    blocks = layout(arrays)
    assert [(b.offset, b.size, b.end) for b in blocks] == [(0, 3, 64), (64, 16, 128), (128, 68, 256)]
    image = pack(arrays)
    assert len(image) == blocks[-1].end == 256
    assert image[:3] == bytes([0xFF, 2, 0xFD]) and image[3:64] == bytes(61)
    assert np.frombuffer(image, "<u8", 2, 64).tolist() == [2**64 - 1, 5]
    assert np.frombuffer(image, "<i4", 17, 128).tolist() == list(range(-8, 9))
