"""MiDaS v2.1 small: the network, where its weights come from, and loading them."""
