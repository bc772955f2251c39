"""One module per ``depthstream`` sub-command; each has ``register`` and ``run``."""
