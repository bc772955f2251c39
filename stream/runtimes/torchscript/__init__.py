"""The TorchScript runtime and how its model is built: batch norm folded, exact rewrites,
traced and frozen per input shape, run on one dedicated thread."""
