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
    """

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval().requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        weight = 1.0 - self.current_decay()
        torch._foreach_lerp_(list(self.shadow.parameters()), list(module.parameters()), weight)
        for shadow, live in zip(self.shadow.buffers(), module.buffers(), strict=True):
            shadow.copy_(live)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"shadow": self.shadow.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.shadow.load_state_dict(state["shadow"])
        self.updates = state["updates"]
