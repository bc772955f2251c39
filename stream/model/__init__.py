"""MiDaS v2.1 small: the network, its weights, and its traced form."""
