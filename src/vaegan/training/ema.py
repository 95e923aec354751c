"""Exponential moving average of the generator's weights, used for sampling and evaluation when on."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class GeneratorEMA:
    """shadow <- d * shadow + (1 - d) * weights after every update, with d = min(decay, (1 + n) / (10 + n)).

    The ramp in d (as TensorFlow's ExponentialMovingAverage with num_updates) keeps a short run's average from
    being dominated by the random initial weights. Buffers (BatchNorm statistics) are copied, not averaged.
    The update count n lives on the device, so a skipped training step (a device-side flag) is left out
    without the host waiting for the device.
    """

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval().requires_grad_(False)
        self.updates = torch.zeros((), dtype=torch.float64, device=next(module.parameters()).device)

    def current_decay(self) -> torch.Tensor:
        return torch.clamp((1 + self.updates) / (10 + self.updates), max=self.decay)

    @torch.no_grad()
    def update(self, module: nn.Module, skip: torch.Tensor | None = None) -> None:
        """Move the shadow towards `module`; with `skip` (a bool scalar tensor) true, change nothing."""
        keep = torch.ones_like(self.updates) if skip is None else (~skip).to(self.updates.dtype)
        weight = ((1.0 - self.current_decay()) * keep).float()
        for shadow, live in zip(self.shadow.parameters(), module.parameters(), strict=True):
            shadow.lerp_(live, weight)
        for shadow, live in zip(self.shadow.buffers(), module.buffers(), strict=True):
            shadow.copy_(live if skip is None else torch.where(skip, shadow, live))
        self.updates += keep

    def state_dict(self) -> dict[str, Any]:
        return {"shadow": self.shadow.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.shadow.load_state_dict(state["shadow"])
        self.updates = torch.as_tensor(state["updates"], dtype=torch.float64).to(self.updates.device)
