"""Inference runtimes: the same network run by TorchScript, ONNX Runtime or OpenVINO, each
with the steps that build its model file beside it."""
