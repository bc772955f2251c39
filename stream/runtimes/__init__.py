"""Inference runtimes: the same network run by TorchScript, ONNX Runtime or OpenVINO."""
