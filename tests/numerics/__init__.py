"""Float numerics of frontend + interpreter against onnxruntime and shipped ONNX test data."""
