"""The simulators: a float32 reference interpreter over the IR (later, the bit-accurate one)."""

from fpgac.backends.sim.float_ops import FLOAT_OPS
from fpgac.backends.sim.interpreter import SimulationError, run_float

__all__ = ["FLOAT_OPS", "SimulationError", "run_float"]
