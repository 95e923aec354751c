"""Dropout with a cheaper random mask, for CPUs."""

from __future__ import annotations

import torch
from torch import nn


class FastDropout(nn.Dropout):
    """nn.Dropout with a cheaper random mask, for CPUs.

    ATen's CPU `bernoulli_` draws a double per element from the generator, serially (its parallel MKL path is
    taken on Intel CPUs only), a large share of a training step on AMD (docs/performance.md). This layer keeps
    an element when a 16-bit random integer is >= round(p * 2^16), reading four such integers from each 64-bit
    draw of `random_`. p is thus rounded to a multiple of 2^-16 (0.3 -> 0.3000031), and kept elements are scaled by
    1 / (1 - rounded p), which keeps the layer unbiased.

    It draws from the global generator: deterministic for a fixed seed and resumable from
    `torch.get_rng_state()`. Its random stream differs from nn.Dropout's, so a run with it is reproducible
    but not bit-identical to one without it. State dicts are unchanged (dropout has no state).
    """

    LEVELS = 1 << 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        drop_levels = round(self.p * self.LEVELS)
        if drop_levels >= self.LEVELS:
            return x * 0.0
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-2**63, None)
        bits = words.view(torch.int16)[:n]  # uniform on [-2^15, 2^15)
        mask = torch.empty_like(x)  # x's memory layout; filled in memory order
        torch.ge(bits, drop_levels - self.LEVELS // 2, out=mask.as_strided((n,), (1,)))
        mask.mul_(self.LEVELS / (self.LEVELS - drop_levels))  # {0, 1 / (1 - p)}, reused by backward
        return x.mul_(mask) if self.inplace else x * mask


def use_fast_dropout(module: nn.Module) -> None:
    """Replace every nn.Dropout in `module` by a FastDropout of the same p, in place."""
    for name, child in module.named_children():
        if type(child) is nn.Dropout:
            setattr(module, name, FastDropout(child.p, child.inplace))
        else:
            use_fast_dropout(child)
