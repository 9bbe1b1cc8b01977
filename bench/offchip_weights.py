"""Build-folder size with weights on chip (C headers) and off chip (``hls/weights.bin``), on a light model.

``flock /tmp/bigmodel.lock python bench/offchip_weights.py [resnet50]`` seeds the weights of the onnx
package's weightless ``light_<model>.onnx`` (``randomize_weights`` of ``tests/numerics/test_onnx_zoo.py``),
builds it in io stream with ``--weights onchip`` and ``--weights offchip`` (calibration: a random batch of
2) and prints a Markdown table: build time, the ``hls/`` folder, its weight headers and ``weights.bin``,
and the whole build folder (which also holds the IR's ``weights.npz``). ResNet-50: a few minutes, ~4 GB.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.*: the zoo's weight seeding

from fpgac.backends.vitis.weight_image import WEIGHTS_FILE
from fpgac.build import BuildOptions, build, load_model
from fpgac.ir.boundary import array_shape
from tests.numerics.test_onnx_zoo import DATA, LIGHT, randomize_weights


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="fpgac_offchip_") as tmp:
        root = Path(tmp)
        model = randomize_weights(onnx.load(DATA / "light" / LIGHT[name]))
        onnx.save(model, root / "model.onnx")
        graph = load_model(root / "model.onnx")
        shape = array_shape(graph, graph.inputs[0])  # per sample, in the callers' layout (NHWC)
        calib = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
        np.save(root / "calib.npy", calib)
        print(f"| {name} | build s | hls/ MB | weights/*.h MB | {WEIGHTS_FILE} MB | folder MB |")
        print("|---|---:|---:|---:|---:|---:|")
        for weights in ("onchip", "offchip"):
            out = root / weights
            start = time.perf_counter()
            options = BuildOptions(calib=root / "calib.npy", io="stream", weights=weights)
            build(root / "model.onnx", out, options)
            seconds = time.perf_counter() - start
            hls = out / "hls"
            sizes = [_bytes(p) / 1e6 for p in (hls, hls / "firmware" / "weights", hls / WEIGHTS_FILE, out)]
            print(f"| --weights {weights} | {seconds:.0f} | " + " | ".join(f"{s:.1f}" for s in sizes) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "resnet50")
