"""The simulators: a float32 reference interpreter over the IR (later, the bit-accurate one)."""

from fpgac.interp.float_kernels import FLOAT_OPS
from fpgac.interp.interpreter import SimulationError, run_float

__all__ = ["FLOAT_OPS", "SimulationError", "run_float"]
