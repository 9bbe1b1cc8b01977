"""The hls4ml backend against hls4ml's own C-simulation: zero mismatching bits.

Each family of ``tests/models.py`` that the Vitis backend is verified on is built with ``--backend hls4ml``
from both exporters; the project hls4ml writes is compiled by hls4ml's ``build_lib.sh`` and run through its
bridge (what ``ModelGraph.predict``/``trace`` do), and ``fpgac verify`` compares every traced layer with
``fpgac sim`` bit for bit, on inputs over each input format's whole range.

The layers mapped onto hls4ml's average pooling (padding counted or not, ceil mode), standalone
BatchNormalization (per channel and per feature) and subtract/multiply merges are checked on their own
models, exported once. The libraries are compiled once per session (20-50 s each on two busy cores).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from fpgac.backends.equivalence import verify
from fpgac.backends.hls4ml import csim as hls4ml_csim
from fpgac.backends.hls4ml.emitter import memory_perm
from fpgac.build import BuildOptions, build
from fpgac.ir.serialize import load_graph
from tests.csim_support import skip_without_csim
from tests.models import EXPORTERS, export_model, random_input

skip_without_csim()
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow

FAMILIES = ("mlp", "cnn", "depthwise_separable", "resnet_gap", "two_branch_concat")
# avg_pool (ceil mode, padding counted or not), affine as BatchNormalization on (C, H, W) and 1-d values,
# zero padding (before a max pool), ELU/SELU tables, PReLU per channel and shared, hard sigmoid
MAPPED = ("avgpool_ceil", "bn_input_cnn", "bn_input_mlp", "zeropad", "activations")


class MergeOps(torch.nn.Module):
    """Two conv branches subtracted, multiplied and added (hls4ml's Merge subtract, multiply and add),
    one through a per-channel PReLU, then a hard sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.b = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.prelu = torch.nn.PReLU(4, init=0.1)
        self.fc = torch.nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.prelu(self.a(x)), self.b(x)
        return self.fc(torch.flatten(torch.nn.functional.hardsigmoid((a - b) * b + a), 1))


class Transposed(torch.nn.Module):
    """Permutes between convs (channels <-> height, then more), fused into one transpose: hls4ml's
    Transpose over its channels-last memory axes."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 4, 3)
        self.b = torch.nn.Conv2d(7, 6, 3)
        self.fc = torch.nn.Linear(6 * 2 * 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.a(x)).permute(0, 2, 1, 3).permute(0, 3, 2, 1)  # (4, 5, 7) -> (7, 4, 5)
        return self.fc(torch.flatten(self.b(y), 1))


class DenseBlock(torch.nn.Module):
    """DenseNet's pattern: concat, standalone BatchNorm, ReLU, 1x1 conv, 2x2 average pool, then a global
    average pool kept (C, 1, 1) and read by a 1x1 conv classifier (hls4ml's pooling gives [C]: reshaped)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.c = torch.nn.Conv2d(3, 4, 1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.b = torch.nn.Conv2d(8, 4, 1)
        self.fc = torch.nn.Conv2d(4, 5, 1)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(torch.cat([self.c(x), self.a(x)], 1)))
        y = torch.nn.functional.avg_pool2d(torch.relu(self.b(y)), 2)
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(y, 1))


class OverlappingPools(torch.nn.Module):
    """Max pools whose windows overlap (3x3/2 as in SqueezeNet and ResNet, and 3x2 by 2x1) on odd and even
    sizes: hls4ml's io_stream pooling only tiles, so fpgac builds them from crops, tiling pools and
    maximum merges."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.pool = torch.nn.MaxPool2d(3, stride=2)
        self.pool2 = torch.nn.MaxPool2d((3, 2), stride=(2, 1))
        self.fc = torch.nn.Linear(4 * 2 * 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool2(self.pool(torch.relu(self.conv(x))))
        return self.fc(torch.flatten(y, 1))


@pytest.fixture(scope="session")
def hls4ml_folders(
    tmp_path_factory: pytest.TempPathFactory, onnx_export: Callable[[str, str], Path]
) -> dict[str, Path]:
    """Every hls4ml build folder of this module, built and compiled once (two compiles at a time)."""
    root = tmp_path_factory.mktemp("hls4ml")
    result: dict[str, Path] = {}
    for name in FAMILIES:
        calib = root / f"{name}_calib.npy"
        np.save(calib, random_input(name, 64, seed=3))
        for exporter in EXPORTERS:
            out = root / f"{name}_{exporter}"
            build(
                onnx_export(name, exporter), out, BuildOptions(calib=calib, backend="hls4ml", io="parallel")
            )
            result[f"{name}_{exporter}"] = out
    stream = root / "two_branch_concat_stream"  # io_stream: conv, tables, concat, pooling, softmax
    calib = root / "two_branch_concat_calib.npy"
    build(
        onnx_export("two_branch_concat", "torchscript"),
        stream,
        BuildOptions(calib=calib, backend="hls4ml", io="stream"),
    )
    result["two_branch_concat_stream"] = stream
    torch.manual_seed(0)
    pools = export_model(
        OverlappingPools().eval(), torch.randn(2, 2, 11, 10), root / "pools.onnx", "torchscript"
    )
    np.save(
        root / "pools_calib.npy", np.random.default_rng(3).standard_normal((64, 2, 11, 10)).astype(np.float32)
    )
    result["overlapping_pools_stream"] = root / "overlapping_pools_stream"
    build(
        pools,
        result["overlapping_pools_stream"],
        BuildOptions(calib=root / "pools_calib.npy", backend="hls4ml", io="stream"),
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(hls4ml_csim.library, sorted(result.values(), key=_compile_cost, reverse=True)))
    return result


@pytest.fixture(scope="session")
def mapped_folders(
    tmp_path_factory: pytest.TempPathFactory, onnx_export: Callable[[str, str], Path]
) -> dict[str, Path]:
    """The builds of the models for the layers mapped beyond the families (torchscript export only)."""
    root = tmp_path_factory.mktemp("hls4ml_mapped")
    result: dict[str, Path] = {}
    options = {"backend": "hls4ml", "io": "parallel"}
    for name in MAPPED:
        calib = root / f"{name}_calib.npy"
        np.save(calib, random_input(name, 64, seed=3))
        result[name] = root / name
        build(onnx_export(name, "torchscript"), root / name, BuildOptions(calib=calib, **options))
    torch.manual_seed(0)
    merge = export_model(MergeOps().eval(), torch.randn(2, 3, 6, 6), root / "merge_ops.onnx", "torchscript")
    batch = np.random.default_rng(3).standard_normal((64, 3, 6, 6)).astype(np.float32)
    np.save(root / "merge_calib.npy", batch)
    result["merge_ops"] = root / "merge_ops"
    build(merge, result["merge_ops"], BuildOptions(calib=root / "merge_calib.npy", **options))
    transposed = export_model(Transposed().eval(), torch.randn(2, 3, 7, 9), root / "t.onnx", "torchscript")
    batch = np.random.default_rng(3).standard_normal((64, 3, 7, 9)).astype(np.float32)
    np.save(root / "transposed_calib.npy", batch)
    result["transposed"] = root / "transposed"
    build(transposed, result["transposed"], BuildOptions(calib=root / "transposed_calib.npy", **options))
    block = export_model(DenseBlock().eval(), torch.randn(2, 3, 8, 8), root / "block.onnx", "torchscript")
    np.save(
        root / "block_calib.npy", np.random.default_rng(3).standard_normal((64, 3, 8, 8)).astype(np.float32)
    )
    result["dense_block"] = root / "dense_block"
    build(block, result["dense_block"], BuildOptions(calib=root / "block_calib.npy", **options))
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(hls4ml_csim.library, sorted(result.values(), key=_compile_cost, reverse=True)))
    return result


def _compile_cost(folder: Path) -> int:
    return sum(p.stat().st_size for p in (folder / "hls4ml" / "firmware" / "weights").glob("*.h"))


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", FAMILIES)
def test_model_families_bit_exact_with_hls4ml(
    name: str, exporter: str, hls4ml_folders: dict[str, Path]
) -> None:
    result = verify(str(hls4ml_folders[f"{name}_{exporter}"]), samples=24)
    compared = [d for d in result.layers if d.elements]
    assert result.mismatches == 0, f"first mismatch: {result.first_mismatch}"
    # hls4ml traced every layer that computes (not the input, relayouts and flattens: moves it does not trace)
    nodes = load_graph(hls4ml_folders[f"{name}_{exporter}"]).nodes
    layers = [n for n in nodes if n.op not in ("transpose", "reshape")]
    assert len(compared) >= len(layers), [d.layer for d in result.layers if not d.elements]


@pytest.mark.parametrize("name", [*MAPPED, "merge_ops", "transposed", "dense_block"])
def test_mapped_layers_bit_exact_with_hls4ml(name: str, mapped_folders: dict[str, Path]) -> None:
    folder = mapped_folders[name]
    result = verify(str(folder), samples=24)
    assert result.mismatches == 0, f"first mismatch: {result.first_mismatch}"
    nodes = load_graph(folder).nodes
    new_ops = {"hls4ml_avg_pool", "affine", "sub", "mul", "prelu", "hard_sigmoid", "pad", "hls4ml_elu"}
    # transposes that move data (not the relayouts before a flatten, which are free: no hls4ml layer)
    moved = [n for n in nodes if n.op == "transpose" and memory_perm(n) != list(range(n.output.type.rank))]
    layers = [n.name for n in nodes if n.op in new_ops] + [n.name for n in moved]
    assert layers, [n.op for n in nodes]  # the model still has the layers it is here for (not folded away)
    compared = {d.layer for d in result.layers if d.elements}
    assert set(layers) <= compared, (layers, compared)


def test_per_layer_reuse_bit_exact_with_hls4ml(
    onnx_export: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """A layer's reuse factor from the config becomes hls4ml's Resource strategy, raised to a factor it
    accepts (recorded in fpgac.json); the other layers are fitted to the board with factors hls4ml
    accepts as they are (rounded down: nothing to raise; a tenth of pynq-z2 makes the second conv fold). Its
    Resource kernels compute the same bits."""
    import json

    from fpgac.build import compile_model

    model = onnx_export("cnn", "torchscript")
    calib = tmp_path / "calib.npy"
    np.save(calib, random_input("cnn", 64, seed=3))
    graph = compile_model(model, BuildOptions(calib=calib, backend="none")).graph
    *convs, fc = (n.name for n in graph.nodes if n.op in ("conv", "dense"))
    out = tmp_path / "out"
    options = BuildOptions(
        calib=calib, backend="hls4ml", io="parallel", board="pynq-z2", util=0.1, layer_reuse={fc: 7}
    )
    build(model, out, options)
    raised = json.loads((out / "hls4ml" / "fpgac.json").read_text())["reuse"]
    assert raised == {fc: {"asked": 7, "used": 8}}  # 7 does not divide 10 x 192
    report = json.loads((out / "report.json").read_text())
    fitted = {layer["name"]: layer["reuse"] for layer in report["layers"]}
    assert fitted[convs[-1]] > 1  # the first conv sets the II at reuse 1 (one product a pixel)
    result = verify(str(out), samples=24)
    assert result.mismatches == 0, f"first mismatch: {result.first_mismatch}"


@pytest.mark.parametrize("name", ["two_branch_concat_stream", "overlapping_pools_stream"])
def test_io_stream_bit_exact_with_hls4ml(name: str, hls4ml_folders: dict[str, Path]) -> None:
    folder = hls4ml_folders[name]
    assert "io_stream" in (folder / "hls4ml" / "firmware" / "parameters.h").read_text()
    result = verify(str(folder), samples=24)
    assert result.mismatches == 0, f"first mismatch: {result.first_mismatch}"


def test_csim_cli_matches_sim_and_is_cached(
    hls4ml_folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fpgac csim`` on an hls4ml build writes what ``fpgac sim`` writes; the library is compiled once."""
    folder = hls4ml_folders["two_branch_concat_torchscript"]
    x = tmp_path / "x.npy"
    np.save(x, random_input("two_branch_concat", 5, seed=9))
    for command in ("sim", "csim"):
        proc = _fpgac(command, folder, "--input", x, "--output", tmp_path / f"{command}.npy")
        assert proc.returncode == 0, proc.stderr
    assert np.array_equal(np.load(tmp_path / "sim.npy"), np.load(tmp_path / "csim.npy"))

    def no_compile(*args: object, **kwargs: object) -> None:
        raise AssertionError("recompiled a cached library")

    monkeypatch.setattr(hls4ml_csim.subprocess, "run", no_compile)
    assert hls4ml_csim.library(folder).is_file()
    assert len(list((folder / ".csim").glob("hls4ml-*.so"))) == 1


def test_verify_names_first_bad_layer(hls4ml_folders: dict[str, Path], tmp_path: Path) -> None:
    """A corrupted weight in hls4ml's project (not in the IR): exit 1, the differing layer is named."""
    good = hls4ml_folders["mlp_torchscript"]
    bad = tmp_path / "bad"
    shutil.copytree(good, bad, ignore=shutil.ignore_patterns(".csim"))
    weights = sorted((bad / "hls4ml" / "firmware" / "weights").glob("w*.txt"))  # what C-simulation loads
    second = weights[1]  # the second dense layer: the first one must still match
    text = second.read_text()
    second.write_text("1" + text[text.index(",") :])
    proc = _fpgac("verify", bad, "--samples", "8")
    assert proc.returncode == 1
    layer = load_graph(bad).nodes[2].name  # dense, relu, dense: the corrupted one
    assert f"first at layer {layer!r}" in " ".join(proc.stdout.split()), proc.stdout


def _fpgac(*args: str | Path) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "fpgac", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


# -- the residual net with GlobalAveragePool, against hls4ml's own ONNX frontend ---------------------------


def _onnxruntime(model: Path, x: np.ndarray) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_residual_gap_right_through_fpgac_where_hls4ml_onnx_rejects_it(
    hls4ml_folders: dict[str, Path], onnx_export: Callable[[str, str], Path]
) -> None:
    """Ours: hls4ml's own C-simulation of our project is within 16-bit quantization error of onnxruntime.
    hls4ml's ONNX frontend refuses the same raw torch export (it needs qonnx's channels-last conversion
    first; what it computes after that is the next test)."""
    import hls4ml
    import onnx

    model = onnx_export("resnet_gap", "torchscript")
    x = random_input("resnet_gap", 32, seed=9)
    ref = _onnxruntime(model, x)
    ours = hls4ml_csim.run_hls4ml_csim(hls4ml_folders["resnet_gap_torchscript"], [x]).outputs[0]
    scale = float(np.abs(ref).max())
    assert np.abs(ours - ref).max() <= 0.01 * scale, np.abs(ours - ref).max()
    with pytest.raises(RuntimeError):
        hls4ml.converters.convert_from_onnx_model(onnx.load(model), backend="Vitis", io_type="io_parallel")


def test_hls4ml_onnx_path_is_wrong_on_residual_gap(
    hls4ml_folders: dict[str, Path], onnx_export: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """hls4ml's documented ONNX path (qonnx cleanup and channels-last conversion, then hls4ml) compiles
    the residual net, runs, and is wrong: it averages the CHW tensor as HWC after its relayout. Types are
    generous (ap_fixed<24,10>) so quantization cannot be the cause. Needs qonnx; compiles for ~2 minutes."""
    pytest.importorskip("qonnx")
    import hls4ml
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    model = onnx_export("resnet_gap", "torchscript")
    wrapped = cleanup_model(ModelWrapper(onnx.load(model)))
    wrapped = cleanup_model(wrapped.transform(ConvertToChannelsLastAndClean()).transform(GemmToMatMul()))
    config = hls4ml.utils.config_from_onnx_model(
        wrapped, backend="Vitis", default_precision="ap_fixed<24,10>"
    )
    theirs = hls4ml.converters.convert_from_onnx_model(
        wrapped, output_dir=str(tmp_path / "prj"), hls_config=config, backend="Vitis", io_type="io_parallel"
    )
    theirs.compile()
    x = random_input("resnet_gap", 32, seed=9)
    ref = _onnxruntime(model, x)
    scale = float(np.abs(ref).max())
    ours = hls4ml_csim.run_hls4ml_csim(hls4ml_folders["resnet_gap_torchscript"], [x]).outputs[0]
    for layout in (x, x.transpose(0, 2, 3, 1)):  # whichever input layout it expects: both are far off
        got = theirs.predict(np.ascontiguousarray(layout.reshape(len(x), -1), dtype=np.float64))
        assert np.abs(got - ref).max() > 0.2 * scale > 10 * np.abs(ours - ref).max()
