"""Fitting for hls4ml builds: every fitted reuse factor is one hls4ml's kernels compute correctly.

hls4ml's Resource kernels take only some factors (its ``_validate_reuse_factor``), and in io_parallel a
conv's takes none above its ``n_in`` (``conv_2d_resource_cl``): a ResNet shortcut's 1x1 conv fitted to
55 and raised to 64 > 8 inputs gave 4,607 wrong values of 4,608 in C-simulation. The fitting rounds
each factor down to an accepted one, so the emitter has nothing left to change. (g++ C-simulation of a
fitted hls4ml build: tests/exact/test_hls4ml_csim.py.)
"""

from __future__ import annotations

import pytest

from fpgac.analysis.fit import fit
from fpgac.backends.hls4ml import emitter
from fpgac.backends.hls4ml.folding import accepted_reuse
from fpgac.backends.hls4ml.lower import lower
from fpgac.boards import BOARDS
from tests.unit.test_estimate import cnn

hls4ml = pytest.importorskip("hls4ml")


def valid_factors(n_in: int, n_out: int) -> list[int]:
    return [int(r) for r in hls4ml.backends.get_backend("Vitis").get_valid_reuse_factors(n_in, n_out)]


def test_factors_round_down_to_what_hls4ml_accepts() -> None:
    rule = accepted_reuse(cnn([1, 4, 8]))  # conv1: n_in 4 x 3 x 3 = 36, n_out 8; fc: 128 -> 10
    valid = valid_factors(36, 8)
    for asked in (2, 5, 7, 13, 36, 50, 100, 288, 1000):
        stream = rule("stream", "conv1", asked)
        assert stream in valid and not [r for r in valid if stream < r <= asked]
        parallel = rule("parallel", "conv1", asked)  # conv_2d_resource_cl: at most n_in
        assert parallel in valid and parallel <= 36
        assert not [r for r in valid if parallel < r <= min(asked, 36)]
    assert rule("stream", "conv1", 100) == 72 and rule("parallel", "conv1", 100) == 36
    assert rule("parallel", "fc", 7) in valid_factors(128, 10)
    assert rule("parallel", "relu0", 7) == 7  # layers hls4ml does not constrain keep theirs
    assert rule("parallel", "conv1", 1) == 1


def test_user_factors_above_a_parallel_conv_inputs_are_capped() -> None:
    layer = {"class_name": "Conv2D", "n_chan": 8, "filt_height": 1, "filt_width": 1, "n_filt": 16}
    assert emitter.valid_reuse(layer, 55, "parallel") == 8  # was 64: wrong outputs
    assert emitter.valid_reuse(layer, 55, "stream") == 64
    depthwise = {**layer, "class_name": "DepthwiseConv2D", "filt_height": 3, "filt_width": 3}
    assert emitter.valid_reuse(depthwise, 4, "parallel") == 1  # no io_parallel Resource depthwise kernel


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_fitted_factors_need_no_change_in_the_emitter(io: str) -> None:
    graph = cnn([1, 4, 8])
    f = fit(graph, BOARDS["pynq-z2"], io, util=0.05, accepts=accepted_reuse(graph))
    assert any(r > 1 for r in f.reuse.values())
    assert emitter.design(lower(graph), io, 1, f.reuse).reuse == {}
