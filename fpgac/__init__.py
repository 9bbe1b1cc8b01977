"""fpgac: compile trained neural networks (ONNX) to bit-exact FPGA designs."""

__version__ = "0.1.0"
