"""Fine-tuned designs against g++ (issue #18): each case of ``bench/finetune.py``, on the small test models,
builds and passes ``fpgac verify`` with zero mismatching bits.

The cases train what the pass trains there: split factors (``lowrank``: SVD, and Tucker-2 with a rank
floor, on mixed samples as the bench's case (a) does), masked weights then codebooks (Deep Compression's
prune, fine-tune, share, fine-tune), and latent weights at 4-bit formats (QAT, clamped into their
formats; also with the first and last layers at 8 bits). Two epochs on random data: the weights move,
which is all the exactness needs.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from fpgac.backends.equivalence import verify
from fpgac.backends.vitis import csim
from fpgac.build import BuildOptions, build
from tests.csim_support import skip_without_csim
from tests.models import random_input

skip_without_csim()

pytestmark = pytest.mark.slow  # five g++ compiles

CASES = {  # case: (model family, passes; {ft} is the finetune call, {ft_mixup} the same with mixup)
    "lowrank": ("cnn", "lowrank(macs=0.3), {ft}"),
    "tucker_floor": ("cnn", "lowrank(macs=0.3, method=tucker, min_rank=2), {ft_mixup}"),
    "prune_share": ("mlp", "prune(sparsity=0.9), {ft}, share(bits=3), {ft}"),
    "qat4": ("cnn", "quantize(precision=4, headroom=0), {ft}"),
    "qat4_edges": ("cnn", "quantize(precision=4, headroom=0, edge_precision=8), {ft}"),
}


@pytest.fixture(scope="module")
def folders(
    tmp_path_factory: pytest.TempPathFactory, onnx_export: Callable[[str, str], Path]
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("finetuned")
    result: dict[str, Path] = {}
    for case, (family, passes) in CASES.items():
        calib, data = root / f"{family}_calib.npy", root / f"{family}_train.npz"
        x = random_input(family, 96, seed=4)
        np.save(calib, x[:32])
        np.savez(data, x=x, labels=np.arange(len(x)) % 10)
        ft = f'finetune(data="{data}", epochs=2'
        spec = passes.format(ft=f"{ft})", ft_mixup=f"{ft}, mixup=0.5)")
        out = root / case
        report = build(onnx_export(family, "torchscript"), out, BuildOptions(calib=calib, passes=spec))
        assert ("earlier" in report["finetune"]) == (passes.count("{ft}") == 2)  # both passes recorded
        result[case] = out
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(csim.binary, result.values()))
    return result


@pytest.mark.parametrize("case", CASES)
def test_finetuned_build_bit_exact(case: str, folders: dict[str, Path]) -> None:
    result = verify(str(folders[case]), samples=8)
    assert result.mismatches == 0, f"first mismatch: {result.first_mismatch}"
