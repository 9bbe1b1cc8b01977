"""Fine-tuning a compressed or quantized graph by knowledge distillation from the original float model.

fpgac's compression is training-free; at aggressive budgets a short fine-tune recovers what closed forms
cannot (issue #18). ``finetune(data=PATH, ...)`` trains the graph *as it stands* (split factors, masked
pruned weights, shared codebooks: :class:`~fpgac.interp.torch_module.GraphModule` keeps the structure) to
match the original model's logits:

    loss = (1 - alpha) * T**2 * KL(softmax(teacher / T) || softmax(student / T)) + alpha * CE(student, labels)

with the cross-entropy term only when the data has ``labels`` (otherwise pure distillation, ``alpha``
unused). ``PATH`` is a ``.npy`` of inputs (single-input models) or a ``.npz`` keyed by input name, as
``fpgac sim`` takes them (NHWC for a channels-last model), optionally with ``labels``. The graph's one
output is taken as the logits.

The teacher is the graph the build's pipeline started from (the float model after the frontend's
clean-ups): a pass sees only the graph handed to it, which after ``lowrank`` or ``prune`` has lost the
original weights, so the build gives it in the ``teacher`` field as it gives ``calib`` (a clone taken
before the pipeline runs: passes may rewrite the graph they are given in place). Its logits are computed
once, by the float interpreter.

Placed after ``quantize`` the graph is fixed point and the module runs in ``"fixed"`` mode: the forward
pass is the simulator's, bit for bit, with straight-through gradients (quantization-aware training). The
formats are kept; the trained latent weights are written back and quantized by their formats when the
design is written, exactly as the module's forward pass quantized them. Before ``quantize`` the graph
trains in float and the implied ``quantize`` picks formats for the trained weights.

Training is seeded (Adam, shuffled batches) and runs on the CPU, or on a CUDA GPU when torch sees one.
``graph.metadata["finetune"]`` (``report.json``'s ``finetune``) records the epochs, samples, the loss
before and after, and the accuracy before and after when there are labels; a second ``finetune`` in the
same build keeps the first one's record under ``earlier``.

On a graph with run-time rank levels (``lowrank(levels=...)`` before it) every step trains the full
model and a drawn smaller level together (Decomposable-Net, :mod:`fpgac.passes.finetune_levels`), and
the record's ``rank_levels`` gives every level's loss and accuracy before and after.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from fpgac.errors import FpgacError
from fpgac.interp.interpreter import run_float
from fpgac.ir.boundary import array_shape
from fpgac.ir.graph import Graph
from fpgac.ir.types import Fixed
from fpgac.passes import finetune_levels

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from fpgac.interp.torch_module import GraphModule

log = logging.getLogger(__name__)

# Optimizer steps of the default schedule (``epochs`` unset): enough for the bench's cases (issue #18) to
# converge, about a minute of one CPU core on the digits CNN.
DEFAULT_STEPS = 2000


class FinetuneError(FpgacError):
    """The finetune pass cannot run as asked (data, options, or a graph it cannot train)."""


@dataclass(frozen=True)
class Data:
    """The training inputs (one float32 array per graph input, in the callers' layout of it: the teacher's
    interpreter and the torch module take them so, :mod:`fpgac.ir.boundary`) and the labels, when the
    file has them."""

    inputs: list[np.ndarray]
    labels: np.ndarray | None


def load_data(path: Path, graph: Graph) -> Data:
    """Read ``path`` (``.npy`` inputs, or ``.npz`` keyed by input name plus optional ``labels``)."""
    if not path.is_file():
        raise FinetuneError(f"finetune failed: {path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        raise FinetuneError(f"finetune failed: {path}: not a numpy .npy/.npz array file") from None
    names = [v.name for v in graph.inputs]
    if isinstance(loaded, np.ndarray):
        if len(names) != 1:
            raise FinetuneError(f"finetune failed: {path}: the model has inputs {names}; pass a .npz")
        arrays, labels = [loaded], None
    else:
        with loaded:
            missing = [n for n in names if n not in loaded.files]
            if missing:
                raise FinetuneError(
                    f"finetune failed: {path}: no array for input(s) {missing}; "
                    f"it holds {sorted(loaded.files)}"
                )
            arrays = [loaded[n] for n in names]
            labels = loaded["labels"].reshape(-1) if "labels" in loaded.files else None
    for value, array in zip(graph.inputs, arrays, strict=True):
        shape = array_shape(graph, value)  # the callers' layout, as every command takes it
        if array.dtype.kind not in "fiub" or tuple(array.shape[1:]) != shape or len(array) == 0:
            raise FinetuneError(
                f"finetune failed: {path}: input {value.name!r} is {array.dtype} {tuple(array.shape)}; "
                f"the model takes (N, {', '.join(map(str, shape))}) numbers"
            )
        if not np.all(np.isfinite(array)):
            raise FinetuneError(f"finetune failed: {path}: input {value.name!r} contains NaN or Inf")
    count = len(arrays[0])
    if any(len(a) != count for a in arrays) or (labels is not None and len(labels) != count):
        raise FinetuneError(f"finetune failed: {path}: the arrays hold different numbers of samples")
    if labels is not None and labels.dtype.kind not in "iub":
        raise FinetuneError(f"finetune failed: {path}: labels must be integer class indices")
    return Data([a.astype(np.float32) for a in arrays], labels)


@dataclass(frozen=True)
class Finetune:
    """Knowledge-distillation fine-tune of the graph as it stands; see the module docstring.

    Options: ``data`` (the training file), ``epochs`` (default: :data:`DEFAULT_STEPS` steps' worth),
    ``lr`` (Adam's peak step, relative to each layer's weight scale: see :meth:`_param_groups`),
    ``temperature`` (T of the distillation), ``alpha`` (weight of the cross-entropy on labels), ``batch``
    (samples per step), ``seed``, ``mixup`` (the largest share of another sample mixed into each training
    sample, the teacher asked about the mixture: see :meth:`_mix`; 0: none). ``teacher`` is the original
    float graph, given by the build.
    """

    name: ClassVar[str] = "finetune"
    data: str = ""
    epochs: int | None = None
    lr: float = 0.02
    temperature: float = 4.0
    alpha: float = 0.5
    batch: int = 64
    seed: int = 0
    mixup: float = 0.0
    teacher: Graph | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        checks = [
            (bool(self.data), "data=PATH (a .npy or .npz of training inputs) is required"),
            (self.epochs is None or self.epochs >= 0, f"epochs {self.epochs} must be >= 0"),
            (self.lr > 0, f"lr {self.lr} must be > 0"),
            (self.temperature > 0, f"temperature {self.temperature} must be > 0"),
            (0 <= self.alpha <= 1, f"alpha {self.alpha} must be in [0, 1]"),
            (self.batch >= 1, f"batch {self.batch} must be >= 1"),
            (0 <= self.mixup <= 0.5, f"mixup {self.mixup} must be in [0, 0.5]"),
        ]
        for ok, why in checks:
            if not ok:
                raise FinetuneError(f"finetune: {why}")

    def run(self, graph: Graph) -> Graph:
        import torch

        from fpgac.interp.torch_module import GraphModule

        if self.teacher is None:
            raise FinetuneError("finetune failed: no teacher graph (the build gives it the original model)")
        if len(graph.outputs) != 1 or len(self.teacher.outputs) != 1:
            raise FinetuneError(
                f"finetune failed: the graph has {len(graph.outputs)} outputs; it distils one (the logits)"
            )
        data = load_data(Path(self.data), graph)
        teacher = np.asarray(run_float(self.teacher, data.inputs)[0], dtype=np.float64)
        if teacher.ndim != 2:
            raise FinetuneError(
                f"finetune failed: output {graph.outputs[0].name!r} has shape {teacher.shape[1:]}; "
                "it distils (N, classes) logits"
            )
        fixed = isinstance(graph.inputs[0].type.format, Fixed)
        module = GraphModule(graph, mode="fixed" if fixed else "float")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        module.to(device)
        joint = finetune_levels.has_levels(module)  # rank levels train jointly (finetune_levels.py)
        inputs = [torch.from_numpy(x).to(device) for x in data.inputs]
        targets = torch.from_numpy(teacher).to(device, module.dtype)
        labels = None if data.labels is None else torch.from_numpy(data.labels.astype(np.int64)).to(device)

        threads = torch.get_num_threads()
        if device.type == "cpu":
            torch.set_num_threads(
                1
            )  # small tensors: intra-op threads only contend (25x slower on 2 busy cores)

        def evaluate() -> dict[str, Any]:
            return self._evaluate(module, inputs, targets, labels)

        try:
            levels_before = finetune_levels.per_level(module, evaluate) if joint else []
            before = evaluate()
            self._train(module, inputs, targets, labels, self._teacher_module(device))
            after = evaluate()
            levels_after = finetune_levels.per_level(module, evaluate) if joint else []
        finally:
            torch.set_num_threads(threads)
        count = len(targets)

        tuned = module.to("cpu").to_graph()
        earlier = graph.metadata.get("finetune")
        tuned.metadata["finetune"] = {
            "mode": module.mode,
            "epochs": self._epochs(count),
            "samples": count,
            "labels": labels is not None,
            "lr": self.lr,
            "temperature": self.temperature,
            "alpha": self.alpha if labels is not None else 0.0,
            "batch": self.batch,
            "seed": self.seed,
            "mixup": self.mixup,
            "loss_before": before["loss"],
            "loss_after": after["loss"],
            **(
                {"accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"]}
                if labels is not None
                else {}
            ),
            **({"rank_levels": finetune_levels.record(levels_before, levels_after)} if joint else {}),
            # An earlier fine-tune of this build (Deep Compression's prune, fine-tune, share, fine-tune).
            **({"earlier": earlier} if earlier is not None else {}),
        }
        return tuned

    def _teacher_module(self, device: torch.device) -> GraphModule | None:
        """The teacher as a float module, to ask it about mixed inputs (``mixup``); else ``None`` (its
        logits on the training data, computed once, are all the loss needs)."""
        from fpgac.interp.torch_module import GraphModule

        if not self.mixup or self.teacher is None:
            return None
        return GraphModule(self.teacher, mode="float").to(device)

    def _train(
        self,
        module: GraphModule,
        inputs: list[Tensor],
        teacher: Tensor,
        labels: Tensor | None,
        mixer: GraphModule | None = None,
    ) -> None:
        """``epochs`` passes of Adam over seeded shuffled batches, the step following one cycle.

        The step warms up over the first tenth of the steps to ``lr`` and anneals to zero by a cosine
        (Smith's one-cycle schedule): a constant step kept the weights hopping between grid points at 4
        bits and ended on a worse loss (digits CNN, 4-bit QAT: 88.2% held out at a constant 0.01, 93.2%
        one-cycle). In fixed mode the latent weights are clamped into their formats after every step
        (:meth:`GraphModule.clip_to_formats`). With a ``mixer`` (the teacher as a module) each batch is
        mixed first (:meth:`_mix`).
        """
        import torch

        generator = torch.Generator().manual_seed(self.seed)
        groups = self._param_groups(module)
        if not groups:
            return  # nothing to train (a graph without weights)
        optimizer = torch.optim.Adam(groups)
        epochs = self._epochs(len(teacher))
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in groups],
            total_steps=max(1, epochs * self._steps_per_epoch(len(teacher))),
            pct_start=0.1,
        )
        joint = finetune_levels.has_levels(module)
        for epoch in range(epochs):
            order = torch.randperm(len(teacher), generator=generator).to(teacher.device)
            for start in range(0, len(teacher), self.batch):
                rows = order[start : start + self.batch]
                batch = [x[rows] for x in inputs]
                part: Tensor | None = None if labels is None else labels[rows]
                soft = teacher[rows]
                if mixer is not None:
                    batch, soft, part = self._mix(batch, part, mixer, soft.shape[1], generator)
                loss_of = partial(self._loss, teacher=soft.to(module.dtype), labels=part)
                if joint:
                    loss = finetune_levels.joint_loss(module, batch, loss_of, generator)
                else:
                    (logits,) = module(*batch)
                    loss = loss_of(logits)
                optimizer.zero_grad()
                torch.autograd.backward(loss)
                optimizer.step()
                schedule.step()
                module.clip_to_formats()
            log.info("finetune epoch %d/%d done", epoch + 1, epochs)

    def _mix(
        self,
        batch: list[Tensor],
        labels: Tensor | None,
        mixer: GraphModule,
        classes: int,
        generator: torch.Generator,
    ) -> tuple[list[Tensor], Tensor, Tensor | None]:
        """Mixup for distillation: each sample blended with another of the batch, a share drawn uniformly
        in ``[0, mixup]``, the teacher's logits computed on the blend and the labels blended likewise.

        The student then matches the teacher on new points around the data every step rather than on the
        same images again (Beyer et al., "a good teacher is patient and consistent"). The digits CNN at 0.2
        of its MACs fits its 1,297 training images within a few hundred epochs, and which of the held-out
        images it then gets right depends on the seed (96.4-97.6% over seeds 0-2); matching the teacher on
        blends too (``mixup=0.5``, 400 epochs) it reached 97.2-97.8%. In 4-bit QAT it hurt (90.8% at
        ``mixup=0.5``): the coarse student cannot follow the teacher's graded logits between two digits.
        """
        import torch
        import torch.nn.functional as F

        count = len(batch[0])
        partner = torch.randperm(count, generator=generator).to(batch[0].device)
        share = (torch.rand(count, generator=generator, dtype=torch.float64) * self.mixup).to(batch[0].device)

        def blend(x: Tensor) -> Tensor:
            s = share.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
            return (1 - s) * x + s * x[partner]

        mixed = [blend(x) for x in batch]
        with torch.no_grad():
            (soft,) = mixer(*mixed)
        if labels is None:
            return mixed, soft, None
        return mixed, soft, blend(F.one_hot(labels, classes).to(torch.float64))

    def _steps_per_epoch(self, count: int) -> int:
        return -(-count // self.batch)

    def _epochs(self, count: int) -> int:
        """``epochs``, or by default as many as make :data:`DEFAULT_STEPS` optimizer steps (at least one):
        the schedule's length is a number of steps, whatever the size of the data."""
        if self.epochs is not None:
            return self.epochs
        return max(1, -(-DEFAULT_STEPS // self._steps_per_epoch(count)))

    def _param_groups(self, module: GraphModule) -> list[dict[str, Any]]:
        """One Adam group per trainable tensor, its step ``lr`` times its layer's weight scale.

        Adam's step is absolute, so one step size cannot suit every layer: the digits CNN's weights are
        around 0.4-1.1, LeNet-300-100's kept weights around 0.15, and the best peak steps measured were
        0.01-0.03 and 0.003. Relative to the RMS of the layer's nonzero weights (LARS/LAMB's per-layer
        trust ratio, fixed at the start) one ``lr`` fits both. A layer's bias and codebook take its
        weight's scale (a bias can be near zero); a layer without weights takes each param's own.
        """
        groups = []
        for (index, key), slot in module.slots.items():
            if slot not in module.weights:
                continue
            params = module.graph.nodes[index].params
            reference = params["weight"] if "weight" in params else params[key]
            data = np.asarray(reference.data, dtype=np.float64)
            kept = data[data != 0]
            scale = float(np.sqrt(np.mean(kept**2))) if kept.size else 1.0
            groups.append({"params": [module.weights[slot]], "lr": self.lr * scale})
        return groups

    def _loss(self, logits: Tensor, teacher: Tensor, labels: Tensor | None) -> Tensor:
        """The distillation loss (scaled by T**2, as Hinton et al. do), plus cross-entropy on labels."""
        import torch.nn.functional as F

        t = self.temperature
        kl = F.kl_div(
            F.log_softmax(logits / t, dim=1),
            F.log_softmax(teacher / t, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        distil = kl * t * t
        if labels is None:
            return distil
        if labels.is_floating_point():  # blended by mixup: class probabilities
            labels = labels.to(logits.dtype)
        return (1 - self.alpha) * distil + self.alpha * F.cross_entropy(logits, labels)

    def _evaluate(
        self, module: GraphModule, inputs: list[Tensor], teacher: Tensor, labels: Tensor | None
    ) -> dict[str, Any]:
        """The loss and (with labels) the accuracy over all the data, in batches, without gradients."""
        import torch

        total, correct, count = 0.0, 0, len(teacher)
        with torch.no_grad():
            for start in range(0, count, max(self.batch, 256)):
                rows = slice(start, start + max(self.batch, 256))
                (logits,) = module(*(x[rows] for x in inputs))
                part = None if labels is None else labels[rows]
                total += float(self._loss(logits, teacher[rows], part)) * len(logits)
                if part is not None:
                    correct += int((logits.argmax(dim=1) == part).sum())
        return {"loss": total / count, "accuracy": correct / count if labels is not None else None}
