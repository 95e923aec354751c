"""Adam over fused parameters: each member with its own learning rate, betas, weight decay, step count and skip."""

from __future__ import annotations

from typing import Any

import torch


class MemberAdam:
    """`build_adam`'s update (Adam with L2 weight decay) for parameters [K, ...], member k with hyperparameters
    lr[k], betas[k], weight_decay[k]. `step(skip)` leaves a member whose `skip` is set exactly as it was:
    parameters, moments and step count, so a NaN in one member changes nothing in another.

    Its state converts to and from torch.optim.Adam state_dicts, one per member (`member_state_dict`,
    `load_member_states`): a member's checkpoint is its run's alone.
    """

    def __init__(self, params: list[torch.nn.Parameter], lr: list[float], betas: list[tuple[float, float]],
                 weight_decay: list[float], eps: float = 1e-8):
        self.params = list(params)
        device = self.params[0].device
        vector = lambda values: torch.tensor(values, dtype=torch.float32, device=device)  # noqa: E731
        self.lr, self.weight_decay = vector(lr), vector(weight_decay)
        self.beta1, self.beta2 = vector([b[0] for b in betas]), vector([b[1] for b in betas])
        self.eps = eps
        self.steps = torch.zeros(len(lr), dtype=torch.float32, device=device)
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, skip: torch.Tensor) -> None:
        keep = ~skip
        steps = self.steps + keep
        correction1, correction2 = 1 - self.beta1 ** steps, 1 - self.beta2 ** steps
        for p, (exp_avg, exp_avg_sq) in zip(self.params, self.moments):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            lr, wd, beta1, beta2, kept = (v.view(shape) for v in (self.lr, self.weight_decay, self.beta1, self.beta2,
                                                                    keep))
            grad = p.grad + wd * p
            new_avg = torch.lerp(exp_avg, grad, 1 - beta1)
            new_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * grad * grad
            denom = new_avg_sq.sqrt() / correction2.sqrt().view(shape) + self.eps
            new_p = p - (lr / correction1.view(shape)) * new_avg / denom
            p.copy_(torch.where(kept, new_p, p))
            exp_avg.copy_(torch.where(kept, new_avg, exp_avg))
            exp_avg_sq.copy_(torch.where(kept, new_avg_sq, exp_avg_sq))
        self.steps = steps

    def member_state_dict(self, member: int, param_groups: list[dict[str, Any]]) -> dict[str, Any]:
        """Member `member`'s state as torch.optim.Adam's state_dict with `param_groups` (its run's own)."""
        step = torch.tensor(float(self.steps[member]))
        return {"state": {i: {"step": step.clone(), "exp_avg": avg[member].clone(), "exp_avg_sq": avg_sq[member].clone()}
                          for i, (avg, avg_sq) in enumerate(self.moments)},
                "param_groups": param_groups}

    def load_member_states(self, states: list[dict[str, Any]]) -> None:
        """Stack the members' torch.optim.Adam state_dicts (an empty state: not stepped yet)."""
        for member, state in enumerate(states):
            entries = state["state"]
            if not entries:
                continue
            if len(entries) != len(self.params):
                raise ValueError(f"an optimiser state of {len(entries)} parameters for {len(self.params)}")
            for i, (avg, avg_sq) in enumerate(self.moments):
                avg[member].copy_(entries[i]["exp_avg"])
                avg_sq[member].copy_(entries[i]["exp_avg_sq"])
            self.steps[member] = float(entries[0]["step"])
