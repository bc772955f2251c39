"""ONNX Runtime and OpenVINO, and how their model files are built: the ONNX export and its
static int8 quantization, cached per weights and input shape."""
