"""A better-conditioned stand-in for the real weights, for measuring reduced precision.

The synthetic parity weights are random: their activations are badly scaled,
which exaggerates bf16 and int8 error far beyond what trained weights show.
Re-estimating every batch-norm's running statistics on real frames keeps the
synthetic convolutions but makes each layer's output well scaled, the property
trained networks have.  It is still untrained: fidelity on it is an estimate,
stated as such wherever it is reported.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from depthstream.stream.model.weights import LoadedModel, state_dict_digest


def reestimate_batchnorm(loaded: LoadedModel, inputs: Iterable[np.ndarray]) -> LoadedModel:
    """A copy of ``loaded`` whose batch-norm statistics are the mean over ``inputs``.

    ``inputs`` are CHW float32 network inputs.  Only running means and variances
    change; the copy is returned in eval mode.
    """
    model = type(loaded.model)()
    model.load_state_dict(loaded.model.state_dict())
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over all inputs
        norm.train()
    count = 0
    with torch.no_grad():
        for net_input in inputs:
            model(torch.from_numpy(net_input)[None])
            count += 1
    if count == 0:
        raise ValueError("re-estimating batch norm needs at least one frame")
    model.eval()
    digest = "standin-" + state_dict_digest(model.state_dict())
    return LoadedModel(model, digest, loaded.choice)
