"""The finetune pass (issue #18, part 2): distillation from the original float model lowers the loss after
compression, a fine-tuned quantized graph builds and simulates exactly as the module trained it, and bad
data is a one-line error naming the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fpgac.build import BuildOptions, build, compile_model, load_model  # noqa: E402
from fpgac.errors import FpgacError  # noqa: E402
from fpgac.interp.simulator import run_fixed  # noqa: E402
from fpgac.interp.torch_module import GraphModule  # noqa: E402
from fpgac.ir.serialize import load_graph  # noqa: E402
from fpgac.passes.finetune import Finetune  # noqa: E402
from tests.models import random_input  # noqa: E402

Export = Callable[[str, str], Path]


def _data(tmp_path: Path, name: str, labels: bool) -> tuple[Path, Path]:
    """A calibration batch and a training file (.npz with labels, or .npy) of seeded random inputs."""
    calib, x = tmp_path / "calib.npy", random_input(name, 128, seed=5)
    np.save(calib, x[:32])
    if labels:
        data = tmp_path / "train.npz"
        np.savez(data, x=x, labels=np.arange(len(x)) % 10)
    else:
        data = tmp_path / "train.npy"
        np.save(data, x)
    return calib, data


def test_distillation_lowers_the_loss_after_lowrank(onnx_export: Export, tmp_path: Path) -> None:
    calib, data = _data(tmp_path, "mlp", labels=False)
    spec = f'lowrank(macs=0.3), finetune(data="{data}", epochs=15, lr=0.05)'
    design = compile_model(onnx_export("mlp", "torchscript"), BuildOptions(calib=calib, passes=spec))
    record = design.report["finetune"]
    assert record["mode"] == "float" and record["samples"] == 128 and record["epochs"] == 15
    # lowrank rewrites its input graph in place: a teacher that were not the build's copy would give 0 here
    assert record["loss_before"] > 1e-3
    assert record["loss_after"] < 0.7 * record["loss_before"]
    assert "accuracy_before" not in record  # no labels: pure distillation
    assert [e["pass"] for e in design.report["compression"]] == ["lowrank"]  # structure kept


def test_qat_graph_builds_and_simulates_as_the_module_trained_it(onnx_export: Export, tmp_path: Path) -> None:
    calib, data = _data(tmp_path, "cnn", labels=True)
    model = onnx_export("cnn", "torchscript")
    options = BuildOptions(
        calib=calib, backend="vitis", passes=f'quantize(precision=8), finetune(data="{data}", epochs=2)'
    )
    tuned = compile_model(model, options).graph
    report = build(model, tmp_path / "out", options)
    record = report["finetune"]
    assert record["mode"] == "fixed" and record["labels"] and 0 <= record["accuracy_after"] <= 1
    untuned = compile_model(model, BuildOptions(calib=calib, backend="none", passes="quantize(precision=8)"))
    weights = [(n.name, n.params["weight"].data) for n in tuned.nodes if "weight" in n.params]
    assert any(not np.array_equal(w, untuned.graph.node(name).params["weight"].data) for name, w in weights)

    x = random_input("cnn", 16, seed=9) * 2
    with torch.no_grad():
        (trained,) = GraphModule(tuned, mode="fixed")(torch.from_numpy(x))
    assert np.array_equal(run_fixed(tuned, x).outputs[0], trained.numpy())
    assert np.array_equal(run_fixed(load_graph(tmp_path / "out"), x).outputs[0], trained.numpy())


def test_a_channels_last_model_fine_tunes_from_the_nhwc_arrays_every_command_takes(tmp_path: Path) -> None:
    """tf2onnx's NHWC classifier (the input's transpose absorbed into the boundary: fpgac.ir.boundary):
    calibration, the training file and the torch module take NHWC arrays, as ``fpgac sim`` does; the
    channels-first arrays a PyTorch export would take are refused by their shape."""
    from tests.unit.test_exporter_quirks import tf2onnx_channels_last

    model = tf2onnx_channels_last(tmp_path / "nhwc.onnx", rank=2)
    x = np.random.default_rng(3).normal(size=(48, 5, 4, 3)).astype(np.float32)  # N, H, W, C
    calib, data = tmp_path / "calib.npy", tmp_path / "train.npz"
    np.save(calib, x[:16])
    np.savez(data, x=x, labels=np.arange(len(x)) % 5)
    options = BuildOptions(calib=calib, passes=f'quantize(precision=8), finetune(data="{data}", epochs=2)')
    design = compile_model(model, options)
    record = design.report["finetune"]
    assert record["mode"] == "fixed" and record["samples"] == 48
    assert record["loss_after"] < record["loss_before"]
    tuned = design.graph
    assert tuned.input_layouts == {"x": (1, 2, 0)}
    with torch.no_grad():
        (trained,) = GraphModule(tuned, mode="fixed")(torch.from_numpy(x))
    assert np.array_equal(run_fixed(tuned, x).outputs[0], trained.numpy())

    np.save(tmp_path / "nchw.npy", np.moveaxis(x, -1, 1))
    with pytest.raises(FpgacError, match=r"is float32 \(48, 3, 5, 4\); the model takes \(N, 5, 4, 3\)"):
        Finetune(data=str(tmp_path / "nchw.npy"), teacher=tuned).run(tuned.clone())


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (None, "no such file"),
        (lambda p: p.write_text("not numpy"), "not a numpy .npy/.npz array file"),
        (lambda p: np.savez(p, labels=np.zeros(4, np.int64)), "no array for input(s) ['x']"),
        (lambda p: np.savez(p, x=np.zeros((4, 16), np.float32), labels=np.zeros(3)), "different numbers"),
        (lambda p: np.savez(p, x=np.zeros((4, 16), np.float32), labels=np.zeros(4)), "integer class indices"),
        (lambda p: np.save(p, np.zeros((4, 15), np.float32)), "the model takes (N, 16)"),
    ],
)
def test_bad_data_is_a_one_line_error_naming_the_file(
    write: Callable[[Path], None] | None, message: str, onnx_export: Export, tmp_path: Path
) -> None:
    graph = load_model(onnx_export("mlp", "torchscript"))
    path = tmp_path / "data.npz"
    if write is not None:
        write(path)
        if not path.exists():  # np.save appends .npy
            path = tmp_path / "data.npz.npy"
    with pytest.raises(FpgacError) as info:
        Finetune(data=str(path), teacher=graph).run(graph.clone())
    text = str(info.value)
    assert message in text and str(path) in text and text.startswith("finetune failed") and "\n" not in text


def test_options_are_checked_and_the_teacher_is_not_one(onnx_export: Export, tmp_path: Path) -> None:
    model = onnx_export("mlp", "torchscript")
    with pytest.raises(FpgacError, match="finetune: data=PATH"):
        compile_model(model, BuildOptions(passes="finetune"))
    with pytest.raises(FpgacError, match="has no option 'teacher'"):
        compile_model(model, BuildOptions(passes="finetune(data=x, teacher=y)"))


def test_saturated_values_get_no_gradient_and_latent_weights_stay_in_their_formats(
    onnx_export: Export, tmp_path: Path
) -> None:
    from fpgac.interp.torch_module import fake_quant
    from fpgac.ir.types import Fixed, Overflow, Rounding

    fmt = Fixed(4, 1, True, Rounding.RND, Overflow.SAT)  # [-1, 0.875] in steps of 0.125
    x = torch.tensor([-3.0, -0.3, 0.3, 3.0], dtype=torch.float64, requires_grad=True)
    y = fake_quant(x, None, fmt, "test")
    y.sum().backward()
    assert y.tolist() == [-1.0, -0.25, 0.25, 0.875] and x.grad is not None
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]

    calib, _ = _data(tmp_path, "mlp", labels=False)
    graph = compile_model(
        onnx_export("mlp", "torchscript"), BuildOptions(calib=calib, passes="quantize(precision=4)")
    ).graph
    module = GraphModule(graph, mode="fixed")
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(100.0)
    module.clip_to_formats()
    for (i, key), slot in module.slots.items():
        fmt = graph.nodes[i].params[key].format
        assert isinstance(fmt, Fixed)
        latent = module.weights[slot].detach()
        assert float(latent.max()) <= fmt.max_mantissa * 2.0**-fmt.frac_bits
        assert float(latent.min()) >= fmt.min_mantissa * 2.0**-fmt.frac_bits


def test_each_layer_steps_relative_to_its_weight_scale(onnx_export: Export) -> None:
    graph = load_model(onnx_export("mlp", "torchscript"))
    module = GraphModule(graph)
    groups = Finetune(data="unused", lr=0.5)._param_groups(module)
    assert len(groups) == len(list(module.parameters()))
    for group, ((i, key), _) in zip(groups, module.slots.items(), strict=True):
        weight = graph.nodes[i].params["weight"].data
        rms = float(np.sqrt(np.mean(weight[weight != 0].astype(np.float64) ** 2)))
        assert group["lr"] == pytest.approx(0.5 * rms), key


def test_mixup_asks_the_teacher_about_blends_of_two_samples(onnx_export: Export) -> None:
    graph = load_model(onnx_export("mlp", "torchscript"))
    teacher = GraphModule(graph)
    x = torch.from_numpy(random_input("mlp", 8, seed=3))
    labels = torch.arange(8) % 10
    tune = Finetune(data="unused", mixup=0.5, teacher=graph)
    (mixed,), soft, blended = tune._mix([x], labels, teacher, 10, torch.Generator().manual_seed(0))
    assert blended is not None and torch.allclose(blended.sum(dim=1), torch.ones(8, dtype=blended.dtype))
    kept = blended.max(dim=1).values  # each sample keeps at least 1 - mixup of itself
    assert bool((kept >= 0.5).all()) and bool((kept < 1).any())
    with torch.no_grad():
        (expected,) = teacher(mixed)
    assert torch.equal(soft, expected) and not torch.equal(mixed, x)
    with pytest.raises(FpgacError, match=r"mixup 0.7 must be in \[0, 0.5\]"):
        Finetune(data="unused", mixup=0.7)
