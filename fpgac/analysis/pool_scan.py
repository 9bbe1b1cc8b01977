"""The geometry of a scanning pool on a stream (``fpgac_pool.h``'s ``pool_scan``), shared by the Vitis
emitter (its config) and the estimate (its cycles and memories), so both read one definition.

A max or average pool in io stream does not gather its window: it scans its input one beat of ``L``
channels a cycle (``L = gcd(L_in, L_out)``, the lanes both its streams divide into), keeps the last
``span_w - 1`` columns of each channel group in delay lines to reduce a window's row, and folds each row's
result into the partial of every output row whose window holds it: ``slots`` row memories of
``OW x C`` partials (running maxima, or sums in the accumulator format), the window's last row giving the
output. Rows and columns of end padding are scanned as virtual ones (nothing valid in them), so every
output leaves at the cycle its window's last row and column pass: ``scan_h x scan_w x C / L`` cycles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fpgac.ir.graph import Node


@dataclass(frozen=True)
class PoolScan:
    """A pool's window along (rows, columns): a 1-d pool is one row of a 2-d one."""

    channels: int
    size: tuple[int, int]  # input H, W
    out: tuple[int, int]  # OH, OW
    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int]  # begin pads (the end pads follow from ``out``)
    dilations: tuple[int, int]

    @classmethod
    def of(cls, node: Node) -> PoolScan:
        a, x = node.attrs, node.inputs[0].shape
        nd = len(x) - 1

        def pair(values: list[int], fill: int) -> tuple[int, int]:
            return (fill, values[0]) if nd == 1 else (values[0], values[1])

        return cls(
            channels=x[0],
            size=pair(list(x[1:]), 1),
            out=pair(list(node.output.shape[1:]), 1),
            kernel=pair(a["kernel"], 1),
            strides=pair(a["strides"], 1),
            pads=pair(a["pads"], 0),
            dilations=pair(a.get("dilations", [1] * nd), 1),
        )

    @property
    def spans(self) -> tuple[int, int]:
        """Rows and columns one window covers, dilation included."""
        return (
            (self.kernel[0] - 1) * self.dilations[0] + 1,
            (self.kernel[1] - 1) * self.dilations[1] + 1,
        )

    @property
    def slots(self) -> int:
        """Row memories: the output rows open between two input rows (begun, not ended; slot
        ``oh % slots``). The row whose window ends at an input row and the one whose window begins there
        share a slot: the first is read out before the second is written."""
        return max(1, math.ceil((self.spans[0] - 1) / self.strides[0]))

    @property
    def scanned(self) -> tuple[int, int]:
        """Rows and columns scanned: the input's, and the end padding up to the last window's edge."""
        return (
            max(self.size[0], (self.out[0] - 1) * self.strides[0] - self.pads[0] + self.spans[0]),
            max(self.size[1], (self.out[1] - 1) * self.strides[1] - self.pads[1] + self.spans[1]),
        )

    def covers_input(self) -> bool:
        """Whether every window holds an input cell (the scan emits a window at its last row and column,
        which must be scanned; a window of padding only, legal in the IR, has no max)."""
        for axis in (0, 1):
            size, k, s, p, d = (self.size[axis], self.kernel[axis], self.strides[axis], self.pads[axis],
                                self.dilations[axis])  # fmt: skip
            for o in range(self.out[axis]):
                if not any(0 <= o * s - p + t * d < size for t in range(k)):
                    return False
        return True

    def cycles(self, lanes: int) -> int:
        """Cycles a frame at ``lanes`` channels a cycle."""
        return self.scanned[0] * self.scanned[1] * (self.channels // lanes)

    def config(self) -> dict[str, int]:
        """The constants ``pool_scan`` reads besides the window's (``fpgac_pool.h``)."""
        return {"SLOTS": self.slots, "SCAN_H": self.scanned[0], "SCAN_W": self.scanned[1]}
